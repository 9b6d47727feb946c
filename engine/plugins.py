"""The plugin manager: built-in and installed plugins, and what they registered."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pluggy

from engine import hookspecs

ENTRY_POINT_GROUP = "understudy"
_BUILTIN_PLUGINS = ("engine.backends.llama_cpp", "engine.tools.builtin", "engine.tools.mcp")


@functools.cache
def plugin_manager() -> pluggy.PluginManager:
    import importlib

    manager = pluggy.PluginManager("understudy")
    manager.add_hookspecs(hookspecs)
    for module_name in _BUILTIN_PLUGINS:
        manager.register(importlib.import_module(module_name), name=module_name)
    manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    return manager


def backend_factories() -> dict[str, Callable]:
    """Backend name -> factory, from every registered plugin."""
    factories: dict[str, Callable] = {}

    def register(name: str, factory: Callable) -> None:
        factories[name] = factory

    plugin_manager().hook.register_backends(register=register)
    return factories


def backend_names() -> list[str]:
    return sorted(backend_factories())

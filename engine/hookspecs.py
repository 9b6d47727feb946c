"""The pluggy hooks through which backends and tools are registered.

Built-in backends register through the very same hooks as third-party plugins, which are found through
the ``understudy`` entry-point group.
"""

import pluggy

hookspec = pluggy.HookspecMarker("understudy")
hookimpl = pluggy.HookimplMarker("understudy")


@hookspec
def register_backends(register):
    """Register chat backends: call ``register(name, factory)`` for each.

    ``factory(entry, weights_path, load_options)`` loads a model and returns an object that satisfies
    ``engine.backends.Backend``. ``name`` is what models.toml entries put in their ``backend`` field.
    """


@hookspec
def register_tools(register):
    """Register tools: call ``register(tool)`` for each object satisfying ``engine.tools.Tool``."""

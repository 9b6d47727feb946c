"""Every built-in tool registers through the plugin hook with its risk class and a valid schema."""

from __future__ import annotations

from engine.tools import registered_tools


def test_the_builtins_register_through_the_plugin_hook():
    import jsonschema

    tools = registered_tools()
    expected = {
        "calculator": "read",
        "datetime": "read",
        "unit_convert": "read",
        "file_search": "read",
        "file_read": "read",
        "write_note": "write",
        "shell": "exec",
        "http_get": "network",
    }
    assert {name: tools[name].risk for name in expected} == expected
    for name in expected:
        tool = tools[name]
        assert tool.source == "builtin" and tool.description and tool.timeout_s > 0
        assert tool.parameters["type"] == "object" and tool.parameters["additionalProperties"] is False
        assert set(tool.parameters["required"]) <= set(tool.parameters["properties"])
        jsonschema.Draft202012Validator.check_schema(tool.parameters)

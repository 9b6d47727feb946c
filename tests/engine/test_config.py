"""Every config file, hand-edited wrong, is refused with one line that names the file, the entry and the
field and says what to do; saved, it reads back unchanged."""

from __future__ import annotations

import json

import pytest

from engine import catalog
from engine.config import save_config
from engine.errors import ConfigError, SettingsError, UnderstudyError
from engine.escalation import CloudConfig, Provider, cloud_config_path, load_cloud_config
from engine.settings import Settings, load_settings, settings_path, update_settings
from engine.tools import mcp
from engine.tools.policy import ToolPolicy, load_policy, policy_path
from engine.tuning import scheduler

PROVIDER = {"name": "paid", "base_url": "https://cloud.invalid/v1", "model": "big"}
ENTRY = """
[models.tiny]
name = "Tiny"
family = "llama"
role = "generalist"
backend = "llama_cpp"
quantisation = "Q4_1"
context_length = 512
licence = "MIT"
size_mb = 1
ram_mb = 10
source = { path = "/nowhere/tiny.gguf" }
"""

# (where the file lives, how it is read, what a hand edit put there, the message)
BROKEN = [
    pytest.param(
        settings_path,
        load_settings,
        json.dumps({"theme": "dark", "colour": "red"}),
        r"settings\.json is damaged \(unknown setting\(s\) colour, not one of context_length, default_model, "
        r".*\); fix it or delete it to go back to the defaults$",
        id="settings-unknown",
    ),
    pytest.param(
        settings_path,
        load_settings,
        json.dumps({"max_tokens": "many"}),
        r"settings\.json is damaged \(setting 'max_tokens' must be int \(a whole number\), got 'many'\); fix",
        id="settings-type",
    ),
    pytest.param(
        policy_path,
        load_policy,
        json.dumps({"granted_folders": [], "colour": 1}),
        r"tools\.json is damaged \(unknown field\(s\) colour, not one of always_allowed, denied, "
        r"granted_folders\); fix it or delete it to start over$",
        id="tools-unknown",
    ),
    pytest.param(
        policy_path,
        load_policy,
        json.dumps({"denied": "shell"}),
        r"tools\.json is damaged \(field 'denied' must be a list, got 'shell'\); fix it",
        id="tools-type",
    ),
    pytest.param(
        mcp.config_path,
        mcp.load_config,
        json.dumps({"servers": {"demo": {"command": "server", "colour": "red"}}}),
        r"mcp\.json is damaged \(server 'demo': unknown field 'colour'\); fix it or delete it to start over$",
        id="mcp-unknown",
    ),
    pytest.param(
        mcp.config_path,
        mcp.load_config,
        json.dumps({"servers": {"demo": {"command": "server", "args": ["--port", 8080]}}}),
        r"mcp\.json is damaged \(server 'demo': field 'args\[1\]' must be text, got 8080\); fix it",
        id="mcp-type",
    ),
    pytest.param(
        cloud_config_path,
        load_cloud_config,
        json.dumps({"providers": {"paid": {**PROVIDER, "colour": "red"}}}),
        r"cloud\.json is damaged \(provider 'paid': unknown field 'colour'\); fix it or delete it and add "
        r"your providers again$",
        id="cloud-unknown",
    ),
    pytest.param(
        cloud_config_path,
        load_cloud_config,
        json.dumps({"providers": {"paid": {**PROVIDER, "price_in_per_million": "cheap"}}}),
        r"cloud\.json is damaged \(provider 'paid': field 'price_in_per_million' must be a number, got "
        r"'cheap'\); fix it",
        id="cloud-type",
    ),
    pytest.param(
        scheduler.settings_path,
        scheduler.load_schedule,
        json.dumps({"nightly": True}),
        r"tuning\.json is damaged \(unknown setting\(s\) nightly, not one of idle_load_per_core, "
        r"require_ac_power, require_idle, window_end, window_start\); fix it or delete it for the defaults$",
        id="tuning-unknown",
    ),
    pytest.param(
        scheduler.settings_path,
        scheduler.load_schedule,
        json.dumps({"require_idle": "yes"}),
        r"tuning\.json is damaged \(setting 'require_idle' must be true or false, got 'yes'\); fix it",
        id="tuning-type",
    ),
    pytest.param(
        catalog.user_catalog_path,
        catalog.load_catalog,
        ENTRY.replace('licence = "MIT"', 'licence = "MIT"\ncolour = "red"'),
        r"models\.toml is damaged \(model 'tiny': unknown field\(s\) colour, not one of backend, "
        r"context_length, .*\); fix it, or remove the entry$",
        id="models-unknown",
    ),
    pytest.param(
        catalog.user_catalog_path,
        catalog.load_catalog,
        ENTRY.replace("context_length = 512", 'context_length = "big"'),
        r"models\.toml is damaged \(model 'tiny': field 'context_length' must be int \(a whole number\), "
        r"got 'big'\); fix it",
        id="models-type",
    ),
]


@pytest.mark.parametrize(("where", "read", "text", "message"), BROKEN)
def test_a_hand_edit_gone_wrong_is_one_clear_line(where, read, text, message):
    path = where()
    path.write_text(text, encoding="utf-8")

    with pytest.raises(UnderstudyError) as raised:
        read()

    explanation = str(raised.value)
    assert explanation.startswith(str(path))
    assert "\n" not in explanation
    assert raised.match(message)


def test_unreadable_files_say_which_language_they_should_be():
    settings_path().write_text('{"theme": "dark",}', encoding="utf-8")
    catalog.user_catalog_path().write_text("[models.tiny\n", encoding="utf-8")

    with pytest.raises(SettingsError, match=r"settings\.json is not valid JSON \(.*\); fix it or delete it"):
        load_settings()
    with pytest.raises(ConfigError, match=r"models\.toml is not valid TOML \(.*\); fix it"):
        catalog.load_catalog()


@pytest.mark.parametrize(
    ("config", "where", "read"),
    [
        (
            Settings(default_model="tiny", n_threads=4, temperature=0.7, theme="dark", tools_enabled=True),
            settings_path,
            load_settings,
        ),
        (
            ToolPolicy(granted_folders=["/srv/notes"], always_allowed=["calculator"], denied=["shell"]),
            policy_path,
            load_policy,
        ),
        (
            mcp.McpConfig(
                servers={"demo": mcp.McpServer("server", ("--flag",), {"TOKEN": "abc"})},
                approved={"demo": "1" * 64},
                trusted=["demo"],
                tool_lists={"demo": "2" * 64},
                tool_cache={
                    "demo": [{"name": "add", "description": "Adds", "input_schema": {"type": "object"}}]
                },
            ),
            mcp.config_path,
            mcp.load_config,
        ),
        (
            CloudConfig(
                providers={"paid": Provider("paid", "https://cloud.invalid/v1", "big", 2.0, 8.0)},
                active="paid",
                local_only=True,
                always_allowed=[["paid", "general"]],
            ),
            cloud_config_path,
            load_cloud_config,
        ),
        (
            scheduler.ScheduleSettings(window_start="23:30", window_end="04:00", idle_load_per_core=0.5),
            scheduler.settings_path,
            scheduler.load_schedule,
        ),
    ],
    ids=["settings", "tools", "mcp", "cloud", "tuning"],
)
def test_a_saved_config_reads_back_unchanged(config, where, read):
    save_config(where(), config)
    assert read() == config
    assert isinstance(json.loads(where().read_text(encoding="utf-8")), dict)


def test_a_change_is_checked_like_the_file_and_replaces_a_damaged_one():
    with pytest.raises(SettingsError, match=r"^setting 'temperature' must be less than or equal to 2, got 5"):
        Settings().with_changes(temperature=5)
    settings_path().write_text("not json", encoding="utf-8")

    assert update_settings(theme="dark") == Settings(theme="dark")
    assert load_settings() == Settings(theme="dark")

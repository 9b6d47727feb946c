"""`understudy cloud …`, `escalations …` and `chat --escalate`.

Approving sends to the stand-in cloud (llama.cpp's server, slow); where nothing may be sent the provider
is a recording address with nothing behind it.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from understudy_command import run_understudy


def understudy(*args: str, stdin: str = "", **environment: str) -> subprocess.CompletedProcess:
    return run_understudy(*args, stdin=stdin, **environment)


def test_escalation_without_a_terminal_stays_pending_and_sends_nothing(recording_address, understudy_home):
    added = understudy(
        "cloud", "add", "standin", "--base-url", recording_address.base_url, "--model", "stand-in"
    )
    assert added.returncode == 0, added.stderr
    [provider] = [json.loads(line) for line in understudy("cloud", "list", "--json").stdout.splitlines()]
    assert provider["name"] == "standin" and provider["active"]

    asked = understudy("chat", "--escalate", "I am bob@example.com. Say hi.")
    assert asked.returncode == 0, asked.stderr
    assert "is pending; nothing was sent" in asked.stdout
    [escalation] = [
        json.loads(line) for line in understudy("escalations", "list", "--json").stdout.splitlines()
    ]
    assert escalation["status"] == "pending"
    assert "bob@example.com" not in json.dumps(escalation["payload"])
    assert recording_address.requests == []

    denied = understudy("escalations", "deny", str(escalation["id"]))
    assert denied.returncode == 0 and "nothing was sent" in denied.stdout
    assert recording_address.requests == []


@pytest.mark.slow
def test_approve_sends_the_shown_payload_and_local_only_blocks_it(cloud_server, understudy_home):
    cloud_server.requests.clear()
    understudy("cloud", "add", "standin", "--base-url", cloud_server.base_url, "--model", "stand-in")
    understudy("chat", "--escalate", "Say hello.")
    understudy("chat", "--escalate", "Say goodbye.")
    second, first = [
        json.loads(line) for line in understudy("escalations", "list", "--json").stdout.splitlines()
    ]

    assert understudy("cloud", "local-only", "on").returncode == 0
    blocked = understudy("escalations", "approve", str(first["id"]))
    assert blocked.returncode == 1 and "local-only mode is on" in blocked.stderr
    assert cloud_server.requests == []

    understudy("cloud", "local-only", "off")
    shown = json.loads(understudy("escalations", "show", str(second["id"]), "--json").stdout)
    approved = understudy("escalations", "approve", str(second["id"]))
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.strip()
    [(_method, _path, _headers, body)] = cloud_server.requests
    assert json.loads(body) == shown["payload"]
    after = json.loads(understudy("escalations", "show", str(second["id"]), "--json").stdout)
    assert after["status"] == "sent" and after["answer"]
    assert "cloud" in {
        turn["route"] for turn in map(json.loads, understudy("logs", "--json").stdout.splitlines())
    }


def test_storing_a_key_without_a_secure_keychain_is_refused(recording_address, understudy_home):
    understudy("cloud", "add", "standin", "--base-url", recording_address.base_url, "--model", "stand-in")
    # The keyring a headless machine has: none that can keep a secret.
    result = understudy(
        "cloud",
        "key",
        "standin",
        stdin="sk-test-key\n",
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
    )
    assert result.returncode == 1
    assert "no secure keychain is available" in result.stderr
    assert "sk-test-key" not in "".join(p.read_text(errors="ignore") for p in understudy_home.rglob("*.json"))

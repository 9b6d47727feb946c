"""`understudy serve` as a user starts it: the listening line, the token, a clean stop on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import fake_backend
import openai
import pytest
from cloud_stand_in import free_port
from understudy_command import UNDERSTUDY, run_understudy


def test_serve_prints_its_address_and_token_and_stops_on_sigint(fake_model):
    port = free_port()
    command = [sys.executable, fake_backend.__file__, "serve", "--port", str(port), "--json"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ
    ) as server:
        try:
            listening = json.loads(server.stdout.readline())
            assert listening["event"] == "listening"
            assert listening["url"] == f"http://127.0.0.1:{port}/v1"
            assert listening["token"] == run_understudy("serve", "token").stdout.strip()
            client = openai.OpenAI(base_url=listening["url"], api_key=listening["token"], max_retries=0)
            assert "auto" in [model.id for model in client.models.list()]
            client.close()
            server.send_signal(signal.SIGINT)
            # uvicorn shuts down, then re-raises the signal: the usual status of an interrupted command.
            assert server.wait(30) == 130
            assert "Traceback" not in server.stderr.read()
        finally:
            server.kill()


def test_a_remote_address_needs_allow_remote():
    result = run_understudy("serve", "--host", "0.0.0.0")
    assert result.returncode != 0
    assert "--allow-remote" in result.stderr


def test_requests_while_the_model_loads_get_503(gateway):
    gateway.state.ready.clear()
    try:
        with pytest.raises(openai.InternalServerError) as refused:
            gateway.client().chat.completions.create(
                model="auto", messages=[{"role": "user", "content": "hi"}]
            )
        assert refused.value.status_code == 503
    finally:
        gateway.state.ready.set()


@pytest.mark.slow
def test_on_the_real_model_the_listening_line_is_not_lost_while_the_model_loads():
    """llama.cpp points stdout at /dev/null while a model loads; the line comes first, then the load."""
    command = [str(UNDERSTUDY), "serve", "--port", str(free_port()), "--json"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as server:
        try:
            listening = json.loads(server.stdout.readline())
            client = openai.OpenAI(base_url=listening["url"], api_key=listening["token"], max_retries=5)
            answer = client.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": "Say hi."}], max_tokens=5
            )
            assert answer.model == "smollm2-135m-instruct"
            client.close()
        finally:
            server.kill()


def test_a_port_in_use_is_one_clear_line_and_the_command_ends():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run_understudy("serve", "--port", str(taken.getsockname()[1]))
    assert result.returncode == 1
    assert "address already in use" in result.stderr.lower() and "choose another port" in result.stderr
    assert "Traceback" not in result.stderr

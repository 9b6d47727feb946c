"""The gateway's log read back as typed clients and calls, as the app's Gateway section shows them."""

from __future__ import annotations

from engine import completions
from engine.backends import drain
from engine.catalog import load_catalog
from engine.completions import ChatMessage, ChatRequest, Route
from engine.gateway_log import gateway_clients, recent_gateway_calls, route_kind
from engine.gateway_token import gateway_token, token_path
from engine.store import Store


def ask(store, catalog, client: str, text: str, header: str = "generalist") -> None:
    generalist = catalog.default_generalist
    route = Route(generalist, generalist, None, None, header)
    request = ChatRequest(
        "auto", [ChatMessage("user", text)], client=client, user_agent=f"{client}/1.0 (test)"
    )
    drain(completions.complete(store, catalog, route, request))


def test_clients_and_calls_come_back_typed_newest_first(fake_model):
    store = Store.open()
    catalog = load_catalog()
    ask(store, catalog, "OpenAI", "one two three")
    ask(store, catalog, "curl", "hello")
    ask(store, catalog, "OpenAI", "again", header="generalist; cloud not consented")

    clients = gateway_clients(store)
    assert [client.name for client in clients] == ["OpenAI", "curl"]
    openai_client = clients[0]
    assert openai_client.requests == 2 and openai_client.errors == 0
    assert openai_client.routes == {"specialist": 0, "generalist": 2, "cloud": 0}
    assert openai_client.user_agent == "OpenAI/1.0 (test)"
    assert openai_client.first_seen_utc <= openai_client.last_seen_utc

    calls = recent_gateway_calls(store, limit=2)
    assert [call.client for call in calls] == ["OpenAI", "curl"]
    newest = calls[0]
    assert newest.route == "generalist" and newest.route_detail == "generalist; cloud not consented"
    assert newest.status == "ok" and newest.answered_by == fake_model.id
    assert newest.completion_tokens == 2  # "Echo: again"
    assert newest.duration_ms is not None
    store.close()


def test_an_empty_log_has_no_clients():
    store = Store.open(":memory:")
    assert gateway_clients(store) == [] and recent_gateway_calls(store, 10) == []


def test_route_kinds():
    assert route_kind("specialist 3") == "specialist"
    assert route_kind("generalist (named)") == "generalist"
    assert route_kind("cloud (consented)") == "cloud"


def test_the_token_is_made_once_and_kept_private():
    token = gateway_token()
    assert gateway_token() == token and len(token) >= 32
    assert token_path().stat().st_mode & 0o077 == 0

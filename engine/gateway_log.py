"""What the gateway's log says about its clients: who asked, how often, and where they were answered.

The gateway logs each call (``gateway_calls``, one row per turn); the app's Gateway section reads these
typed summaries instead of SQL, so a user can see which programs use their models and how.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.store import Store

ROUTES = ("specialist", "generalist", "cloud")


def route_kind(header: str) -> str:
    """Where a call was answered, in one word, from the route header the gateway logged.

    ``generalist; cloud not consented`` was answered locally: only a header that starts with ``cloud``
    left the machine.
    """
    for kind in ROUTES:
        if header.startswith(kind):
            return kind
    return "generalist"


@dataclass(frozen=True)
class GatewayClient:
    """One program that used the gateway (named by its User-Agent), and its traffic."""

    name: str
    user_agent: str
    requests: int
    first_seen_utc: str
    last_seen_utc: str
    routes: dict[str, int]  # specialist / generalist / cloud -> requests answered there
    errors: int


@dataclass(frozen=True)
class GatewayCall:
    """One request through the gateway, newest first in ``recent_gateway_calls``."""

    turn_id: int
    created_utc: str
    client: str
    requested_model: str
    answered_by: str
    route: str  # specialist / generalist / cloud
    route_detail: str  # the x-understudy-route header as sent
    status: str  # ok / cancelled / error
    finish_reason: str | None
    completion_tokens: int
    duration_ms: float | None


def gateway_clients(store: Store) -> list[GatewayClient]:
    """Every client seen, the most recently active first."""
    rows = store.db.query(
        """
        SELECT gateway_calls.client, gateway_calls.user_agent, gateway_calls.route,
               gateway_calls.created_utc, turns.status
        FROM gateway_calls JOIN turns ON turns.id = gateway_calls.turn_id
        ORDER BY gateway_calls.turn_id
        """
    )
    seen: dict[str, dict] = {}
    for row in rows:
        name = row["client"] or "unnamed client"
        client = seen.setdefault(
            name,
            {
                "name": name,
                "user_agent": row["user_agent"],
                "requests": 0,
                "first_seen_utc": row["created_utc"],
                "routes": dict.fromkeys(ROUTES, 0),
                "errors": 0,
            },
        )
        client["requests"] += 1
        client["last_seen_utc"] = row["created_utc"]
        client["user_agent"] = row["user_agent"]
        client["routes"][route_kind(row["route"])] += 1
        client["errors"] += row["status"] == "error"
    clients = [GatewayClient(**client) for client in seen.values()]
    return sorted(clients, key=lambda client: client.last_seen_utc, reverse=True)


def recent_gateway_calls(store: Store, limit: int = 50) -> list[GatewayCall]:
    """The newest ``limit`` requests, newest first, with their tokens and time from the model calls."""
    rows = store.db.query(
        """
        SELECT gateway_calls.turn_id, gateway_calls.created_utc, gateway_calls.client,
               gateway_calls.requested_model, gateway_calls.answered_by, gateway_calls.route,
               gateway_calls.finish_reason, turns.status,
               COALESCE(SUM(model_calls.completion_tokens), 0) AS completion_tokens,
               SUM(model_calls.duration_ms) AS duration_ms
        FROM gateway_calls
        JOIN turns ON turns.id = gateway_calls.turn_id
        LEFT JOIN model_calls ON model_calls.turn_id = gateway_calls.turn_id
        GROUP BY gateway_calls.turn_id
        ORDER BY gateway_calls.turn_id DESC
        LIMIT ?
        """,
        [limit],
    )
    return [
        GatewayCall(
            turn_id=row["turn_id"],
            created_utc=row["created_utc"],
            client=row["client"] or "unnamed client",
            requested_model=row["requested_model"],
            answered_by=row["answered_by"],
            route=route_kind(row["route"]),
            route_detail=row["route"],
            status=row["status"],
            finish_reason=row["finish_reason"],
            completion_tokens=row["completion_tokens"],
            duration_ms=row["duration_ms"],
        )
        for row in rows
    ]

"""Who may use the gateway: the holder of its token, through an address the server is bound to.

The token is the only secret: any program on the machine could otherwise reach a loopback port. The
Host check refuses DNS rebinding, where a web page's own hostname resolves to 127.0.0.1 and the
browser would then send the page's requests to the gateway.
"""

from __future__ import annotations

import ipaddress
import secrets

from engine.gateway_token import TOKEN_FILE, gateway_token, token_path

__all__ = ["TOKEN_FILE", "allowed_hosts", "gateway_token", "is_loopback", "token_matches", "token_path"]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str, port: int) -> frozenset[str]:
    """The Host header values a request may carry for a server bound to ``host``:``port``."""
    bound = f"[{host}]" if ":" in host else host
    names = {bound, *LOOPBACK_NAMES} if is_loopback(host) else {bound}
    return frozenset(f"{name}:{port}" for name in names)


def token_matches(authorization: str | None, token: str) -> bool:
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode(), token.encode())

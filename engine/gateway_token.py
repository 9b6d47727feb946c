"""The gateway's token, in the engine so the app's window can show it without importing the gateway.

The token is the only secret the gateway has: any program on the machine could otherwise reach a
loopback port. It is made on first use and kept in the data dir, readable by the owner only.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from engine import files, paths

TOKEN_FILE = "gateway-token"


def token_path() -> Path:
    return paths.data_dir() / TOKEN_FILE


def gateway_token() -> str:
    """The gateway's token, made on first use and kept, readable by the owner only."""
    path = token_path()
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        token = ""
    if not token:
        token = secrets.token_urlsafe(32)
        files.write_text(path, token + "\n", mode=0o600)
    return token

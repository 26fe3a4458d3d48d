"""API keys with scopes (`read`, `write`, `admin`), from one environment variable.

`ORDERS_API_KEYS` holds entries separated by commas, each `name:scope+scope:key`, e.g.
`shop:write:k1, board:read:k2, ops:read+write+admin:k3`. Clients send
`Authorization: Bearer <key>`. With no keys configured, read and write stay open for local
use and admin calls need `ORDERS_ADMIN_TOKEN` (or answer 403 saying how to enable them).
Keys are compared in constant time and never logged; events record the key's name.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from fastapi import HTTPException, Request

Scope = Literal["read", "write", "admin"]
SCOPES = ("read", "write", "admin")


@dataclass(frozen=True)
class ApiKey:
    name: str
    scopes: frozenset[str]
    secret: str


def parse_keys(spec: str | None) -> list[ApiKey]:
    """Parse `name:scope+scope:key, ...`; a malformed entry is a startup error."""
    keys: list[ApiKey] = []
    for entry in (spec or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        parts = entry.split(":", 2)
        if len(parts) != 3 or not parts[0] or len(parts[2]) < 8:
            raise ValueError("ORDERS_API_KEYS entries are name:scope+scope:key "
                             "(key at least 8 characters)")
        scopes = frozenset(parts[1].split("+"))
        if not scopes <= set(SCOPES):
            raise ValueError(f"unknown scope in ORDERS_API_KEYS: {sorted(scopes - set(SCOPES))}")
        keys.append(ApiKey(parts[0], scopes, parts[2]))
    return keys


class Authenticator:
    """Decides whether a request may use a scope; returns the caller's key name."""

    def __init__(self, keys: list[ApiKey], admin_token: str | None) -> None:
        self._keys = keys
        self._admin_token = admin_token

    def _match(self, given: str) -> ApiKey | None:
        found = None
        for key in self._keys:  # no early exit: every key is compared
            if hmac.compare_digest(given.encode(), key.secret.encode()):
                found = key
        return found

    def check(self, authorization: str | None, scope: Scope) -> str | None:
        scheme, _, given = (authorization or "").partition(" ")
        bearer = given.strip() if scheme.lower() == "bearer" else ""
        if scope == "admin" and self._admin_token and bearer and hmac.compare_digest(
                bearer.encode(), self._admin_token.encode()):
            return "admin-token"
        if not self._keys:
            if scope != "admin":
                return None  # open for local use
            if not self._admin_token:
                raise HTTPException(403, "admin endpoints are disabled: set ORDERS_API_KEYS "
                                         "with an admin-scoped key, or ORDERS_ADMIN_TOKEN, and "
                                         "send it as 'Authorization: Bearer <key>'")
            raise _unauthorized()
        key = self._match(bearer) if bearer else None
        if key is None:
            raise _unauthorized()
        if scope not in key.scopes:
            raise HTTPException(403, f"the key '{key.name}' lacks the '{scope}' scope")
        return key.name


    def allows(self, authorization: str | None, scope: Scope) -> bool:
        """Whether the caller holds `scope` (for showing more, not for refusing)."""
        try:
            self.check(authorization, scope)
        except HTTPException:
            return False
        return True


def _unauthorized() -> HTTPException:
    return HTTPException(401, "a valid API key is required (Authorization: Bearer <key>)",
                         headers={"WWW-Authenticate": "Bearer"})


def require(scope: Scope) -> Callable[[Request], Awaitable[None]]:
    """A router dependency: the caller must hold `scope`; records the key name as actor."""

    # async, like every dependency here: FastAPI runs a plain `def` one in a worker thread,
    # a thread hop on every request for a check that never blocks.
    async def dependency(request: Request) -> None:
        auth: Authenticator = request.app.state.auth
        actor = auth.check(request.headers.get("authorization"), scope)
        request.state.actor = actor

    return dependency

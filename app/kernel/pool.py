"""The asyncpg pool, with a jsonb codec so call sites pass and get plain dicts.

Which driver errors mean "PostgreSQL is down" is said once, in `app.kernel.unavailable`.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg


async def _init_connection(conn: asyncpg.Connection[Any]) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads,
                              schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection[Any]) -> None:
    """Release without the full session reset: an open transaction is still rolled back
    (the pool does that first), but nothing else needs undoing."""


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 20,
                      command_timeout: float = 5.0,
                      session_state: bool = True) -> asyncpg.Pool[Any]:
    """Open a pool whose connections encode and decode jsonb as Python objects.

    `session_state=False` is for callers that never leave session state behind (no LISTEN,
    no SET, session advisory locks only through `locks.session_lock`): it skips asyncpg's
    reset query, a round trip on every release (a sixth of the API's PostgreSQL time per
    command, and a fifth of the projector's samples, in profiles).
    """
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size,
                                     command_timeout=command_timeout, init=_init_connection,
                                     reset=None if session_state else _keep_session)
    assert pool is not None
    return pool

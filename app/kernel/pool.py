"""The asyncpg pool, with a jsonb codec so call sites pass and get plain dicts.

Also the one place that knows which driver errors mean "PostgreSQL is down, restarting or
out of connections" rather than "this request is wrong": `POSTGRES_DOWN`, turned into
`ServiceUnavailable` by `unavailable_on_failure()`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg

from app.unavailable import ServiceUnavailable

# What a crash, restart, failover or overload of the server looks like from asyncpg: socket
# errors and timeouts, a closed connection (InterfaceError, PostgresConnectionError), a
# protocol left mid-operation by a dropped socket (InternalClientError: "cannot switch to
# state ..."), admin shutdown / starting up / query cancelled (OperatorInterventionError) and
# too many connections (InsufficientResourcesError), a standby not yet promoted during a
# failover (ReadOnlySQLTransactionError).
POSTGRES_DOWN: tuple[type[Exception], ...] = (
    OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError, asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError, asyncpg.ReadOnlySQLTransactionError)


@contextmanager
def unavailable_on_failure() -> Iterator[None]:
    """Raise `ServiceUnavailable` for any of `POSTGRES_DOWN` raised in the block."""
    try:
        yield
    except POSTGRES_DOWN:
        raise ServiceUnavailable("postgres", "PostgreSQL is not available") from None


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
    SET or session advisory locks): it skips asyncpg's reset query, a round trip on every
    release (a sixth of the API's PostgreSQL time per command, in profiles).
    """
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size,
                                     command_timeout=command_timeout, init=_init_connection,
                                     reset=None if session_state else _keep_session)
    assert pool is not None
    return pool

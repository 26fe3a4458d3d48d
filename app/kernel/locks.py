"""Every PostgreSQL advisory lock the project takes, named in one place.

Session locks on one bigint key:
    MIGRATIONS             `orders migrate` (two migrating processes queue instead of racing)
    rebuild(target)        one rebuild of a read model at a time
    build(alias)           partitions creating the index they all build into, one at a time

Transaction locks on two int keys (PostgreSQL keeps them apart from the bigint keys):
    IDEMPOTENCY_KEY_CLASS, hashtext(key)   twins sending one `Idempotency-Key` queue
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

MIGRATIONS = 0x0DE5_0001
IDEMPOTENCY_KEY_CLASS = 11

LOCK = "SELECT pg_advisory_lock($1)"
TRY_LOCK = "SELECT pg_try_advisory_lock($1)"
UNLOCK = "SELECT pg_advisory_unlock($1)"
LOCK_IDEMPOTENCY_KEY = "SELECT pg_advisory_xact_lock($1::int, hashtext($2))"


@contextlib.asynccontextmanager
async def session_lock(conn: asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any],
                       key: int, *,
                       wait: bool = True) -> AsyncIterator[bool]:
    """Hold the session lock `key` on `conn` for the block; yields whether it was taken
    (always, with `wait`). The projector's pools skip asyncpg's reset query on release, so a
    lock whose release did not complete takes its connection down with it: the server
    then drops the lock with the session, and no pooled connection keeps it."""
    if wait:
        await conn.execute(LOCK, key)
    elif not await conn.fetchval(TRY_LOCK, key):
        yield False
        return
    try:
        yield True
    finally:
        try:
            await conn.execute(UNLOCK, key)
        except BaseException:
            conn.terminate()
            raise


def rebuild(target: str) -> int:
    """The key held for the whole of a rebuild of `target` ("search" or "dashboard")."""
    return zlib.crc32(f"reindex:{target}".encode())


def build(alias: str) -> int:
    """The key held while a partition finds or creates the index every partition builds."""
    return zlib.crc32(f"build:{alias}".encode())

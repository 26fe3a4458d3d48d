"""Session advisory locks on pools that skip asyncpg's reset query (the projector's): a lock
never outlives its block on a pooled connection, even when its release fails."""

from __future__ import annotations

import asyncio
import random

import asyncpg
import pytest

from app.kernel import locks
from app.kernel.pool import create_pool


@pytest.fixture
async def lean_pool(database_url: str) -> asyncpg.Pool:
    pool = await create_pool(database_url, min_size=1, max_size=2, session_state=False)
    yield pool
    await pool.close()


async def _free_elsewhere(database_url: str, key: int) -> bool:
    """Another session can take `key` now (and gives it straight back)."""
    other = await asyncpg.connect(database_url)
    try:
        taken = await other.fetchval("SELECT pg_try_advisory_lock($1)", key)
        if taken:
            await other.execute("SELECT pg_advisory_unlock($1)", key)
        return bool(taken)
    finally:
        await other.close()


async def test_the_lock_is_held_in_the_block_and_free_after(
        lean_pool: asyncpg.Pool, database_url: str) -> None:
    key = random.getrandbits(62)
    async with lean_pool.acquire() as conn, locks.session_lock(conn, key) as taken:
        assert taken
        assert not await _free_elsewhere(database_url, key)
        async with lean_pool.acquire() as second, \
                locks.session_lock(second, key, wait=False) as again:
            assert not again  # held by the first connection: refused, not queued
    assert await _free_elsewhere(database_url, key)


async def test_a_failed_release_takes_its_connection_and_the_lock_down(
        lean_pool: asyncpg.Pool, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    key = random.getrandbits(62)
    monkeypatch.setattr(locks, "UNLOCK", "SELECT pg_advisory_unlock($1, 'no such')")
    with pytest.raises(asyncpg.PostgresError):
        async with lean_pool.acquire() as conn, locks.session_lock(conn, key):
            pass
    for _ in range(50):  # the server ends the terminated session (and its locks) at once
        if await _free_elsewhere(database_url, key):
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("the lock outlived the connection whose release failed")
    async with lean_pool.acquire() as conn:  # the pool replaced the terminated connection
        assert await conn.fetchval("SELECT 1") == 1

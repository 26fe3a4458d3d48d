"""The asyncpg pool, with a jsonb codec so call sites pass and get plain dicts."""

from __future__ import annotations

import json
from typing import Any

import asyncpg


async def _init_connection(conn: asyncpg.Connection[Any]) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads,
                              schema="pg_catalog")


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 20,
                      command_timeout: float = 5.0) -> asyncpg.Pool[Any]:
    """Open a pool whose connections encode and decode jsonb as Python objects."""
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size,
                                     command_timeout=command_timeout, init=_init_connection)
    assert pool is not None
    return pool

"""The sink contract, kept by the search sink (an alias per test, checkpoints in PostgreSQL)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from elasticsearch import AsyncElasticsearch

from app.kernel.positions import PostgresCheckpoints, log_identity
from app.kernel.settings import Settings
from projectors.search_sink import SearchIndexSink
from tests.contract.sink_contract import Harness, SinkContract
from tests.helpers.support import indexed_orders, sql_orders

CHECKPOINTS = """
SELECT name, transaction_id::text AS tx, position, log_identity FROM projection_checkpoints"""
PUT_BACK = """
INSERT INTO projection_checkpoints (name, transaction_id, position, log_identity)
VALUES ($1, $2::text::xid8, $3, $4)"""


class SearchHarness:
    """A snapshot is the checkpoint rows: restoring one puts the store's checkpoint back
    (the older saved checkpoint a restored database or a lost write leaves behind)."""

    def __init__(self, es: AsyncElasticsearch, alias: str, pool: asyncpg.Pool[Any],
                 identity: str) -> None:
        self.es, self.alias = es, alias
        self._pool, self._identity = pool, identity

    def make(self) -> SearchIndexSink:
        sink = SearchIndexSink(self.es, PostgresCheckpoints(self._pool), alias=self.alias)
        sink.log_identity = self._identity
        return sink

    async def snapshot(self) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self._pool.fetch(CHECKPOINTS)]

    async def restore(self, snapshot: list[tuple[Any, ...]]) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM projection_checkpoints")
            await conn.executemany(PUT_BACK, snapshot)

    async def lose_everything(self) -> None:
        found = await self.es.indices.get(index=f"{self.alias}*", allow_no_indices=True)
        if found.body:
            await self.es.indices.delete(index=",".join(found.body))

    async def contents(self) -> dict[str, tuple[str, str]]:
        return await indexed_orders(self.es, self.alias)

    async def truth(self) -> dict[str, tuple[str, str]]:
        return await sql_orders(self._pool)


class TestSearchIndexSink(SinkContract):
    @pytest.fixture
    async def harness(self, es: AsyncElasticsearch, read_settings: Settings,
                      clean_db: asyncpg.Pool[Any]) -> Harness:
        identity = (await log_identity(clean_db)).key
        return SearchHarness(es, read_settings.search_alias, clean_db, identity)

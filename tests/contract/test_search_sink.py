"""The sink contract, kept by the search sink (an alias per test, checkpoints in PostgreSQL)."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import pytest
from elasticsearch import AsyncElasticsearch

from app.kernel.positions import PostgresCheckpoints, log_identity
from app.kernel.settings import Settings
from projectors import search_sink
from projectors.changes import Change
from projectors.documents import order_document
from projectors.search_sink import FORCED_REFRESH_DOCS, SearchIndexSink
from tests.contract.sink_contract import START, Harness, SinkContract, end, fresh
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

    @pytest.mark.parametrize("forced_from", [FORCED_REFRESH_DOCS, 1])
    async def test_a_checkpointed_batch_is_searchable_at_once(
            self, harness: SearchHarness, changes: list[Change], forced_from: int,
            monkeypatch: pytest.MonkeyPatch) -> None:
        """Small batches wait for the index's scheduled refresh, large ones force their own:
        either way the checkpoint moves only once every document of the batch is searchable."""
        monkeypatch.setattr(search_sink, "FORCED_REFRESH_DOCS", forced_from)
        es, alias = harness.es, harness.alias
        sink = await fresh(harness)
        await sink.publish()
        await es.indices.put_settings(index=sink.target, settings={"refresh_interval": "2s"})
        await sink.apply(changes, START, end(changes))
        assert await _searchable_now(es, alias) == {
            str(c.after.order_id) for c in changes}

    async def test_a_replayed_batch_makes_the_first_unrefreshed_write_searchable(
            self, harness: SearchHarness, changes: list[Change]) -> None:
        """A projector killed between its bulk and the refresh left documents written but not
        searchable; the replay finds them all current (409) and still refreshes before its
        checkpoint moves, without waiting for a scheduled refresh."""
        es, alias = harness.es, harness.alias
        sink = await fresh(harness)
        await sink.publish()
        await es.indices.put_settings(index=sink.target, settings={"refresh_interval": "60s"})
        latest = {str(c.after.order_id): c for c in changes}
        for order_id, change in latest.items():  # the killed run's bulk, never refreshed
            await es.index(index=sink.target, id=order_id, document=order_document(change.after),
                           version=change.after.version, version_type="external", refresh=False)
        assert not await _searchable_now(es, alias)
        started = time.monotonic()
        result = await sink.apply(changes, START, end(changes))
        assert (result.applied, result.stale) == (0, len(latest))
        assert await _searchable_now(es, alias) == set(latest)
        assert time.monotonic() - started < 30  # not the scheduled refresh, a minute away
        assert await sink.checkpoint() == end(changes)

    async def test_the_live_index_takes_the_configured_refresh_interval_at_start(
            self, harness: SearchHarness) -> None:
        """An index made under another `ORDERS_SEARCH_REFRESH_INTERVAL` is given the
        configured one when a projector starts on it, and stays the live index."""
        es = harness.es
        sink = await fresh(harness)
        await sink.publish()
        await es.indices.put_settings(index=sink.target, settings={"refresh_interval": "7s"})
        restarted = harness.make()
        configured = restarted.options.refresh_interval
        assert configured != "7s"
        await restarted.prepare()
        found = await es.indices.get_settings(index=sink.target, name="index.refresh_interval")
        assert found[sink.target]["settings"]["index"]["refresh_interval"] == configured
        assert restarted.target == sink.target and not restarted.building
        assert restarted.ref is not None and restarted.ref.refresh_interval == configured


async def _searchable_now(es: AsyncElasticsearch, alias: str) -> set[str]:
    """The order ids a reader is answered with right now (no refresh asked for)."""
    hits = (await es.search(index=alias, size=1000, source=False))["hits"]["hits"]
    return {hit["_id"] for hit in hits}

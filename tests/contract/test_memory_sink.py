"""The sink contract, kept by the in-memory sink."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from app.kernel.positions import log_identity
from projectors.memory_sink import InMemorySink, MemoryState, MemoryStore
from tests.contract.sink_contract import Harness, SinkContract

TRUTH_VERSIONS = "SELECT order_id, version FROM orders"
TRUTH_POSITIONS = "SELECT position FROM events ORDER BY position"


class MemoryHarness:
    def __init__(self, pool: asyncpg.Pool[Any], identity: str) -> None:
        self.store = MemoryStore()
        self._pool = pool
        self._identity = identity

    def make(self) -> InMemorySink:
        sink = InMemorySink(self.store)
        sink.log_identity = self._identity
        return sink

    async def snapshot(self) -> MemoryState:
        return self.store.snapshot()

    async def restore(self, snapshot: MemoryState) -> None:
        self.store.restore(snapshot)

    async def lose_everything(self) -> None:
        self.store.lose_everything()

    async def contents(self) -> tuple[dict[Any, int], list[int]]:
        live = self.store.live()
        assert live is not None, "nothing published"
        return dict(live.versions), sorted(live.counted)

    async def truth(self) -> tuple[dict[Any, int], list[int]]:
        versions = {r["order_id"]: r["version"] for r in await self._pool.fetch(TRUTH_VERSIONS)}
        return versions, [r["position"] for r in await self._pool.fetch(TRUTH_POSITIONS)]


class TestInMemorySink(SinkContract):
    @pytest.fixture
    async def harness(self, clean_db: asyncpg.Pool[Any]) -> Harness:
        return MemoryHarness(clean_db, (await log_identity(clean_db)).key)

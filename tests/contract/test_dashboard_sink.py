"""The sink contract, kept by the dashboard sink (Redis, a namespace of its own per test)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from app.kernel.positions import log_identity
from app.kernel.settings import Settings
from projectors.dashboard_sink import DashboardSink
from tests.contract.sink_contract import Harness, SinkContract
from tests.helpers.support import redis_figures, sql_truth


class DashboardHarness:
    """Snapshots are DUMPs of every key of the namespace, restored with RESTORE REPLACE."""

    def __init__(self, redis: Redis, namespace: str, pool: asyncpg.Pool[Any],
                 identity: str) -> None:
        self.redis, self.namespace = redis, namespace
        self._pool, self._identity = pool, identity

    def make(self) -> DashboardSink:
        sink = DashboardSink(self.redis, namespace=self.namespace)
        sink.log_identity = self._identity
        return sink

    async def _keys(self) -> list[bytes]:
        return [k async for k in self.redis.scan_iter(match=f"{self.namespace}:*")]

    async def snapshot(self) -> dict[bytes, bytes]:
        return {key: await self.redis.dump(key) for key in await self._keys()}

    async def restore(self, snapshot: dict[bytes, bytes]) -> None:
        await self.lose_everything()
        for key, value in snapshot.items():
            await self.redis.restore(key, 0, value, replace=True)

    async def lose_everything(self) -> None:
        keys = await self._keys()
        if keys:
            await self.redis.delete(*keys)

    async def contents(self) -> dict[str, Any]:
        return await redis_figures(self.redis, self.namespace)

    async def truth(self) -> dict[str, Any]:
        return await sql_truth(self._pool)


class TestDashboardSink(SinkContract):
    @pytest.fixture
    async def harness(self, redis: Redis, read_settings: Settings,
                      clean_db: asyncpg.Pool[Any]) -> Harness:
        identity = (await log_identity(clean_db)).key
        return DashboardHarness(redis, read_settings.dashboard_namespace, clean_db, identity)

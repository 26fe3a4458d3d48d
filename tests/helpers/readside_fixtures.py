"""Read-side fixtures: an isolated index alias and Redis namespace per test, a projector."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis

from app.kernel.settings import Settings
from app.write.store import OrderStore
from projectors.process import Projector, open_projector
from projectors.runner import ProjectionConfig
from tests.helpers.services import ServiceUrls

FAST = ProjectionConfig(batch_size=200, poll_interval_s=0.2, stall_after_s=1.0,
                        backoff_base_s=0.05, backoff_max_s=0.5, standby_poll_s=0.2)


@pytest.fixture
async def es(service_urls: ServiceUrls) -> AsyncIterator[AsyncElasticsearch]:
    client = AsyncElasticsearch(service_urls.elasticsearch_hosts, request_timeout=30)
    yield client
    await client.close()


@pytest.fixture
async def redis(service_urls: ServiceUrls) -> AsyncIterator[Redis]:
    client = Redis.from_url(service_urls.redis)
    yield client
    await client.aclose()


@pytest.fixture
async def read_settings(settings: Settings, es: AsyncElasticsearch, redis: Redis,
                        clean_db: Any) -> AsyncIterator[Settings]:
    """Settings whose search alias and dashboard namespace belong to this test alone."""
    tag = own_tag("t")
    yield settings.model_copy(update={"search_alias": tag, "dashboard_namespace": tag})
    await drop_read_models(es, redis, tag)


def own_tag(kind: str) -> str:
    """An alias and namespace of one test's own, under the `orders` prefix the stack's
    users may touch."""
    return f"orders-{kind}{uuid.uuid4().hex[:10]}"


async def drop_read_models(es: AsyncElasticsearch, redis: Redis, tag: str) -> None:
    """Delete every index and dashboard key a test's `tag` names."""
    found = await es.indices.get(index=f"{tag}*", allow_no_indices=True)
    if found.body:
        await es.indices.delete(index=",".join(found.body))
    keys = [k async for k in redis.scan_iter(match=f"{tag}:*")]
    if keys:
        await redis.delete(*keys)


@pytest.fixture
def store(clean_db: Any) -> OrderStore:
    return OrderStore(clean_db)


RunProjector = Callable[..., AbstractAsyncContextManager[Projector]]


async def _published(projector: Projector, task: asyncio.Task[None],
                     seconds: float = 30) -> None:
    """Until each projection is active with its read model visible to readers (a first
    start builds it unseen, then publishes it)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not all(p.active and p.sink.target and not p.sink.building
                  for p in projector.projections):
        if task.done() or asyncio.get_running_loop().time() > deadline:
            return  # the test sees why (a standby, an outage) through its own checks
        await asyncio.sleep(0.05)


@pytest.fixture
def run_projector(read_settings: Settings) -> RunProjector:
    """`async with run_projector(...) as p:` runs a projector in this process until exit."""

    @asynccontextmanager
    async def run(settings: Settings | None = None, config: ProjectionConfig = FAST,
                  only: set[str] | None = None) -> AsyncIterator[Projector]:
        stop = asyncio.Event()
        async with open_projector(settings or read_settings, config, only) as projector:
            task = asyncio.create_task(projector.run(stop))
            try:
                await _published(projector, task)
                yield projector
            finally:
                stop.set()
                await asyncio.wait_for(task, 30)

    return run

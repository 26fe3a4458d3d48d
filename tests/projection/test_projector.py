"""The projector against real PostgreSQL, Elasticsearch and Redis."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import asyncpg
from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis

from app.domain import order as domain
from app.kernel.positions import LogPositions, PostgresCheckpoints
from app.kernel.readmodels import dashboard_checkpoint, search_checkpoint
from app.kernel.settings import Settings
from app.write import handlers
from app.write.store import OrderStore
from tests.helpers.support import (
    ctx,
    eventually,
    indexed_orders,
    random_order,
    redis_figures,
    sql_orders,
    sql_truth,
    write_orders,
)
from tests.projection.conftest import RunProjector


async def caught_up(pool: asyncpg.Pool[Any], es: AsyncElasticsearch, redis: Redis,
                    settings: Settings) -> bool:
    """Both read models have applied every committed event."""
    log = LogPositions(pool)
    search = await search_checkpoint(es, PostgresCheckpoints(pool), settings.search_alias)
    dash = await dashboard_checkpoint(redis, settings.dashboard_namespace)
    return (await log.pending(search)).events == 0 and (await log.pending(dash)).events == 0


async def assert_read_models_match(pool: asyncpg.Pool[Any], es: AsyncElasticsearch,
                                   redis: Redis, settings: Settings) -> None:
    assert await indexed_orders(es, settings.search_alias) == await sql_orders(pool)
    assert await redis_figures(redis, settings.dashboard_namespace) == await sql_truth(pool)


async def test_out_of_order_commit_is_applied_to_both_sinks(
        store: OrderStore, clean_db: asyncpg.Pool[Any], es: AsyncElasticsearch, redis: Redis,
        read_settings: Settings, run_projector: RunProjector) -> None:
    rng = random.Random(1)
    async with run_projector():
        first = (await handlers.place_order(store, random_order(rng, 1), ctx())).body
        slow = store.transaction()
        tx_a = await slow.__aenter__()
        # A takes the lower position but stays open...
        placed_a = domain.place(random_order(rng, 2), uuid4(), datetime.now(UTC))
        position_a = await tx_a.append(placed_a, 1, {})
        await tx_a.apply(placed_a, 1)
        # ...while B takes a higher one and commits first.
        placed_b = await handlers.place_order(store, random_order(rng, 3), ctx())
        assert placed_b.body["position"] > position_a > first["position"]
        await asyncio.sleep(1.5)  # the projector runs meanwhile and must not pass A's hole
        held = await search_checkpoint(es, PostgresCheckpoints(clean_db),
                                       read_settings.search_alias)
        assert held.position == first["position"]  # waited at the hole instead of skipping it
        await slow.__aexit__(None, None, None)
        await eventually(lambda: caught_up(clean_db, es, redis, read_settings), 20,
                         "projection of A and B")
        indexed = await indexed_orders(es, read_settings.search_alias)
        assert str(placed_a.order_id) in indexed
        assert placed_b.body["order_id"] in indexed
        await assert_read_models_match(clean_db, es, redis, read_settings)


async def test_concurrent_writers_end_with_equal_read_models(
        store: OrderStore, clean_db: asyncpg.Pool[Any], es: AsyncElasticsearch, redis: Redis,
        read_settings: Settings, run_projector: RunProjector) -> None:
    async with run_projector():
        await write_orders(store, 2000, writers=8)
        await eventually(lambda: caught_up(clean_db, es, redis, read_settings), 60,
                         "catch-up after 2,000 orders")
    assert await clean_db.fetchval("SELECT count(*) FROM orders") == 2000
    await assert_read_models_match(clean_db, es, redis, read_settings)

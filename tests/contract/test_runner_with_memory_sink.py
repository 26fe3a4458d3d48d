"""The runner's recovery logic, driven against the in-memory sink: no Elasticsearch or Redis,
only PostgreSQL for the log, so each case runs in milliseconds."""

from __future__ import annotations

from typing import Any

import asyncpg

from app.kernel.positions import Checkpoint
from app.write.store import OrderStore
from projectors.memory_sink import InMemorySink, MemoryStore
from projectors.runner import Projection, ProjectionConfig
from tests.helpers.support import logged_changes, write_orders

QUICK = ProjectionConfig(batch_size=10, poll_interval_s=0.01, backoff_base_s=0.01,
                         backoff_max_s=0.05, recheck_s=0.0)
POSITIONS = "SELECT position FROM events ORDER BY position"


async def run_until_published(projection: Projection, checkpoint: Checkpoint,
                              head: Checkpoint) -> Checkpoint:
    for _ in range(100):  # at least one step: the store may have changed under us
        checkpoint = await projection.step(checkpoint)
        if checkpoint == head and not projection.sink.building:
            return checkpoint
    raise AssertionError(f"stuck at {checkpoint}, head {head}")


async def counted_once(store: MemoryStore, pool: asyncpg.Pool[Any]) -> None:
    live = store.live()
    assert live is not None, "nothing published"
    positions = [r["position"] for r in await pool.fetch(POSITIONS)]
    assert sorted(live.counted) == positions, "every event counted exactly once"


async def head_of(pool: asyncpg.Pool[Any]) -> Checkpoint:
    row = await pool.fetchrow("SELECT transaction_id::text AS tx, position FROM events "
                              "ORDER BY transaction_id DESC, position DESC LIMIT 1")
    assert row is not None
    return Checkpoint(int(row["tx"]), row["position"])


async def test_projection_rewinds_when_the_store_loses_its_recent_writes(
        store: OrderStore, clean_db: asyncpg.Pool[Any]) -> None:
    await write_orders(store, 40, writers=4)
    await logged_changes(clean_db)  # every event readable: each step below moves the sink
    memory = MemoryStore()
    projection = Projection(InMemorySink(memory), clean_db, None, QUICK)
    checkpoint = await projection.start()
    assert projection.sink.building
    checkpoint = await projection.step(checkpoint)
    older = memory.snapshot()
    for _ in range(2):
        checkpoint = await projection.step(checkpoint)
    memory.restore(older)
    await run_until_published(projection, checkpoint, await head_of(clean_db))
    assert projection.status.detail["rewinds"] == 1
    await counted_once(memory, clean_db)


async def test_projection_rebuilds_and_publishes_when_the_store_loses_everything(
        store: OrderStore, clean_db: asyncpg.Pool[Any]) -> None:
    await write_orders(store, 40, writers=4)
    await logged_changes(clean_db)  # every event readable: each step below moves the sink
    memory = MemoryStore()
    projection = Projection(InMemorySink(memory), clean_db, None, QUICK)
    head = await head_of(clean_db)
    checkpoint = await run_until_published(projection, await projection.start(), head)
    first = projection.sink.target
    memory.lose_everything()
    await run_until_published(projection, checkpoint, head)
    assert projection.sink.target not in ("", first), "a fresh generation was built"
    assert memory.state.pointer == projection.sink.target
    await counted_once(memory, clean_db)

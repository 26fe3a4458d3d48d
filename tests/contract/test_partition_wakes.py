"""A commit wakes only the partition holding its stream, and an event that an older open
transaction held back is applied as soon as that transaction commits, on PostgreSQL's own
notices: the loops' polling is set to an hour, so only a notice can move them."""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any
from uuid import UUID

import asyncpg

from app.kernel.partitions import Partition, stream_hash
from app.kernel.positions import NOTIFY_CHANNEL
from app.write import handlers
from app.write.store import OrderStore
from projectors.log import LogNotifier
from projectors.memory_sink import InMemorySink, MemoryStore
from projectors.runner import Projection, ProjectionConfig
from tests.helpers.support import ctx, eventually, random_order

HOUR = 3600.0
NEVER_POLL = ProjectionConfig(poll_interval_s=HOUR, advance_every_s=HOUR, idle_check_s=HOUR,
                              recheck_s=HOUR)
LISTENING = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
             "AND query ILIKE 'LISTEN %'")


async def test_a_held_back_event_is_applied_when_the_older_transaction_commits(
        database_url: str, store: OrderStore, clean_db: asyncpg.Pool[Any]) -> None:
    notifier = LogNotifier(database_url)
    memories = [MemoryStore(), MemoryStore()]
    projections = []
    for index, memory in enumerate(memories):
        sink = InMemorySink(memory, name=f"memory{index}")
        sink.partition = Partition(index, 2)
        projections.append(Projection(sink, clean_db, notifier.waiter(sink.partition, HOUR),
                                      NEVER_POLL))
    stop = asyncio.Event()
    tasks = [asyncio.create_task(notifier.run()),
             *(asyncio.create_task(p.run(stop)) for p in projections)]

    def counted(partition: int) -> list[int]:
        live = memories[partition].live()
        return list(live.counted) if live else []

    try:
        async def ready() -> bool:
            published = all(m.live() is not None for m in memories)
            return published and await clean_db.fetchval(LISTENING) >= 1

        await eventually(ready, 10, "both partitions published, the notifier listening")
        async with clean_db.acquire() as older:
            holding = older.transaction()
            await holding.start()
            xid = await older.fetchval("SELECT pg_current_xact_id()::text")
            placed = await handlers.place_order(store, random_order(random.Random(3), 1),
                                                ctx())
            owner = stream_hash(UUID(placed.body["order_id"])) & 1
            other = 1 - owner
            position = await clean_db.fetchval("SELECT max(position) FROM events")
            await asyncio.sleep(1.0)  # the owner woke, read, and found its event held back
            assert counted(owner) == [], "the older transaction did not hold the event back"
            # the older transaction is an append of the other partition's stream
            await older.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL,
                                f"0:{xid}:{other}")
            await holding.commit()

        async def applied() -> bool:
            return counted(owner) == [position]

        await eventually(applied, 5, "the held-back event applied")
        assert counted(other) == []
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

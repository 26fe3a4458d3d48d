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


class TwoPartitions:
    """Two partitions of a memory sink, each its own loop, woken by one notifier."""

    def __init__(self, database_url: str, pool: asyncpg.Pool[Any],
                 config: ProjectionConfig) -> None:
        self.notifier = LogNotifier(database_url)
        self.pool = pool
        self.memories = [MemoryStore(), MemoryStore()]
        self.projections = []
        for index, memory in enumerate(self.memories):
            sink = InMemorySink(memory, name=f"memory{index}")
            sink.partition = Partition(index, 2)
            self.projections.append(Projection(sink, pool, self.notifier, config))
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def counted(self, partition: int) -> list[int]:
        live = self.memories[partition].live()
        return list(live.counted) if live else []

    def checkpoint(self, partition: int) -> int:
        live = self.memories[partition].live()
        return live.checkpoint.position if live else 0

    async def __aenter__(self) -> TwoPartitions:
        self.tasks = [asyncio.create_task(self.notifier.run()),
                      *(asyncio.create_task(p.run(self.stop)) for p in self.projections)]

        async def ready() -> bool:
            published = all(m.live() is not None for m in self.memories)
            return published and await self.pool.fetchval(LISTENING) >= 1

        await eventually(ready, 10, "both partitions published, the notifier listening")
        return self

    async def __aexit__(self, *_: object) -> None:
        self.stop.set()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_a_held_back_event_is_applied_when_the_older_transaction_commits(
        database_url: str, store: OrderStore, clean_db: asyncpg.Pool[Any]) -> None:
    async with TwoPartitions(database_url, clean_db, NEVER_POLL) as loops:
        counted = loops.counted
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


async def test_an_idle_partition_follows_commits_inside_its_window_when_the_window_ends(
        database_url: str, store: OrderStore, clean_db: asyncpg.Pool[Any]) -> None:
    """Commits of one partition's streams, closer together than the other's advance window:
    the idle one still reaches the last of them, on notices alone (no polling)."""
    window = ProjectionConfig(poll_interval_s=HOUR, advance_every_s=0.3, idle_check_s=HOUR,
                              recheck_s=HOUR)
    async with TwoPartitions(database_url, clean_db, window) as loops:
        rng = random.Random(4)
        placed: list[list[int]] = [[], []]
        while len(placed[0]) < 3:  # until three orders of partition 0, each right after the last
            order = await handlers.place_order(store, random_order(rng, 1), ctx())
            placed[stream_hash(UUID(order.body["order_id"])) & 1].append(
                int(order.body["position"]))
        last = await clean_db.fetchval("SELECT max(position) FROM events")

        async def followed() -> bool:
            return loops.checkpoint(1) >= last

        await eventually(followed, 3, "the idle partition moved to the last commit")
        assert [sorted(loops.counted(0)), sorted(loops.counted(1))] == placed

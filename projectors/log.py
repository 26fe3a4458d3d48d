"""Reading the event log gap-safely, and waking up when it grows.

A sequence hands out positions before commit, so position 41 can become visible after 42.
Reading only rows whose writing transaction is older than every transaction still running
(`transaction_id < pg_snapshot_xmin(pg_current_snapshot())`) in (transaction_id, position)
order means nothing can later appear before what was read: no committed event is skipped,
and no writer waits on a global lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from app.kernel.listen import listen_postgres
from app.kernel.partitions import Partition, partition_filter
from app.kernel.positions import NOTIFY_CHANNEL, Checkpoint, LogPositions
from app.kernel.unavailable import POSTGRES_DOWN

# Every failure of PostgreSQL that can pass (connection lost or refused, admin shutdown,
# crash recovery, query cancelled, too many connections, a protocol state broken by a dropped
# connection, a standby mid-failover, timeouts): retried with back-off, never fatal.
SOURCE_ERRORS = POSTGRES_DOWN
# Where any answer will do (status rows, the LISTEN connection): every PostgreSQL error too.
ANY_SOURCE_ERROR: tuple[type[Exception], ...] = (*SOURCE_ERRORS, asyncpg.PostgresError)
# One batch of a partition after a checkpoint, and the last readable event of the whole log
# (the "horizon mark"), in one statement, so both come from one snapshot: when the batch is
# shorter than asked, the partition has applied every event of its own up to the mark.
# Still gap-safe per partition: a transaction running now has an id >= the snapshot's xmin,
# so it can never commit an event (of any partition) ordered before what is read here.
READ_BATCH = """
WITH mark AS (
    SELECT transaction_id::text AS tx, position FROM events
    WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY transaction_id DESC, position DESC LIMIT 1)
SELECT m.tx AS mark_tx, m.position AS mark_position, b.* FROM mark m
LEFT JOIN LATERAL (
    SELECT transaction_id, transaction_id::text AS tx, position AS pos, stream_id, version,
           type, schema_version, data::text AS data, recorded_at
    FROM events
    WHERE {partition} (transaction_id, position) > ($1::text::xid8, $2::bigint)
      AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY transaction_id, position
    LIMIT $3) b ON true
ORDER BY b.transaction_id, b.pos"""


def read_sql(partition: Partition) -> str:
    """READ_BATCH for one partition: the mask is a literal so the partition's index is used
    (a checked integer, never input; see app/kernel/partitions.py)."""
    return READ_BATCH.format(partition=partition_filter(partition))


# The backend whose open transaction holds the snapshot horizon back, if any.
OLDEST_WRITER = """
SELECT pid, extract(epoch FROM now() - xact_start)::float8 AS age_s, state,
       left(query, 200) AS query
FROM pg_stat_activity
WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
ORDER BY age(backend_xid) DESC LIMIT 1"""


@dataclass(frozen=True)
class LoggedEvent:
    """One row of the event log, as a projection sees it."""

    checkpoint: Checkpoint
    stream_id: UUID
    version: int
    type: str
    schema_version: int
    data: str  # the stored JSON text, parsed straight into the event model
    recorded_at: datetime

    @property
    def position(self) -> int:
        return self.checkpoint.position


@dataclass(frozen=True)
class Batch:
    """Events of one partition, and the last readable event of the whole log (None when the
    log is empty): a partition that read fewer events than asked is complete up to `mark`."""

    events: list[LoggedEvent]
    mark: Checkpoint | None

    def __len__(self) -> int:
        return len(self.events)


class LogReader(LogPositions):
    """Batches of committed events after a checkpoint, in the one order that never skips."""

    async def read(self, after: Checkpoint, limit: int) -> list[LoggedEvent]:
        """The whole log's next batch (every partition)."""
        return (await self.read_partition(after, limit, Partition())).events

    async def read_partition(self, after: Checkpoint, limit: int,
                             partition: Partition) -> Batch:
        rows = await self._pool.fetch(read_sql(partition), str(after.tx), after.position,
                                      limit)
        if not rows:
            return Batch([], None)
        mark = Checkpoint(int(rows[0]["mark_tx"]), rows[0]["mark_position"])
        events = [LoggedEvent(Checkpoint(int(r["tx"]), r["pos"]), r["stream_id"],
                              r["version"], r["type"], r["schema_version"], r["data"],
                              r["recorded_at"]) for r in rows if r["pos"] is not None]
        return Batch(events, mark)

    async def oldest_writer(self) -> dict[str, Any] | None:
        row = await self._pool.fetchrow(OLDEST_WRITER)
        return dict(row) if row else None


@dataclass(frozen=True)
class Notice:
    """What an append's NOTIFY says: the writing transaction and the stream's hash."""

    tx: int
    hashed: int


def parse_notice(payload: str) -> Notice | None:
    """`position:transaction_id:stream_hash`, as `app.write.store` sends it; None for any
    other payload (a bulk import's, an older writer's): a notice that wakes every partition."""
    parts = payload.split(":")
    if len(parts) != 3:
        return None
    try:
        return Notice(int(parts[1]), int(parts[2]))
    except ValueError:
        return None


class Waiter:
    """One partition's wake-up flag, set by the log's notices.

    A notice of the partition's own event sets it at once. Another partition's notice sets
    it while an event of its own it was told of is not read yet (held back by an older
    transaction: the one that just committed may be what held it); otherwise it sets it
    at once when the last wake is `every_s` old, or else when it will be (a timer), so an
    idle partition moves its checkpoint to the log's horizon within `every_s` of any commit,
    at most once per `every_s`. So a commit wakes one partition at once, not all of them. A
    notice it cannot read sets it always. Wakes only decide when to read: a missed one costs
    latency (the loop also polls), never an event.
    """

    def __init__(self, partition: Partition | None = None, every_s: float = 0.0) -> None:
        self.flag = asyncio.Event()
        self.partition = partition or Partition()
        self.every_s = every_s
        self._told_tx = 0  # the newest transaction with an event of its own it was told of
        self._read_tx = 0  # the partition has read every event of its own up to here
        self._woken_at = 0.0
        self._later: asyncio.TimerHandle | None = None  # a deferred wake, when one is due

    def notify(self, notice: Notice | None) -> None:
        now = time.monotonic()
        if notice is not None:
            if self.partition.holds(notice.hashed):
                self._told_tx = max(self._told_tx, notice.tx)
            elif self._told_tx <= self._read_tx and now - self._woken_at < self.every_s:
                # deferred, not dropped: a dropped wake left the watermark behind for a poll
                if self._later is None:
                    self._later = asyncio.get_running_loop().call_later(
                        self._woken_at + self.every_s - now, self._wake)
                return
        self._wake()

    def _wake(self) -> None:
        if self._later is not None:
            self._later.cancel()
            self._later = None
        self._woken_at = time.monotonic()
        self.flag.set()

    async def wait(self, seconds: float, read_through: Checkpoint | None = None) -> None:
        """Sleep until the log may have grown; `seconds` bounds it (the polling fallback).
        `read_through`: every event of the partition's own up to it has been read."""
        if read_through is not None:
            self._read_tx = max(self._read_tx, read_through.tx)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flag.wait(), seconds)
        self.flag.clear()


class LogNotifier:
    """One LISTEN connection for the whole process, fanned out to each projection's waiter.

    While the connection is down (PostgreSQL restarting), waiters fall back to polling;
    `run` reconnects (`app.kernel.listen`) and wakes them once it is back.
    """

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._waiters: list[Waiter] = []

    def waiter(self, partition: Partition | None = None, every_s: float = 0.0) -> Waiter:
        """A waiter for one partition, woken for other partitions' commits at most every
        `every_s` (`Waiter`)."""
        waiter = Waiter(partition, every_s)
        self._waiters.append(waiter)
        return waiter

    async def run(self) -> None:
        """Listen until cancelled."""
        await listen_postgres(self._dsn, NOTIFY_CHANNEL, self._on_notify)

    def _on_notify(self, payload: str) -> None:
        notice = parse_notice(payload)
        for waiter in self._waiters:
            waiter.notify(notice)


"""Places in the event log, shared by the write side, the projector and the read side.

A projection's place is the (transaction id, position) pair of its last applied event.
Events are read in (transaction_id, position) order, so "everything up to here" is exact
even though positions commit out of order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from app.kernel.partitions import Fence, Fenced, Partition, partition_filter

SELECT = """
SELECT transaction_id::text AS tx, position, log_identity FROM projection_checkpoints
WHERE name = $1"""
# The two channels of the log: an append notifies NOTIFY_CHANNEL in its own statement; a
# projection that moved its checkpoint notifies CHECKPOINT_CHANNEL (read-side waiters).
NOTIFY_CHANNEL = "orders_events"
CHECKPOINT_CHANNEL = "orders_checkpoints"
# Forward only within one log; a checkpoint of another log (identity) is replaced outright.
UPSERT = """
INSERT INTO projection_checkpoints (name, transaction_id, position, log_identity)
VALUES ($1, $2::text::xid8, $3, $4)
ON CONFLICT (name) DO UPDATE
SET transaction_id = EXCLUDED.transaction_id, position = EXCLUDED.position,
    log_identity = EXCLUDED.log_identity, updated_at = now()
WHERE projection_checkpoints.log_identity <> EXCLUDED.log_identity
   OR (projection_checkpoints.transaction_id, projection_checkpoints.position)
      < (EXCLUDED.transaction_id, EXCLUDED.position)"""
# The claim a fenced save is made under, locked until the save commits, so a claim taken
# over between the check and the save waits for the save (and then wins every later one).
CLAIM_TOKEN = """
SELECT token FROM projection_claims
WHERE projection = $1 AND partitions = $2 AND partition = $3 FOR SHARE"""
IDENTITY = """
SELECT l.cluster, l.epoch::text AS epoch, c.system_identifier::text AS live_cluster
FROM log_identity l, pg_control_system() c"""


@dataclass(frozen=True, order=True)
class Checkpoint:
    """Ordered like the log: first by transaction id, then by position."""

    tx: int
    position: int

    @classmethod
    def start(cls) -> Checkpoint:
        return cls(0, 0)


@dataclass(frozen=True)
class Frontier:
    """Where a partitioned projection stands: one checkpoint per partition.

    Partition i has applied every event of its own ordered at or before `checkpoints[i]`, so
    the projection is complete (every partition) through the least of them, the watermark.
    """

    checkpoints: tuple[Checkpoint, ...]

    @property
    def watermark(self) -> Checkpoint:
        return min(self.checkpoints, default=Checkpoint.start())

    @property
    def position(self) -> int:
        """What `X-Projection-Position` reports: the watermark's position."""
        return self.watermark.position

    @property
    def tx(self) -> int:
        return self.watermark.tx

    def covers(self, key: Checkpoint, hashed: int) -> bool:
        """The partition holding a stream that hashes to `hashed` applied the event `key`."""
        if not self.checkpoints:
            return False
        return self.checkpoints[hashed & (len(self.checkpoints) - 1)] >= key

    def at_least(self, other: Frontier) -> bool:
        """Every partition is at least as far as in `other`."""
        return len(self.checkpoints) == len(other.checkpoints) and all(
            a >= b for a, b in zip(self.checkpoints, other.checkpoints, strict=True))

    @classmethod
    def start(cls, partitions: int) -> Frontier:
        return cls((Checkpoint.start(),) * partitions)


@dataclass(frozen=True)
class LogIdentity:
    """Which log this is: the cluster it was created (or last rebased) on, and its epoch.

    Transaction ids only order events within one cluster's history, so a checkpoint is
    meaningful only against the log identity it was taken with.
    """

    cluster: str
    epoch: str
    live_cluster: str  # the cluster answering now

    @property
    def key(self) -> str:
        return f"{self.cluster}/{self.epoch}"

    @property
    def moved(self) -> bool:
        """The database now runs on another cluster than its log was written on (a restore
        into a new cluster): new transaction ids may sort below stored ones."""
        return self.cluster != self.live_cluster


async def log_identity(pool: asyncpg.Pool[Any]) -> LogIdentity:
    """The identity of the log in this database."""
    row = await pool.fetchrow(IDENTITY)
    if row is None:
        raise RuntimeError("log_identity is empty: run `orders migrate`")
    return LogIdentity(row["cluster"], row["epoch"], row["live_cluster"])


class PostgresCheckpoints:
    """Checkpoints kept in PostgreSQL; a save never moves one backwards."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    @property
    def pool(self) -> asyncpg.Pool[Any]:
        return self._pool

    async def load(self, name: str) -> Checkpoint:
        return (await self.load_bound(name))[0]

    async def load_bound(self, name: str) -> tuple[Checkpoint, str | None]:
        """The checkpoint and the log identity it was taken against (None when absent)."""
        row = await self._pool.fetchrow(SELECT, name)
        if row is None:
            return Checkpoint.start(), None
        return Checkpoint(int(row["tx"]), row["position"]), row["log_identity"]

    async def save(self, name: str, checkpoint: Checkpoint, identity: str,
                   fence: Fence | None = None) -> None:
        """Move the checkpoint forward; with a `fence`, only while its claim is current
        (raises Fenced otherwise: another process owns the partition now)."""
        async with self._pool.acquire() as conn, conn.transaction():
            if fence is not None:
                token = await conn.fetchval(CLAIM_TOKEN, fence.projection,
                                            fence.partition.count, fence.partition.index)
                if token != fence.token:
                    raise Fenced(f"{fence.projection} {fence.partition.label}: claim token "
                                 f"{fence.token} is stale (now {token})")
            await conn.execute(UPSERT, name, str(checkpoint.tx), checkpoint.position, identity)
            # Read routers waiting on `X-Min-Position` wake on this instead of polling.
            await conn.execute("SELECT pg_notify($1, $2)", CHECKPOINT_CHANNEL, name)

    async def delete(self, name: str) -> None:
        await self._pool.execute("DELETE FROM projection_checkpoints WHERE name = $1", name)


PENDING = """
SELECT count(*) AS events, min(recorded_at) AS oldest
FROM events WHERE {partition} (transaction_id, position) > ($1::text::xid8, $2::bigint)"""
HEAD = "SELECT coalesce(max(position), 0) FROM events"
KEY_OF = """
SELECT transaction_id::text AS tx, position, stream_hash FROM events WHERE position = $1"""


@dataclass(frozen=True)
class Pending:
    events: int
    oldest: datetime | None


class LogPositions:
    """Questions about the log that both the projector and the read routers ask."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def head(self) -> int:
        """The highest position written so far (committed or not yet visible)."""
        head: int = await self._pool.fetchval(HEAD)
        return head

    async def pending(self, after: Checkpoint, partition: Partition | None = None) -> Pending:
        """Committed events (of `partition`, else of the whole log) ordered after `after`,
        including ones still held back."""
        sql = PENDING.format(partition=partition_filter(partition or Partition()))
        row = await self._pool.fetchrow(sql, str(after.tx), after.position)
        assert row is not None
        return Pending(row["events"], row["oldest"])

    async def key_of(self, position: int) -> Checkpoint | None:
        """The (transaction id, position) key of the event at `position`, if it exists."""
        located = await self.locate(position)
        return located[0] if located else None

    async def locate(self, position: int) -> tuple[Checkpoint, int] | None:
        """The event's (transaction id, position) key and its stream hash (its partition)."""
        row = await self._pool.fetchrow(KEY_OF, position)
        return (Checkpoint(int(row["tx"]), row["position"]), row["stream_hash"]) if row else None

"""Partition claims in PostgreSQL: which projector process applies which partition.

Every process renews a member row and the leases of its claims each heartbeat. Live members
are ranked by name and each takes an even share of every projection's partitions (the first
`P mod n` one more): a process holding more than its share releases the rest, one holding
less claims partitions that are free or whose lease ran out (a process that died). Every
claim increments the partition's fencing token; the token travels with each checkpoint
write, and the stores refuse a stale one, so a process that lost a claim (paused, cut off)
can never move that partition's checkpoint. No cluster of our own: PostgreSQL decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from app.kernel.partitions import (
    Partition,
    all_partitions,
    partition_index_name,
    partition_index_sql,
)
from projectors.log import ANY_SOURCE_ERROR

log = logging.getLogger("orders.claims")

ENSURE_ROWS = """
INSERT INTO projection_claims (projection, partitions, partition)
SELECT $1, $2, p FROM generate_series(0, $2 - 1) AS p ON CONFLICT DO NOTHING"""
RENEW_MEMBER = """
INSERT INTO projector_members (owner, lease_until) VALUES ($1, now() + $2 * interval '1 s')
ON CONFLICT (owner) DO UPDATE SET lease_until = EXCLUDED.lease_until"""
MEMBERS = "SELECT owner FROM projector_members WHERE lease_until > now() ORDER BY owner"
RENEW_CLAIMS = """
UPDATE projection_claims SET lease_until = now() + $3 * interval '1 s', heartbeat_at = now()
WHERE owner = $1 AND partitions = $2 AND lease_until > now()
RETURNING projection, partition, token"""
# Free or expired partitions only, lowest first; SKIP LOCKED: two claimers never wait on, or
# take, the same row. The token grows with every claim (the fence).
CLAIM = """
UPDATE projection_claims c
SET owner = $1, token = c.token + 1, lease_until = now() + $5 * interval '1 s',
    heartbeat_at = now(), claimed_at = now()
WHERE (c.projection, c.partitions, c.partition) IN (
    SELECT projection, partitions, partition FROM projection_claims
    WHERE projection = $2 AND partitions = $3 AND (owner IS NULL OR lease_until <= now())
    ORDER BY partition LIMIT $4 FOR UPDATE SKIP LOCKED)
RETURNING partition, token"""
RELEASE = """
UPDATE projection_claims SET owner = NULL, lease_until = '-infinity'
WHERE owner = $1 AND projection = $2 AND partitions = $3 AND partition = ANY($4::int[])"""
RELEASE_ALL = """
UPDATE projection_claims SET owner = NULL, lease_until = '-infinity' WHERE owner = $1"""
LEAVE = "DELETE FROM projector_members WHERE owner = $1"


def new_owner() -> str:
    """A name no other projector process has: host, pid and a random part (two projectors
    in one process are two members)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def fair_share(partitions: int, members: list[str], owner: str) -> int:
    """How many of `partitions` the member `owner` should hold among `members`."""
    ranked = sorted(set(members) | {owner})
    rank, n = ranked.index(owner), len(ranked)
    return partitions // n + (1 if rank < partitions % n else 0)


@dataclass
class Claim:
    """One partition of one projection, as this process holds it (token None: not held)."""

    projection: str
    partition: Partition
    token: int | None = None


class Coordinator:
    """Claims this process's share of every projection's partitions and keeps it."""

    def __init__(self, pool: asyncpg.Pool[Any], projections: list[str], partitions: int,
                 lease_s: float = 3.0, heartbeat_s: float = 1.0,
                 owner: str | None = None) -> None:
        self._pool = pool
        self.names = projections
        self.count = partitions
        self.lease_s = lease_s
        self.heartbeat_s = heartbeat_s
        self.owner = owner or new_owner()
        self.claims = {(name, p.index): Claim(name, p) for name in projections
                       for p in all_partitions(partitions)}
        self._ready = False
        self._renewed_at = 0.0

    def claim(self, projection: str, partition: Partition) -> Claim:
        return self.claims[(projection, partition.index)]

    async def run(self, stop: asyncio.Event) -> None:
        """Heartbeat until `stop`; then release every claim so others take over at once."""
        try:
            while not stop.is_set():
                try:
                    await self.tick()
                except ANY_SOURCE_ERROR as exc:
                    log.warning("claims: %s", exc)
                    self._expire_if_stale()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.heartbeat_s)
        finally:
            await self.leave()

    def _expire_if_stale(self) -> None:
        """Unrenewed past the lease: others may hold our partitions now; stop applying."""
        if time.monotonic() - self._renewed_at > self.lease_s:
            for claim in self.claims.values():
                claim.token = None

    async def _prepare(self) -> None:
        index = partition_index_name(self.count)
        if self.count > 1 and not await self._pool.fetchval(
                "SELECT to_regclass($1) IS NOT NULL", index):  # `orders migrate` makes it
            try:
                await self._pool.execute(partition_index_sql(self.count))
            except asyncpg.PostgresError as exc:  # not the owner: reads scan until it exists
                log.warning("no index for %d partitions (%s); run `orders migrate` with "
                            "ORDERS_PARTITIONS=%d", self.count, exc, self.count)
        for name in self.names:
            await self._pool.execute(ENSURE_ROWS, name, self.count)
        self._ready = True

    async def tick(self) -> None:
        """One heartbeat: renew, then release or claim toward this process's share."""
        if not self._ready:
            await self._prepare()
        started = time.monotonic()
        await self._pool.execute(RENEW_MEMBER, self.owner, self.lease_s)
        held: dict[tuple[str, int], int] = {
            (r["projection"], r["partition"]): r["token"]
            for r in await self._pool.fetch(RENEW_CLAIMS, self.owner, self.count, self.lease_s)}
        self._renewed_at = started
        members = [r["owner"] for r in await self._pool.fetch(MEMBERS)]
        share = fair_share(self.count, members, self.owner)
        for name in self.names:
            mine = sorted(index for (projection, index) in held if projection == name)
            if len(mine) > share:
                extra = mine[share:]
                await self._pool.execute(RELEASE, self.owner, name, self.count, extra)
                for index in extra:
                    del held[(name, index)]
            elif len(mine) < share:
                for row in await self._pool.fetch(CLAIM, self.owner, name, self.count,
                                                  share - len(mine), self.lease_s):
                    held[(name, row["partition"])] = row["token"]
        for key, claim in self.claims.items():
            claim.token = held.get(key)

    async def leave(self) -> None:
        """Release every claim and the member row (a clean shutdown hands over at once)."""
        for claim in self.claims.values():
            claim.token = None
        with contextlib.suppress(Exception):
            await self._pool.execute(RELEASE_ALL, self.owner)
            await self._pool.execute(LEAVE, self.owner)

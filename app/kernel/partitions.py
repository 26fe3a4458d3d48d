"""Partitions of the event log: which projection partition an event (its stream) belongs to.

Every event row carries `stream_hash`, a stable hash of its stream id fixed at append (the
first four bytes of the md5 of the id's text form, as a signed 32-bit integer). A projection
run as P partitions (P a power of two) gives the event to partition `stream_hash & (P - 1)`:
one stream never spans two partitions, so the order within a stream is kept.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from uuid import UUID

# What Settings start with; the read models' helpers assume it where no count is given.
DEFAULT_PARTITIONS = 4


def stream_hash(stream_id: UUID) -> int:
    """The `stream_hash` column as PostgreSQL computes it (migration 005)."""
    return int.from_bytes(hashlib.md5(str(stream_id).encode()).digest()[:4], "big",
                          signed=True)


def check_count(count: int) -> int:
    """`count` when it is a usable number of partitions (a power of two, 1..1024)."""
    if count < 1 or count > 1024 or count & (count - 1):
        raise ValueError(f"partitions must be a power of two from 1 to 1024, not {count}")
    return count


@dataclass(frozen=True)
class Partition:
    """Partition `index` of a projection run as `count` partitions."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        check_count(self.count)
        if not 0 <= self.index < self.count:
            raise ValueError(f"partition {self.index} is not one of {self.count}")

    @property
    def mask(self) -> int:
        return self.count - 1

    @property
    def whole(self) -> bool:
        """One partition: the whole log."""
        return self.count == 1

    @property
    def label(self) -> str:
        """`p3of8`: names checkpoints, key tags and claims of this partition."""
        return f"p{self.index}of{self.count}"

    def holds(self, hashed: int) -> bool:
        return hashed & self.mask == self.index


def all_partitions(count: int) -> list[Partition]:
    return [Partition(i, count) for i in range(check_count(count))]


def partition_of(hashed: int, count: int) -> Partition:
    """The partition of `count` holding an event whose stream hashes to `hashed`."""
    return Partition(hashed & (check_count(count) - 1), count)


def partition_index_name(count: int) -> str:
    return f"events_partition_{check_count(count)}"


def partition_index_sql(count: int) -> str:
    """The index one partition's read uses; the mask is a literal (the planner matches the
    index expression only against a constant), built from a checked integer, never input."""
    mask = check_count(count) - 1
    return (f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {partition_index_name(count)} "
            f"ON events ((stream_hash & {mask}), transaction_id, position)")


def partition_filter(partition: Partition) -> str:
    """The WHERE term (with a trailing AND) selecting one partition's events; empty for the
    whole log. Literal numbers, so the partition's index matches."""
    if partition.whole:
        return ""
    return f"(stream_hash & {partition.mask}) = {partition.index} AND"


class Fenced(Exception):
    """A write carried a fencing token older than the partition's current claim: another
    process owns the partition now, and this one must stop writing to it."""


@dataclass(frozen=True)
class Fence:
    """The claim a write is made under: the store refuses it once `token` is not current."""

    projection: str
    partition: Partition
    token: int

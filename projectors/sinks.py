"""What every sink shares: the interface the runner drives and the errors it tells apart.

    SinkUnavailable  the sink is down or overloaded: retry with back-off, the batch is intact
    SinkMoved        a rebuild was swapped in: reload the checkpoint of the new target
    SinkRewound      the store holds less than the projection believed (it came back from an
                     older snapshot, a lagging replica, a lost write): re-apply from `stored`
    SinkGone         the read model is gone (no pointer, no index, a checkpoint of another
                     log): build a fresh one from the start of the log, publish it when caught up
    PoisonEvent      the sink rejects this event's content: dead-letter it, never skip silently

A projection never trusts a position it keeps in memory over what the store holds: every
batch starts with the sink checking that its stored checkpoint is where the batch starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from app.kernel.partitions import Partition
from app.kernel.positions import Checkpoint
from projectors.changes import Change


class SinkUnavailable(Exception):
    """The read model's store did not accept the batch for a reason that may pass."""


class SinkMoved(Exception):
    """Readers were switched to another physical target (a rebuild was swapped in); the
    projection must reload its checkpoint from the new target before applying more."""


class SinkRewound(Exception):
    """The store's own checkpoint is behind where the projection believed it was."""

    def __init__(self, stored: Checkpoint, expected: Checkpoint) -> None:
        super().__init__(f"store holds {stored.position} (tx {stored.tx}), "
                         f"expected {expected.position} (tx {expected.tx})")
        self.stored = stored
        self.expected = expected


class SinkGone(Exception):
    """The read model no longer exists as the projection knew it; rebuild it from the log.

    `unpublish`: readers still see a target that describes another log (a database restored
    into another cluster): hide and drop it, so they get "being built", not wrong figures.
    """

    def __init__(self, message: str, unpublish: bool = False) -> None:
        super().__init__(message)
        self.unpublish = unpublish


class PoisonEvent(Exception):
    """The store refused an event for its content; retrying cannot help."""

    def __init__(self, position: int, error: str) -> None:
        super().__init__(error)
        self.position = position
        self.error = error


@dataclass
class ApplyResult:
    applied: int = 0
    stale: int = 0


class Sink(Protocol):
    """A read model fed by the projector; it keeps its own checkpoint."""

    name: str
    # While caught up, the least time between two batches: lets a costly per-batch step
    # (an index refresh) serve more events, for at most this much added latency.
    batch_interval_s: float
    # While caught up, how often at most the checkpoint follows the log's horizon past other
    # partitions' events: each move is a store write and a change notice to readers, and
    # the watermark every reader sees waits for the slowest partition to move.
    horizon_every_s: float

    # The log identity checkpoints are bound to (set by the projection before it reads one).
    log_identity: str
    # Which partition of the log this sink applies (and keeps the checkpoint of).
    partition: Partition

    def fence(self, token: int | None) -> None:
        """Write under this claim's fencing token from now on (None: no claim, a rebuild's
        own target); a store that saw a newer token refuses with `Fenced`."""

    @property
    def target(self) -> str:
        """The physical index or key generation written now."""

    @property
    def building(self) -> bool:
        """True while filling a fresh target that readers do not see yet."""

    async def prepare(self) -> None:
        """Find the live target; with none, start building one (see `building`)."""

    async def verify(self, expected: Checkpoint) -> None:
        """Check (cheaply, throttled) that the store still holds `expected`; raise
        SinkMoved, SinkRewound or SinkGone when it does not."""

    async def checkpoint(self) -> Checkpoint:
        """Where this read model stands in the log (raises SinkGone for another log's)."""

    async def apply(self, changes: list[Change], start: Checkpoint,
                    upto: Checkpoint) -> ApplyResult:
        """Apply the changes durably, then move the checkpoint from `start` to `upto`;
        idempotent. Raises SinkRewound/SinkGone/SinkMoved instead of applying when the
        store is not at `start`."""

    async def rebuild(self, unpublish: bool = False) -> None:
        """Start a fresh, unpublished target; the projection then fills it from the start.
        With `unpublish`, first withdraw and drop the target readers see now."""

    async def publish(self) -> None:
        """Point readers at the built target (raises SinkMoved if another was published)."""

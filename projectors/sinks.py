"""What every sink shares: the interface the runner drives and the errors it tells apart.

    SinkUnavailable  the sink is down or overloaded: retry with back-off, the batch is intact
    SinkMoved        a rebuild was swapped in: reload the checkpoint of the new target
    PoisonEvent      the sink rejects this event's content: dead-letter it, never skip silently
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from app.positions import Checkpoint
from projectors.changes import Change


class SinkUnavailable(Exception):
    """The read model's store did not accept the batch for a reason that may pass."""


class SinkMoved(Exception):
    """Readers were switched to another physical target (a rebuild was swapped in); the
    projection must reload its checkpoint from the new target before applying more."""


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

    @property
    def target(self) -> str:
        """The physical index or key generation written now."""

    async def prepare(self) -> None:
        """Create what the read model needs (index, pointer keys); safe to repeat."""

    async def follow(self) -> None:
        """Raise SinkMoved when readers were switched to a rebuilt target (checked cheaply)."""

    async def checkpoint(self) -> Checkpoint:
        """Where this read model stands in the log."""

    async def apply(self, changes: list[Change], upto: Checkpoint) -> ApplyResult:
        """Apply the changes durably, then move the checkpoint to `upto`; idempotent."""

"""Causal consistency: answer a read only once its projection has applied position P.

"The largest applied position >= P" is wrong when positions commit out of order: a lower
position can still be in flight. Each partition of the projection applies its events in
(transaction id, position) order, so P is applied exactly when the checkpoint pair of the
partition holding P's stream is at or after P's own pair; P's pair and stream hash are one
primary-key lookup away. Only that partition is waited for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from app.kernel.positions import Frontier, LogPositions
from app.read.progress import Broadcast

MAX_WAIT_MS = 5000
# Between notices, re-check at most this often: a safety net, not a busy loop.
RECHECK_S = 0.5


class ProjectionBehind(Exception):
    """The projection has not applied the requested position (yet)."""

    def __init__(self, projection: str, required: int, current: int) -> None:
        super().__init__(f"the {projection} projection has not applied position {required} yet")
        self.projection = projection
        self.required = required
        self.current = current


async def wait_until_applied(projection: str, min_position: int | None, wait_ms: int,
                             checkpoint: Callable[[], Awaitable[Frontier]],
                             log: LogPositions, progress: Broadcast) -> Frontier:
    """The projection's frontier once the partition holding `min_position` covers it,
    waiting up to `wait_ms`."""
    async with progress.subscribe() as notices:  # subscribe first: no notice can slip by
        current = await checkpoint()
        if min_position is None or min_position <= 0:
            return current
        deadline = time.monotonic() + min(wait_ms, MAX_WAIT_MS) / 1000
        located = None
        while True:
            located = located or await log.locate(min_position)
            if located is not None and current.covers(*located):
                return current
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProjectionBehind(projection, min_position, current.position)
            try:
                await asyncio.wait_for(notices.get(), min(remaining, RECHECK_S))
            except TimeoutError:
                pass
            current = await checkpoint()

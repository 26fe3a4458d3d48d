"""An in-memory sink that keeps the contract of the real ones, for fast tests of the runner.

`MemoryStore` plays the server (Redis or Elasticsearch): generations of targets, a pointer
naming the live one, a generation counter. Each target holds the newest version of every
order it saw, the positions it counted, and its own checkpoint bound to a log identity.
Several `InMemorySink`s on one store behave like several processes on one server.

The store's test hooks simulate the faults real stores meet: `lose_everything()` (a wiped
server) and `snapshot()`/`restore()` (a server back from an older snapshot).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from uuid import UUID

from app.kernel.partitions import Partition
from app.kernel.positions import Checkpoint
from projectors.changes import Change
from projectors.sinks import ApplyResult, SinkGone, SinkMoved, SinkRewound


@dataclass
class Target:
    """One generation of the read model and the checkpoint written with it."""

    checkpoint: Checkpoint = field(default_factory=Checkpoint.start)
    log: str | None = None
    versions: dict[UUID, int] = field(default_factory=dict)
    counted: list[int] = field(default_factory=list)  # positions, in the order applied


@dataclass
class MemoryState:
    targets: dict[str, Target] = field(default_factory=dict)
    pointer: str | None = None
    generations: int = 0


class MemoryStore:
    """The server behind in-memory sinks; `state` is what a snapshot captures."""

    def __init__(self) -> None:
        self.state = MemoryState()

    def live(self) -> Target | None:
        """The target readers see, if any."""
        return self.state.targets.get(self.state.pointer or "")

    def snapshot(self) -> MemoryState:
        """Test hook: a copy of everything, to `restore` later."""
        return copy.deepcopy(self.state)

    def restore(self, snapshot: MemoryState) -> None:
        """Test hook: come back from an older snapshot, losing every later write."""
        self.state = copy.deepcopy(snapshot)

    def lose_everything(self) -> None:
        """Test hook: a wiped server (targets, pointer and generation counter gone)."""
        self.state = MemoryState()


class InMemorySink:
    """Feeds one generation in a `MemoryStore`; follows the pointer like a live sink."""

    name = "memory"
    batch_interval_s = 0.0
    horizon_every_s = 0.0

    def __init__(self, store: MemoryStore | None = None, name: str = "memory") -> None:
        self.store = store or MemoryStore()
        self.name = name
        self.generation = ""
        self.log_identity = ""
        self.partition = Partition()  # the whole log
        self.fencing_token: int | None = None
        self._building = False

    def fence(self, token: int | None) -> None:
        self.fencing_token = token

    @property
    def target(self) -> str:
        return self.generation

    @property
    def building(self) -> bool:
        return self._building

    async def prepare(self) -> None:
        """Follow the live generation; with none, start building one."""
        if self.store.state.pointer is None:
            await self.rebuild()
        else:
            self.generation, self._building = self.store.state.pointer, False

    async def rebuild(self, unpublish: bool = False) -> None:
        """Claim a generation no one has used and fill it unseen."""
        state = self.store.state
        if unpublish and self.generation:
            if state.pointer == self.generation:
                state.pointer = None
            state.targets.pop(self.generation, None)
        # Generation numbers only grow, also after the counter was lost with the data.
        state.generations = max(state.generations, _number(self.generation)) + 1
        self.generation = f"v{state.generations}"
        state.targets[self.generation] = Target()
        self._building = True

    async def publish(self) -> None:
        """Point readers at the built generation, unless another was published since."""
        state = self.store.state
        self._building = False
        if state.pointer is None:
            state.pointer = self.generation
        elif state.pointer != self.generation:
            state.targets.pop(self.generation, None)
            self.generation = state.pointer
            raise SinkMoved(self.generation)

    async def checkpoint(self) -> Checkpoint:
        target = self.store.state.targets.get(self.generation)
        if target is None:
            return Checkpoint.start()
        if target.log is not None and target.log != self.log_identity:
            raise SinkGone("the checkpoint belongs to another log", unpublish=True)
        return target.checkpoint

    async def verify(self, expected: Checkpoint) -> None:
        """Unthrottled: a check costs nothing here."""
        self._check(expected)

    async def apply(self, changes: list[Change], start: Checkpoint,
                    upto: Checkpoint) -> ApplyResult:
        """Count each change past the stored checkpoint once, then move it to `upto`."""
        target = self._check(start)
        result = ApplyResult()
        for change in changes:
            if change.logged.checkpoint <= target.checkpoint:
                result.stale += 1
                continue
            order = change.after
            if order.version > target.versions.get(order.order_id, 0):
                target.versions[order.order_id] = order.version
            target.counted.append(change.logged.position)
            result.applied += 1
        if upto > target.checkpoint:
            target.checkpoint, target.log = upto, self.log_identity
        return result

    def _check(self, start: Checkpoint) -> Target:
        """The target, if the store still holds it at `start` (or beyond)."""
        state = self.store.state
        if not self._building:
            if state.pointer is None:
                raise SinkGone("no generation is published any more")
            if state.pointer != self.generation:
                self.generation = state.pointer
                raise SinkMoved(self.generation)
        target = state.targets.get(self.generation)
        if target is None:
            raise SinkGone(f"generation {self.generation} is gone")
        if target.log is not None and target.log != self.log_identity:
            raise SinkGone("the checkpoint belongs to another log", unpublish=True)
        if start > target.checkpoint:
            raise SinkRewound(target.checkpoint, start)
        return target


def _number(generation: str) -> int:
    return int(generation[1:]) if generation[1:].isdigit() else 0

"""The contract every sink keeps, stated once and run against each implementation.

A subclass provides a `harness` fixture: it makes sinks on one store (as separate processes
would), and injects the faults real stores meet (a wipe, a restore of an older snapshot).
"""

from __future__ import annotations

from typing import Any, Protocol

import asyncpg
import pytest

from app.kernel.positions import Checkpoint
from app.write.store import OrderStore
from projectors.changes import Change
from projectors.sinks import Sink, SinkGone, SinkMoved, SinkRewound
from tests.helpers.support import logged_changes, write_orders

START = Checkpoint.start()
ANOTHER_LOG = "another-cluster/1"


class Harness(Protocol):
    def make(self) -> Sink:
        """A new sink on the shared store, bound to this log's identity (not prepared)."""

    async def snapshot(self) -> Any:
        """What the store holds now, to `restore` later."""

    async def restore(self, snapshot: Any) -> None:
        """Bring the store back to `snapshot`: every later write is lost."""

    async def lose_everything(self) -> None:
        """Wipe the store."""

    async def contents(self) -> Any:
        """What readers see now."""

    async def truth(self) -> Any:
        """What readers should see once every logged event was applied exactly once."""


def end(changes: list[Change]) -> Checkpoint:
    return changes[-1].logged.checkpoint


def thirds(changes: list[Change]) -> tuple[list[Change], list[Change], list[Change]]:
    n = len(changes) // 3
    return changes[:n], changes[n:2 * n], changes[2 * n:]


async def fresh(harness: Harness) -> Sink:
    sink = harness.make()
    await sink.prepare()
    return sink


async def recover(sink: Sink, lost: SinkRewound | SinkGone, changes: list[Change]) -> None:
    """What the runner does: re-apply from what the store holds, or rebuild and publish."""
    if isinstance(lost, SinkRewound):
        rest = [c for c in changes if c.logged.checkpoint > lost.stored]
        await sink.apply(rest, lost.stored, end(changes))
        return
    await sink.rebuild(lost.unpublish)
    assert sink.building
    await sink.apply(changes, START, end(changes))
    await sink.publish()


class SinkContract:
    """Subclass as `Test...` and override `harness`."""

    @pytest.fixture
    def harness(self) -> Harness:
        raise NotImplementedError

    @pytest.fixture
    async def changes(self, store: OrderStore, clean_db: asyncpg.Pool[Any]) -> list[Change]:
        await write_orders(store, 24, writers=3)
        changes = await logged_changes(clean_db)
        assert len(changes) >= 24
        return changes

    async def test_a_fresh_sink_builds_unseen_then_publishes(self, harness: Harness) -> None:
        sink = await fresh(harness)
        assert sink.building and sink.target
        assert await sink.checkpoint() == START
        await sink.publish()
        assert not sink.building
        follower = await fresh(harness)
        assert follower.target == sink.target and not follower.building

    async def test_apply_moves_the_checkpoint_to_upto(
            self, harness: Harness, changes: list[Change]) -> None:
        sink = await fresh(harness)
        result = await sink.apply(changes, START, end(changes))
        assert result.applied > 0
        assert await sink.checkpoint() == end(changes)
        await sink.publish()
        assert await (await fresh(harness)).checkpoint() == end(changes)
        assert await harness.contents() == await harness.truth()

    async def test_batches_in_a_row_each_start_where_the_last_ended(
            self, harness: Harness, changes: list[Change]) -> None:
        a, b, c = thirds(changes)
        sink = await fresh(harness)
        await sink.apply(a, START, end(a))
        await sink.publish()
        await sink.apply(b, end(a), end(b))
        await sink.apply(c, end(b), end(c))
        assert await sink.checkpoint() == end(c)
        assert await harness.contents() == await harness.truth()

    async def test_replaying_a_batch_from_the_same_start_changes_nothing(
            self, harness: Harness, changes: list[Change]) -> None:
        sink = await fresh(harness)
        await sink.apply(changes, START, end(changes))
        await sink.publish()
        before = await harness.contents()
        again = await sink.apply(changes, START, end(changes))
        assert again.applied == 0
        assert await sink.checkpoint() == end(changes)
        assert await harness.contents() == before == await harness.truth()

    async def test_a_restarted_sink_reads_the_checkpoint_the_store_holds(
            self, harness: Harness, changes: list[Change]) -> None:
        a, b, _ = thirds(changes)
        sink = await fresh(harness)
        await sink.apply(a, START, end(a))
        await sink.publish()
        older = await harness.snapshot()
        await sink.apply(b, end(a), end(b))
        await harness.restore(older)
        assert await (await fresh(harness)).checkpoint() == end(a)

    async def test_a_store_back_from_an_older_snapshot_is_not_accepted_silently(
            self, harness: Harness, changes: list[Change]) -> None:
        a, b, c = thirds(changes)
        sink = await fresh(harness)
        await sink.apply(a, START, end(a))
        await sink.publish()
        older = await harness.snapshot()
        await sink.apply(b, end(a), end(b))
        await harness.restore(older)
        with pytest.raises((SinkRewound, SinkGone)) as lost:
            await sink.apply(c, end(b), end(c))
        if isinstance(lost.value, SinkRewound):
            assert lost.value.stored == end(a) and lost.value.expected == end(b)
        await recover(sink, lost.value, changes)
        assert await sink.checkpoint() == end(c)
        assert await harness.contents() == await harness.truth()

    async def test_a_store_that_lost_everything_is_not_accepted_silently(
            self, harness: Harness, changes: list[Change]) -> None:
        a, b, c = thirds(changes)
        sink = await fresh(harness)
        await sink.apply(a, START, end(a))
        await sink.publish()
        await harness.lose_everything()
        with pytest.raises((SinkRewound, SinkGone)) as lost:
            await sink.apply(b, end(a), end(b))
        await recover(sink, lost.value, changes)
        assert await sink.checkpoint() == end(c)
        assert await harness.contents() == await harness.truth()

    async def test_a_checkpoint_of_another_log_is_gone_and_unpublished(
            self, harness: Harness, changes: list[Change]) -> None:
        a, b, _ = thirds(changes)
        sink = await fresh(harness)
        await sink.apply(a, START, end(a))
        await sink.publish()
        rebased = harness.make()
        rebased.log_identity = ANOTHER_LOG
        await rebased.prepare()
        with pytest.raises(SinkGone) as on_load:
            await rebased.checkpoint()
        assert on_load.value.unpublish
        with pytest.raises(SinkGone) as on_apply:
            await rebased.apply(b, end(a), end(b))
        assert on_apply.value.unpublish
        await rebased.rebuild(unpublish=True)
        # A fresh target (the search sink may reuse the name, never the index uuid).
        assert rebased.building and await rebased.checkpoint() == START
        newcomer = harness.make()
        newcomer.log_identity = ANOTHER_LOG
        await newcomer.prepare()
        assert newcomer.building, "readers must not see the other log's figures"

    async def test_a_second_publish_follows_the_first(
            self, harness: Harness, changes: list[Change]) -> None:
        first, second = await fresh(harness), await fresh(harness)
        assert first.target != second.target
        for sink in (first, second):
            await sink.apply(changes, START, end(changes))
        await first.publish()
        with pytest.raises(SinkMoved):
            await second.publish()
        assert second.target == first.target and not second.building
        assert await second.checkpoint() == end(changes)

"""Which log notices wake which partition (projectors/log.py, `Waiter`): no storage, the
rules alone. tests/contract/test_partition_wakes.py runs them on PostgreSQL's notices."""

from __future__ import annotations

import asyncio

from app.kernel.partitions import Partition
from app.kernel.positions import Checkpoint
from projectors.log import Notice, Waiter, parse_notice

MINE, OTHERS = 6, 7  # stream hashes held by partition 0 and partition 1 of 2


def woken(waiter: Waiter) -> bool:
    was = waiter.flag.is_set()
    waiter.flag.clear()
    return was


def test_notices_are_read_from_the_append_payload_and_anything_else_wakes_everyone() -> None:
    assert parse_notice("41:1234:-7") == Notice(tx=1234, hashed=-7)
    assert parse_notice("batch") is None  # a bulk import's notice
    assert parse_notice("41") is None  # a writer that names no stream
    assert parse_notice("reconnected") is None
    assert parse_notice("a:b:c") is None
    assert Partition(1, 2).holds(-7) and not Partition(0, 2).holds(-7)


async def test_only_the_partition_holding_the_stream_wakes_at_once() -> None:
    waiter = Waiter(Partition(0, 2), every_s=3600)
    waiter.notify(Notice(tx=10, hashed=MINE))
    assert woken(waiter)
    await waiter.wait(0, read_through=Checkpoint(10, 5))  # read it
    waiter.notify(Notice(tx=11, hashed=OTHERS))
    assert not woken(waiter), "another partition's event woke this one"
    waiter.notify(None)
    assert woken(waiter), "a notice naming no stream wakes every partition"


async def test_an_event_held_back_makes_every_notice_wake_until_it_is_read() -> None:
    waiter = Waiter(Partition(0, 2), every_s=3600)
    waiter.notify(Notice(tx=20, hashed=MINE))
    assert woken(waiter)
    # the read found nothing past tx 19: an older open transaction held tx 20 back
    await waiter.wait(0, read_through=Checkpoint(19, 3))
    waiter.notify(Notice(tx=18, hashed=OTHERS))  # maybe the transaction that held it
    assert woken(waiter)
    await waiter.wait(0, read_through=Checkpoint(19, 4))
    waiter.notify(Notice(tx=21, hashed=OTHERS))
    assert woken(waiter), "still owed tx 20"
    await waiter.wait(0, read_through=Checkpoint(21, 9))  # read through it
    waiter.notify(Notice(tx=22, hashed=OTHERS))
    assert not woken(waiter)


async def test_an_idle_partition_still_wakes_every_so_often_to_follow_the_horizon() -> None:
    waiter = Waiter(Partition(1, 2), every_s=0.0)
    waiter.notify(Notice(tx=30, hashed=MINE))  # partition 0's event: partition 1 is idle
    assert woken(waiter), "every_s has passed: the idle partition moves to the horizon"
    waiter = Waiter(Partition(1, 2), every_s=3600)
    waiter.notify(Notice(tx=31, hashed=MINE))
    assert woken(waiter), "the first notice after start"
    waiter.notify(Notice(tx=32, hashed=MINE))
    assert not woken(waiter)


async def test_a_notice_inside_the_window_wakes_the_idle_partition_when_it_ends() -> None:
    waiter = Waiter(Partition(1, 2), every_s=0.05)
    waiter.notify(Notice(tx=40, hashed=MINE))
    assert woken(waiter), "the first notice after start"
    waiter.notify(Notice(tx=41, hashed=MINE))
    waiter.notify(Notice(tx=42, hashed=MINE))
    assert not woken(waiter), "inside the window: deferred"
    await asyncio.sleep(0.15)
    assert woken(waiter), "deferred, not dropped: the window ended and it woke"
    await asyncio.sleep(0.15)
    assert not woken(waiter), "the notices inside one window make one wake"

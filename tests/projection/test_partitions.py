"""Partitions of the log: fencing of a lost claim, causal reads per partition, and three
projector processes sharing the partitions through a SIGKILL of one."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any
from uuid import UUID

import asyncpg
import httpx
from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis

from app.kernel.partitions import Fenced, Partition, partition_of, stream_hash
from app.kernel.positions import Checkpoint, PostgresCheckpoints, log_identity
from app.kernel.settings import Settings
from app.write.store import OrderStore
from projectors.claims import Coordinator
from projectors.dashboard_sink import DashboardSink
from projectors.search_sink import SearchIndexSink
from tests.contract.sink_contract import logged_changes
from tests.faults.harness import (
    api,
    assert_equal_to_write_model,
    mixed_writes,
    spawn_projector,
)
from tests.helpers.support import eventually, in_process_api, write_orders
from tests.projection.conftest import RunProjector

ORDER = {"customer_id": "cust-p", "customer_name": "Pat",
         "items": [{"sku": "SKU-100", "name": "Espresso beans", "quantity": 1,
                    "unit_price": "9.90"}]}


async def _expire(pool: asyncpg.Pool[Any], owner: str) -> None:
    """The owner stops renewing (paused, cut off): its lease and membership run out."""
    await pool.execute("UPDATE projection_claims SET lease_until = now() - interval '1 s' "
                       "WHERE owner = $1", owner)
    await pool.execute("DELETE FROM projector_members WHERE owner = $1", owner)


async def test_a_sink_whose_claim_was_taken_cannot_move_its_checkpoint(
        store: OrderStore, clean_db: asyncpg.Pool[Any], es: AsyncElasticsearch, redis: Redis,
        read_settings: Settings) -> None:
    await write_orders(store, 60, writers=4)
    part = Partition(1, 2)
    mine = [c for c in await logged_changes(clean_db)
            if part.holds(stream_hash(c.logged.stream_id))]
    assert len(mine) >= 6
    first, second, third = mine[:2], mine[2:4], mine[4:]
    identity = (await log_identity(clean_db)).key
    old = Coordinator(clean_db, ["search", "dashboard"], 2, owner="a-old")
    await old.tick()
    old_token = old.claim("search", part).token
    assert old_token is not None
    old_sinks: list[Any] = [
        SearchIndexSink(es, PostgresCheckpoints(clean_db), read_settings.search_alias,
                        partition=part),
        DashboardSink(redis, read_settings.dashboard_namespace, partition=part)]
    for sink in old_sinks:
        sink.log_identity = identity
        await sink.prepare()
        sink.fence(old.claim(sink.name, part).token)
        await sink.apply(first, Checkpoint.start(), first[-1].logged.checkpoint)

    await _expire(clean_db, old.owner)
    new = Coordinator(clean_db, ["search", "dashboard"], 2, owner="b-new")
    await new.tick()
    assert (new.claim("search", part).token or 0) > old_token  # a claim grows the token
    new_sinks: list[Any] = [
        SearchIndexSink(es, PostgresCheckpoints(clean_db), read_settings.search_alias,
                        index=old_sinks[0].index, partition=part),
        DashboardSink(redis, read_settings.dashboard_namespace, old_sinks[1].generation, part)]
    for sink in new_sinks:
        sink.log_identity = identity
        await sink.prepare()
        sink.fence(new.claim(sink.name, part).token)
        await sink.apply(second, first[-1].logged.checkpoint, second[-1].logged.checkpoint)

    for sink in old_sinks:  # the old owner wakes up and goes on where it was
        try:
            await sink.apply(third, second[-1].logged.checkpoint, third[-1].logged.checkpoint)
        except Fenced:
            pass
        else:
            raise AssertionError(f"{sink.name}: a stale claim moved the checkpoint")
        assert await sink.checkpoint() == second[-1].logged.checkpoint


def _partition_of(order_id: str, settings: Settings) -> Partition:
    return partition_of(stream_hash(UUID(order_id)), settings.partitions)


async def _place_in(http: httpx.AsyncClient, wanted: Partition, settings: Settings,
                    other: bool = False) -> dict[str, Any]:
    """Place orders until one lands in `wanted` (or, with `other`, outside it)."""
    for _ in range(200):
        body: dict[str, Any] = (await http.post("/orders", json=ORDER)).json()
        if (_partition_of(body["order_id"], settings) == wanted) != other:
            return body
    raise AssertionError("no order landed where wanted")


async def test_a_causal_read_waits_only_for_the_partition_holding_the_position(
        store: OrderStore, clean_db: asyncpg.Pool[Any], read_settings: Settings,
        run_projector: RunProjector) -> None:
    held = Partition(2, read_settings.partitions)
    async with run_projector(), in_process_api(read_settings) as http:
        # Partition 2 of both projections goes to an owner that applies nothing.
        await clean_db.execute(
            "UPDATE projection_claims SET owner = 'stuck', token = token + 1, lease_until = "
            "now() + interval '1 hour' WHERE partitions = $1 AND partition = $2",
            held.count, held.index)
        await asyncio.sleep(1.5)  # the projector notices within a second and stands by
        elsewhere = await _place_in(http, held, read_settings, other=True)
        behind = await _place_in(http, held, read_settings)
        after = await _place_in(http, held, read_settings, other=True)
        for path in ("/search/orders", "/dashboard"):
            ready = await http.get(path, params={"wait_ms": 5000},
                                   headers={"X-Min-Position": str(after["position"])})
            assert ready.status_code == 200, ready.text
            # The watermark stays below the held partition's unapplied event.
            assert int(ready.headers["X-Projection-Position"]) < behind["position"]
            waiting = await http.get(path, params={"wait_ms": 300},
                                     headers={"X-Min-Position": str(behind["position"])})
            assert waiting.status_code == 503 and waiting.headers["Retry-After"]
        assert elsewhere["position"] < behind["position"] < after["position"]
        await clean_db.execute("UPDATE projection_claims SET owner = NULL, lease_until = "
                               "'-infinity' WHERE owner = 'stuck'")
        for path in ("/search/orders", "/dashboard"):
            caught = await http.get(path, params={"wait_ms": 5000},
                                    headers={"X-Min-Position": str(behind["position"])})
            assert caught.status_code == 200, caught.text
            assert int(caught.headers["X-Projection-Position"]) >= 1


async def _owners(pool: asyncpg.Pool[Any], partitions: int) -> dict[str, set[int]]:
    """Which process (by pid) holds which partitions of the search projection."""
    rows = await pool.fetch("SELECT owner, partition FROM projection_claims WHERE projection = "
                            "'search' AND partitions = $1 AND owner IS NOT NULL AND "
                            "lease_until > now()", partitions)
    held: dict[str, set[int]] = {}
    for row in rows:
        held.setdefault(row["owner"].split(":")[1], set()).add(row["partition"])
    return held


async def test_three_projector_processes_share_partitions_and_take_over_from_a_sigkill(
        store: OrderStore, clean_db: asyncpg.Pool[Any], es: AsyncElasticsearch, redis: Redis,
        read_settings: Settings) -> None:
    settings = read_settings.model_copy(update={"partitions": 8})
    procs = [spawn_projector(settings) for _ in range(3)]
    try:
        async with api(settings) as http, mixed_writes(http) as tally:
            async def spread() -> bool:
                held = await _owners(clean_db, 8)
                return len(held) == 3 and sorted(map(len, held.values())) == [2, 3, 3]

            await eventually(spread, 60, "8 partitions shared 3/3/2 by three processes")
            await asyncio.sleep(2)
            victim = procs[0]
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
            killed_at = time.monotonic()

            async def taken_over() -> bool:
                held = await _owners(clean_db, 8)
                return str(victim.pid) not in held and sum(map(len, held.values())) == 8

            await eventually(taken_over, 15, "the survivors take the killed one's partitions")
            resumed_s = time.monotonic() - killed_at
            await asyncio.sleep(2)
        assert not tally.bad, tally.bad[:5]
        assert resumed_s <= 5.0, f"partitions resumed elsewhere after {resumed_s:.1f}s"
        compared = await assert_equal_to_write_model(clean_db, es, redis, settings)
        assert compared > 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            proc.wait(20)

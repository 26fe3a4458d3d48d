"""The projector under faults: replays, crashes, outages, poison, two instances, stalls."""

from __future__ import annotations

import asyncio
import signal
import uuid
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis

from app.kernel.partitions import partition_of, stream_hash
from app.kernel.positions import Checkpoint, LogPositions, PostgresCheckpoints, log_identity
from app.kernel.readmodels import dashboard_checkpoint, dashboard_frontier, search_checkpoint
from app.kernel.settings import Settings
from app.write.store import OrderStore
from projectors.dashboard_sink import DashboardSink
from projectors.documents import index_body
from projectors.process import open_projector
from projectors.search_sink import SearchIndexSink
from tests.faults.harness import spawn_projector
from tests.helpers.support import (
    TcpProxy,
    eventually,
    indexed_orders,
    logged_changes,
    redis_figures,
    sql_truth,
    write_orders,
)
from tests.projection.conftest import FAST, RunProjector
from tests.projection.test_projector import assert_read_models_match, caught_up

Pool = Any


async def test_replaying_a_batch_changes_nothing(
        store: OrderStore, clean_db: Pool, es: AsyncElasticsearch, redis: Redis,
        read_settings: Settings) -> None:
    await write_orders(store, 80, writers=4)
    # Once past the snapshot horizon, which other databases' open transactions hold back too.
    changes = await logged_changes(clean_db)
    batch = [change.logged for change in changes]
    search = SearchIndexSink(es, PostgresCheckpoints(clean_db), alias=read_settings.search_alias)
    dash = DashboardSink(redis, namespace=read_settings.dashboard_namespace)
    identity = (await log_identity(clean_db)).key
    for sink in (search, dash):
        sink.log_identity = identity
        await sink.prepare()
        await sink.apply(changes, Checkpoint.start(), batch[-1].checkpoint)
        await sink.publish()
    before = (await indexed_orders(es, read_settings.search_alias),
              await redis_figures(redis, read_settings.dashboard_namespace))
    again_search = await search.apply(changes, Checkpoint.start(), batch[-1].checkpoint)
    again_dash = await dash.apply(changes, Checkpoint.start(), batch[-1].checkpoint)
    after = (await indexed_orders(es, read_settings.search_alias),
             await redis_figures(redis, read_settings.dashboard_namespace))
    assert after == before
    assert again_search.applied == 0 and again_search.stale > 0
    assert again_dash.applied == 0
    assert before[1] == await sql_truth(clean_db)


async def test_sigkill_midway_then_restart_counts_nothing_twice(
        store: OrderStore, clean_db: Pool, es: AsyncElasticsearch, redis: Redis,
        read_settings: Settings) -> None:
    await write_orders(store, 3000, writers=8)
    proc = spawn_projector(read_settings, batch_size=50)
    try:
        async def some_progress() -> bool:
            cp = await dashboard_checkpoint(redis, read_settings.dashboard_namespace)
            return cp.position > 500
        await eventually(some_progress, 60, "some progress before the kill")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert not await caught_up(clean_db, es, redis, read_settings)
    finally:
        if proc.poll() is None:
            proc.kill()
    proc = spawn_projector(read_settings, batch_size=500)
    try:
        await eventually(lambda: caught_up(clean_db, es, redis, read_settings), 90,
                         "catch-up after restart")
    finally:
        proc.terminate()
        proc.wait(20)
    await assert_read_models_match(clean_db, es, redis, read_settings)


async def test_search_outage_keeps_dashboard_current_and_search_catches_up(
        store: OrderStore, clean_db: Pool, es: AsyncElasticsearch, redis: Redis,
        read_settings: Settings, run_projector: RunProjector) -> None:
    target = urlsplit(read_settings.elasticsearch_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 9200)
    await proxy.start()
    proxied = read_settings.model_copy(
        update={"elasticsearch_url": f"http://127.0.0.1:{proxy.port}"})
    async with run_projector(proxied) as projector:
        await write_orders(store, 100, writers=4)
        await eventually(lambda: caught_up(clean_db, es, redis, read_settings), 30, "warm-up")
        await proxy.cut()
        await write_orders(store, 200, writers=4, seed=11)
        truth = await sql_truth(clean_db)
        await eventually(lambda: _dashboard_equals(redis, read_settings, truth), 30,
                         "dashboard current during the search outage")
        search = next(p for p in projector.projections if p.name == "search")
        await eventually(lambda: _state_is(search, "sink_down"), 30, "search reported down")
        await proxy.start()
        await eventually(lambda: caught_up(clean_db, es, redis, read_settings), 60,
                         "search catch-up after the outage")
    await proxy.cut()
    await assert_read_models_match(clean_db, es, redis, read_settings)


async def _dashboard_equals(redis: Redis, settings: Settings, truth: dict[str, Any]) -> bool:
    return await redis_figures(redis, settings.dashboard_namespace) == truth


async def _state_is(projection: Any, state: str) -> bool:
    return bool(projection.status.state == state)


async def _stream_of(pool: Pool, position: int) -> uuid.UUID:
    stream: uuid.UUID = await pool.fetchval("SELECT stream_id FROM events WHERE position = $1",
                                            position)
    return stream


async def _insert_poison(pool: Pool) -> int:
    position: int = await pool.fetchval(
        "INSERT INTO events (stream_id, version, type, schema_version, data) "
        "VALUES ($1, 1, 'OrderTeleported', 1, '{}'::jsonb) RETURNING position", uuid.uuid4())
    return position


async def test_poison_event_is_dead_lettered_and_stops_the_projection(
        store: OrderStore, clean_db: Pool, es: AsyncElasticsearch, redis: Redis,
        read_settings: Settings, run_projector: RunProjector) -> None:
    async with run_projector() as projector:
        await write_orders(store, 16, writers=2)
        poison = await _insert_poison(clean_db)
        await write_orders(store, 16, writers=2, seed=3)

        holding = partition_of(stream_hash(await _stream_of(clean_db, poison)),
                              read_settings.partitions)
        stopping = [p for p in projector.projections if p.partition == holding]

        async def stopped() -> bool:
            return all(p.status.state == "stopped_on_poison" for p in stopping)

        await eventually(stopped, 30, "both projections' partition stopped on the poison event")
        # What operators see (the status table), while the projector is stopped on it.
        names = [f"{name}:{holding.label}" for name in ("search", "dashboard")]
        states = await clean_db.fetch(
            "SELECT name, state FROM projection_status WHERE name = ANY($1::text[])", names)
        assert {r["name"]: r["state"] for r in states} == dict.fromkeys(
            names, "stopped_on_poison")
    rows = await clean_db.fetch("SELECT projection, position, error FROM dead_letters")
    assert {(r["projection"], r["position"]) for r in rows} == {
        ("search", poison), ("dashboard", poison)}
    assert all("OrderTeleported" in r["error"] for r in rows)
    cp = await dashboard_checkpoint(redis, read_settings.dashboard_namespace)
    assert cp.position < poison  # nothing past the poison was applied
    frontier = await dashboard_frontier(redis, read_settings.dashboard_namespace)
    key = await LogPositions(clean_db).key_of(poison)
    assert key is not None and frontier.checkpoints[holding.index] < key  # in its partition


async def test_poison_event_is_skipped_only_when_configured(
        store: OrderStore, clean_db: Pool, es: AsyncElasticsearch, redis: Redis,
        read_settings: Settings, run_projector: RunProjector) -> None:
    from dataclasses import replace

    async with run_projector(config=replace(FAST, skip_poison=True)):
        await write_orders(store, 16, writers=2)
        poison = await _insert_poison(clean_db)
        await write_orders(store, 16, writers=2, seed=3)
        await eventually(lambda: caught_up(clean_db, es, redis, read_settings), 30, "catch-up")
    assert await clean_db.fetchval("SELECT count(*) FROM dead_letters WHERE position = $1",
                                   poison) == 2
    await assert_read_models_match(clean_db, es, redis, read_settings)


async def test_two_instances_one_active_and_the_standby_takes_over(
        store: OrderStore, clean_db: Pool, es: AsyncElasticsearch, redis: Redis,
        read_settings: Settings) -> None:
    stops = [asyncio.Event(), asyncio.Event()]
    async with open_projector(read_settings, FAST) as first, \
            open_projector(read_settings, FAST) as second:
        tasks = [asyncio.create_task(p.run(s)) for p, s in zip((first, second), stops,
                                                               strict=True)]
        await write_orders(store, 40, writers=2)
        await eventually(lambda: caught_up(clean_db, es, redis, read_settings), 30, "catch-up")

        def active(p: Any) -> set[tuple[str, int]]:
            return {(x.name, x.partition.index) for x in p.projections if x.active}

        every = {(name, i) for name in ("search", "dashboard")
                 for i in range(read_settings.partitions)}
        async def shared() -> bool:
            return len(active(first)) == len(active(second)) == len(every) // 2

        await eventually(shared, 15, "the partitions shared evenly")
        # Each partition applied by exactly one process.
        assert active(first) | active(second) == every
        assert not active(first) & active(second)
        assert len(active(first)) == len(active(second))
        leader, standby = first, second
        leader.pool.terminate()  # one dies: its claims are no longer renewed, leases run out
        stops[0].set()
        await write_orders(store, 40, writers=2, seed=5)

        async def took_over() -> bool:
            return active(standby) == every

        await eventually(took_over, 15, "the other process takes every partition")
        await eventually(lambda: caught_up(clean_db, es, redis, read_settings), 30,
                         "catch-up by the remaining process")
        for stop in stops:
            stop.set()
        await asyncio.wait(tasks, timeout=30)
    await assert_read_models_match(clean_db, es, redis, read_settings)


async def test_stall_guard_names_the_transaction_holding_the_horizon(
        store: OrderStore, clean_db: Pool, read_settings: Settings,
        run_projector: RunProjector) -> None:
    async with run_projector(only={"dashboard"}) as projector:
        blocker = await asyncpg.connect(read_settings.database_url)
        try:
            tx = blocker.transaction()
            await tx.start()
            await blocker.execute("SELECT pg_current_xact_id()")  # holds an xid open
            blocker_pid = blocker.get_server_pid()
            await write_orders(store, 8, writers=2)
            stalled: list[Any] = []

            async def any_stalled() -> bool:
                # whichever partitions got orders are held back (8 orders may miss one of 4)
                stalled[:] = [p for p in projector.projections if await _state_is(p, "stalled")]
                return bool(stalled)

            await eventually(any_stalled, 20, "stalled state")
            assert all(p.status.detail["stalled_by"]["pid"] == blocker_pid for p in stalled)
            await tx.rollback()
        finally:
            await blocker.close()
        for projection in stalled:
            await eventually(lambda p=projection: _state_is(p, "running"), 20, "running again")


async def test_checkpoint_of_search_never_moves_backwards(clean_db: Pool) -> None:
    checkpoints = PostgresCheckpoints(clean_db)
    await checkpoints.save("search:x", Checkpoint(10, 5), "log-a")
    await checkpoints.save("search:x", Checkpoint(9, 50), "log-a")
    assert await checkpoints.load("search:x") == Checkpoint(10, 5)


async def test_a_process_whose_claim_is_taken_steps_down(
        store: OrderStore, clean_db: Pool, es: AsyncElasticsearch, redis: Redis,
        read_settings: Settings) -> None:
    """A partition's claim passes to another process under a running owner: the new owner
    applies, and the old one notices within a second and stands by, instead of applying
    beside it."""
    stops = [asyncio.Event(), asyncio.Event()]
    async with open_projector(read_settings, FAST) as first, \
            open_projector(read_settings, FAST) as second:
        tasks = [asyncio.create_task(p.run(s)) for p, s in zip((first, second), stops,
                                                               strict=True)]
        await write_orders(store, 40, writers=2)
        await eventually(lambda: caught_up(clean_db, es, redis, read_settings), 30, "catch-up")
        pairs = [(a, b) for a, b in zip(first.projections, second.projections, strict=True)]
        leader, standby = next((a, b) if a.active else (b, a) for a, b in pairs
                               if a.name == "dashboard")
        new_owner = (second if standby in second.projections else first).coordinator
        assert new_owner is not None
        await clean_db.execute(
            "UPDATE projection_claims SET owner = $1, token = token + 1 WHERE projection = "
            "'dashboard' AND partitions = $2 AND partition = $3", new_owner.owner,
            read_settings.partitions, leader.partition.index)

        async def handed_over() -> bool:
            return standby.active and not leader.active

        await eventually(handed_over, 10, "old owner steps down, new owner active")
        await write_orders(store, 40, writers=2, seed=5)
        await eventually(lambda: caught_up(clean_db, es, redis, read_settings), 30,
                         "catch-up by the new owner")
        assert standby.active and not leader.active
        for stop in stops:
            stop.set()
        await asyncio.wait(tasks, timeout=30)
    await assert_read_models_match(clean_db, es, redis, read_settings)


async def test_a_search_checkpoint_saved_before_identities_is_adopted(
        clean_db: Pool, es: AsyncElasticsearch, read_settings: Settings) -> None:
    """An upgraded deployment keeps its place: the old name-only checkpoint of the live
    index is taken over (bound to the index uuid and the log), not dropped or distrusted."""
    alias = read_settings.search_alias
    await es.indices.create(index=f"{alias}-v1", **index_body())
    await es.indices.put_alias(index=f"{alias}-v1", name=alias)
    await clean_db.execute("INSERT INTO projection_checkpoints (name, transaction_id, position)"
                           " VALUES ($1, '5'::xid8, 7)", f"search:{alias}-v1")
    sink = SearchIndexSink(es, PostgresCheckpoints(clean_db), alias=alias)
    sink.log_identity = (await log_identity(clean_db)).key
    await sink.prepare()
    assert not sink.building and sink.index == f"{alias}-v1"
    assert await sink.checkpoint() == Checkpoint(5, 7)
    assert await search_checkpoint(es, PostgresCheckpoints(clean_db), alias) == Checkpoint(5, 7)

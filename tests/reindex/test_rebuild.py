"""Zero-downtime rebuilds under load, resumption after a kill, and the admin endpoints."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis

from app.demo import generate
from app.kernel import reindex_jobs
from app.kernel.partitions import all_partitions
from app.kernel.readmodels import live_generation, live_index
from app.kernel.settings import Settings
from app.main import create_app
from app.write.store import OrderStore
from projectors.process import open_projector, run_queued_rebuilds
from projectors.reindex import Progress, Rebuild
from tests.helpers.readside_fixtures import RunProjector
from tests.helpers.support import eventually, write_orders
from tests.projection.test_projector import assert_read_models_match, caught_up

Pool = Any


def rebuild_of(pool: Pool, es: AsyncElasticsearch, redis: Redis, settings: Settings) -> Rebuild:
    return Rebuild(pool, es, redis, settings.search_alias, settings.dashboard_namespace)


async def test_search_rebuild_under_load_never_interrupts_searches(
        store: OrderStore, clean_db: Pool, es: AsyncElasticsearch, redis: Redis,
        read_settings: Settings, run_projector: RunProjector) -> None:
    await generate(store, 3000, seed=1)
    app = create_app(read_settings, role="read")
    failures: list[str] = []
    searches = 0
    stop = asyncio.Event()
    async with run_projector(), app.router.lifespan_context(app):
        await eventually(lambda: caught_up(clean_db, es, redis, read_settings), 60, "warm-up")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:

            async def reader() -> None:
                nonlocal searches
                while not stop.is_set():
                    response = await http.get("/search/orders", params={"q": "espresso"})
                    searches += 1
                    if response.status_code != 200 or response.json()["total"] == 0:
                        failures.append(f"{response.status_code} {response.text[:200]}")
                    await asyncio.sleep(0.005)

            async def writer() -> None:
                seed = 100
                while not stop.is_set():
                    seed += 1
                    await write_orders(store, 16, writers=4, seed=seed)

            tasks = [asyncio.create_task(reader()), asyncio.create_task(writer())]
            job = await rebuild_of(clean_db, es, redis, read_settings).run("search")
            await asyncio.sleep(1.5)  # writes keep coming after the swap
            stop.set()
            await asyncio.gather(*tasks)
        await eventually(lambda: caught_up(clean_db, es, redis, read_settings), 60, "catch-up")
    assert job["state"] == "done" and job["new_target"] == f"{read_settings.search_alias}-v2"
    assert await live_index(es, read_settings.search_alias) == job["new_target"]
    assert not await es.indices.exists(index=job["old_target"])
    assert searches > 20 and failures == []
    await assert_read_models_match(clean_db, es, redis, read_settings)


async def test_dashboard_rebuild_under_load_equals_sql(
        store: OrderStore, clean_db: Pool, es: AsyncElasticsearch, redis: Redis,
        read_settings: Settings, run_projector: RunProjector) -> None:
    await generate(store, 2000, seed=2)
    stop = asyncio.Event()
    async with run_projector():
        await eventually(lambda: caught_up(clean_db, es, redis, read_settings), 60, "warm-up")

        async def writer() -> None:
            seed = 200
            while not stop.is_set():
                seed += 1
                await write_orders(store, 16, writers=4, seed=seed)

        task = asyncio.create_task(writer())
        job = await rebuild_of(clean_db, es, redis, read_settings).run("dashboard")
        await asyncio.sleep(1.5)
        stop.set()
        await task
        await eventually(lambda: caught_up(clean_db, es, redis, read_settings), 60, "catch-up")
    assert (job["old_target"], job["new_target"]) == ("v1", "v2")
    assert {await live_generation(redis, read_settings.dashboard_namespace, part)
            for part in all_partitions(read_settings.partitions)} == {"v2"}
    assert not await redis.exists(f"{read_settings.dashboard_namespace}:dash:v1:counters")
    await assert_read_models_match(clean_db, es, redis, read_settings)


async def test_killed_search_rebuild_resumes_and_finishes(
        store: OrderStore, clean_db: Pool, es: AsyncElasticsearch, redis: Redis,
        read_settings: Settings, run_projector: RunProjector) -> None:
    await generate(store, 20000, seed=3, batch_size=1000)
    async with run_projector():
        await eventually(lambda: caught_up(clean_db, es, redis, read_settings), 120, "warm-up")
        first = rebuild_of(clean_db, es, redis, read_settings)
        midway = asyncio.Event()
        first.progress.listeners.append(
            lambda p: midway.set() if p.docs_written >= 10000 else None)
        task = asyncio.create_task(first.run("search"))
        await asyncio.wait_for(midway.wait(), 60)
        task.cancel()  # killed mid-load: the job row stays unfinished
        with contextlib.suppress(asyncio.CancelledError):
            await task
        unfinished = await reindex_jobs.active(clean_db, "search")
        assert unfinished is not None and unfinished["state"] == "loading"
        assert unfinished["resume_after"] is not None  # it recorded where to go on
        second = rebuild_of(clean_db, es, redis, read_settings)
        second.progress = Progress()
        job = await second.run("search")
        assert job["id"] == unfinished["id"] and job["state"] == "done"
        assert job["new_target"] == unfinished["new_target"]
        await eventually(lambda: caught_up(clean_db, es, redis, read_settings), 60, "catch-up")
    await assert_read_models_match(clean_db, es, redis, read_settings)


async def test_restart_abandons_the_half_built_index(
        store: OrderStore, clean_db: Pool, es: AsyncElasticsearch, redis: Redis,
        read_settings: Settings) -> None:
    await generate(store, 500, seed=4)
    first = rebuild_of(clean_db, es, redis, read_settings)
    task = asyncio.create_task(first.run("search"))
    await eventually(lambda: _state(clean_db, "loading"), 30, "loading")
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    half = await reindex_jobs.active(clean_db, "search")
    assert half is not None

    async def index_uuid(name: str) -> str:
        found = await es.indices.get(index=name)
        return str(found[name]["settings"]["index"]["uuid"])

    half_uuid = await index_uuid(half["new_target"])
    job = await rebuild_of(clean_db, es, redis, read_settings).run("search", restart=True)
    assert job["id"] != half["id"]
    abandoned = await reindex_jobs.get(clean_db, half["id"])
    assert abandoned is not None and abandoned["state"] == "abandoned"
    assert await index_uuid(job["new_target"]) != half_uuid  # built anew, not continued
    assert await live_index(es, read_settings.search_alias) == job["new_target"]
    count = await es.count(index=read_settings.search_alias)
    assert count["count"] == await clean_db.fetchval("SELECT count(*) FROM orders")


async def _state(pool: Pool, state: str) -> bool:
    job = await reindex_jobs.active(pool, "search")
    return job is not None and job["state"] == state


async def test_admin_reindex_needs_the_token_and_runs_through_the_projector(
        store: OrderStore, clean_db: Pool, read_settings: Settings) -> None:
    await generate(store, 200, seed=5)
    closed = create_app(read_settings)
    async with closed.router.lifespan_context(closed):
        transport = httpx.ASGITransport(app=closed)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            response = await http.post("/admin/reindex", json={"target": "search"})
            assert response.status_code == 403
            assert "ORDERS_ADMIN_TOKEN" in response.json()["error"]["message"]
    settings = read_settings.model_copy(update={"admin_token": "s3cret-token"})
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
                response = await http.post("/admin/reindex", json={"target": "search"},
                                           headers=headers)
                assert response.status_code == 401
                assert response.json()["error"]["code"] == "unauthorized"
            auth = {"Authorization": "Bearer s3cret-token"}
            bad = await http.post("/admin/reindex", json={"target": "mars"}, headers=auth)
            assert bad.status_code == 422
            queued = await http.post("/admin/reindex", json={"target": "search"}, headers=auth)
            assert queued.status_code == 202
            again = await http.post("/admin/reindex", json={"target": "search"}, headers=auth)
            assert again.status_code == 409 and again.json()["error"]["code"] == "RebuildRunning"
            url = queued.json()["status_url"]
            assert (await http.get(url, headers=auth)).json()["state"] == "queued"
            assert (await http.get(url)).status_code == 401
            stop = asyncio.Event()
            async with open_projector(settings, only=set()) as projector:
                runner = asyncio.create_task(run_queued_rebuilds(projector, settings, stop))

                async def done() -> bool:
                    return bool((await http.get(url, headers=auth)).json()["state"] == "done")

                await eventually(done, 60, "queued rebuild done")
                stop.set()
                await runner
            status = (await http.get(url, headers=auth)).json()
            assert status["events_read"] == status["events_total"] > 0


async def test_reads_with_min_position_hold_across_swaps(
        store: OrderStore, clean_db: Pool, es: AsyncElasticsearch, redis: Redis,
        read_settings: Settings, run_projector: RunProjector) -> None:
    """Read-your-writes while search and dashboard rebuilds swap targets underneath."""
    await generate(store, 2000, seed=3)
    app = create_app(read_settings)
    misses: list[str] = []
    reads = 0
    stop = asyncio.Event()
    async with run_projector(), app.router.lifespan_context(app):
        await eventually(lambda: caught_up(clean_db, es, redis, read_settings), 60, "warm-up")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test",
                                     timeout=30) as http:

            async def client(n: int) -> None:
                nonlocal reads
                while not stop.is_set():
                    customer = f"ryw-{n}-{reads}"
                    placed = (await http.post("/orders", json={
                        "customer_id": customer, "items": [{
                            "sku": "S", "name": "Kettle", "quantity": 1,
                            "unit_price": "3.00"}]})).json()
                    at = {"X-Min-Position": str(placed["position"])}
                    found = await http.get("/search/orders", headers=at, params={
                        "customer_id": customer, "wait_ms": 5000})
                    reads += 1
                    if found.status_code == 200 and found.json()["total"] != 1:
                        misses.append(f"search without the order: {found.text[:200]}")
                    # every order placed at or before P in the log's order must be counted
                    placed_by_p = await clean_db.fetchval(
                        "SELECT count(*) FROM events WHERE type = 'OrderPlaced' AND "
                        "(transaction_id, position) <= (SELECT transaction_id, position "
                        "FROM events WHERE position = $1)", placed["position"])
                    board = await http.get("/dashboard", headers=at, params={"wait_ms": 5000})
                    if board.status_code == 200 and board.json()["orders"]["placed"] < placed_by_p:
                        misses.append(f"dashboard below P: {board.json()['orders']}")

            tasks = [asyncio.create_task(client(n)) for n in range(4)]
            rebuild = rebuild_of(clean_db, es, redis, read_settings)
            for target in ("search", "dashboard", "search", "dashboard"):
                rebuild.progress = Progress()
                await rebuild.run(target)
            stop.set()
            await asyncio.gather(*tasks)
    assert reads > 20 and misses == []


async def test_restart_of_a_rebuild_killed_after_its_swap_keeps_the_live_index(
        store: OrderStore, clean_db: Pool, es: AsyncElasticsearch, redis: Redis,
        read_settings: Settings, run_projector: RunProjector) -> None:
    """Killed between the swap and removing the old index: `--restart` must finish that job
    (remove the old index), never drop the index readers use."""
    await generate(store, 500, seed=4)
    alias = read_settings.search_alias
    async with run_projector():
        await eventually(lambda: caught_up(clean_db, es, redis, read_settings), 60, "warm-up")
        first = await rebuild_of(clean_db, es, redis, read_settings).run("search", keep_old=True)
        # The state a SIGKILL right after the swap leaves: alias on the new index, job open.
        await reindex_jobs.update(clean_db, first["id"], state="swapping", keep_old=False,
                                  finished_at=None)
        missing = 0
        stop = asyncio.Event()

        async def watch() -> None:
            nonlocal missing
            while not stop.is_set():
                if await live_index(es, alias) is None:
                    missing += 1
                await asyncio.sleep(0.01)

        watcher = asyncio.create_task(watch())
        second = await rebuild_of(clean_db, es, redis, read_settings).run("search",
                                                                          restart=True)
        stop.set()
        await watcher
        await eventually(lambda: caught_up(clean_db, es, redis, read_settings), 60, "catch-up")
    assert missing == 0
    finished = await reindex_jobs.get(clean_db, first["id"])
    assert finished is not None and finished["state"] == "done"
    assert not await es.indices.exists(index=first["old_target"])  # the resumed job's cleanup
    assert second["old_target"] == first["new_target"]
    assert await live_index(es, alias) == second["new_target"]
    await assert_read_models_match(clean_db, es, redis, read_settings)


async def test_dashboard_rebuild_racing_a_fresh_live_sink_never_shares_its_keys(
        store: OrderStore, clean_db: Pool, es: AsyncElasticsearch, redis: Redis,
        read_settings: Settings, run_projector: RunProjector) -> None:
    await write_orders(store, 400, writers=4)
    # The rebuild picks its generation while the live projector starts on an empty namespace.
    running = asyncio.create_task(rebuild_of(clean_db, es, redis, read_settings).run(
        "dashboard"))
    async with run_projector():
        job = await running
        await write_orders(store, 80, writers=2, seed=9)
        await eventually(lambda: caught_up(clean_db, es, redis, read_settings), 60, "catch-up")
        live = {await live_generation(redis, read_settings.dashboard_namespace, part)
                for part in all_partitions(read_settings.partitions)}
    assert live == {job["new_target"]}
    await assert_read_models_match(clean_db, es, redis, read_settings)

"""The search read model on a three-node Elasticsearch cluster (three shards, one replica).

A node SIGKILLed while commands and searches run, then restarted; and a blue/green rebuild
with its alias swap under writes. Each ends with every search document (status and version)
and every dashboard counter equal to the write model, with the projector process that lived
through it, and with no answer but 2xx, 4xx and 503 with `Retry-After`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis

from app.kernel.readmodels import live_index
from app.kernel.settings import Settings
from infra import es_cluster
from infra.native import Layout
from projectors.process import run_rebuild
from tests.faults.harness import (
    Tally,
    api,
    assert_equal_to_write_model,
    mixed_writes,
    spawn_projector,
)
from tests.helpers.support import eventually

OUTAGE_S = 8.0  # writes and searches with one node dead
DOWN_SEARCHES = 5


@contextlib.asynccontextmanager
async def projector(settings: Settings) -> AsyncIterator[subprocess.Popen[bytes]]:
    """`orders project` as its own process, until the block ends."""
    process = spawn_projector(settings)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(20)


@contextlib.asynccontextmanager
async def searching(http: httpx.AsyncClient) -> AsyncIterator[Tally]:
    """Searches through the read API, one after another, until the block ends."""
    tally = Tally()
    stop = asyncio.Event()

    async def search() -> None:
        while not stop.is_set():
            try:
                tally.record(await http.get("/search/orders", params={"q": "espresso"}))
            except httpx.TransportError as exc:
                tally.bad.append(f"transport: {exc!r}")
            await asyncio.sleep(0.05)

    task = asyncio.create_task(search())
    try:
        yield tally
    finally:
        stop.set()
        await task


async def published(es: AsyncElasticsearch, settings: Settings) -> str:
    """The index the projector built and published (before any writes: a first build is
    published once it has caught up with the log)."""
    found: list[str] = []

    async def alias_set() -> bool:
        index = await live_index(es, settings.search_alias)
        found.extend([index] if index else [])
        return bool(found)
    await eventually(alias_set, 120, "search index published")
    return found[0]


async def node_with_a_primary(es: AsyncElasticsearch, index: str) -> es_cluster.EsNode:
    shards = (await es.cat.shards(index=index, format="json", h="prirep,state,node")).body
    primaries = [s["node"] for s in shards if s["prirep"] == "p" and s["state"] == "STARTED"]
    assert primaries, shards
    return next(node for node in es_cluster.NODES if node.name == primaries[0])


async def nodes_in_cluster(es: AsyncElasticsearch) -> int:
    count: int = (await es.cluster.health())["number_of_nodes"]
    return count


async def test_search_survives_a_node_sigkill_and_the_index_equals_the_write_model(
        cluster_settings: Settings, cluster_es: AsyncElasticsearch, redis: Redis,
        clean_db: asyncpg.Pool[Any]) -> None:
    layout = Layout.default()
    async with projector(cluster_settings) as process:
        index = await published(cluster_es, cluster_settings)
        layout_of = (await cluster_es.indices.get_settings(index=index)).body[index]
        assert (int(layout_of["settings"]["index"]["number_of_shards"]),
                int(layout_of["settings"]["index"]["number_of_replicas"])) == (
            cluster_settings.search_shards, cluster_settings.search_replicas)
        async with api(cluster_settings) as http, mixed_writes(http) as writes, \
                searching(http) as reads:
            await asyncio.sleep(2)
            victim = await node_with_a_primary(cluster_es, index)
            await asyncio.to_thread(es_cluster.stop_node, layout, victim, signal.SIGKILL)
            await eventually(lambda: _fewer_nodes(cluster_es), 30, "the cluster seeing a loss")
            during = Tally()  # with the node down, searches one after another
            for _ in range(DOWN_SEARCHES):
                during.record(await http.get("/search/orders", params={"q": "espresso"}))
            await asyncio.sleep(OUTAGE_S)  # writes go on with the node down
            await asyncio.to_thread(es_cluster.start_nodes, layout, (victim,))  # green again
            assert await nodes_in_cluster(cluster_es) == es_cluster.NODE_COUNT
            await asyncio.sleep(2)  # writes go on after the node is back
        compared = await assert_equal_to_write_model(clean_db, cluster_es, redis,
                                                     cluster_settings)
        assert process.poll() is None, "the projector died"
    print(f"{victim.name} killed: searches {dict(reads.statuses)}, with it down "
          f"{dict(during.statuses)}; commands {dict(writes.statuses)}, {compared} orders compared")
    assert not writes.bad and not reads.bad and not during.bad, (
        writes.bad[:3], reads.bad[:3], during.bad)
    assert writes.statuses[201] > 20 and compared > 20, writes.statuses
    # with one replica, every search is answered while one node is down
    assert during.statuses == {200: DOWN_SEARCHES}, dict(during.statuses)


async def _fewer_nodes(es: AsyncElasticsearch) -> bool:
    return await nodes_in_cluster(es) < es_cluster.NODE_COUNT


async def test_rebuild_swaps_the_alias_on_the_cluster_under_writes(
        cluster_settings: Settings, cluster_es: AsyncElasticsearch, redis: Redis,
        clean_db: asyncpg.Pool[Any]) -> None:
    async with projector(cluster_settings) as process:
        old = await published(cluster_es, cluster_settings)
        async with api(cluster_settings) as http, mixed_writes(http) as writes, \
                searching(http) as reads:
            await asyncio.sleep(2)
            job = await run_rebuild(cluster_settings, "search")
            await asyncio.sleep(2)  # writes after the swap reach the new index by the alias
        compared = await assert_equal_to_write_model(clean_db, cluster_es, redis,
                                                     cluster_settings)
        assert process.poll() is None, "the projector died"
    assert job["state"] == "done" and job["old_target"] == old
    new = job["new_target"]
    assert await live_index(cluster_es, cluster_settings.search_alias) == new
    assert not await cluster_es.indices.exists(index=old)
    layout = (await cluster_es.indices.get_settings(index=new))[new]["settings"]["index"]
    assert (layout["number_of_shards"], layout["number_of_replicas"]) == ("3", "1")
    assert (await cluster_es.cluster.health(index=new, wait_for_status="green",
                                            timeout="60s"))["status"] == "green"
    print(f"rebuilt {old} -> {new}: searches {dict(reads.statuses)}, commands "
          f"{dict(writes.statuses)}, {compared} orders compared")
    assert not writes.bad and not reads.bad, (writes.bad[:3], reads.bad[:3])
    assert reads.statuses[200] > 10 and set(reads.statuses) == {200}, reads.statuses
    assert writes.statuses[201] > 20 and compared > 20, writes.statuses

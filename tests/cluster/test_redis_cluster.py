"""The dashboard on a Redis Cluster: one hash tag per partition, scripts per partition, live
notices through the cluster, and a master SIGKILLed while commands run; the counters then
equal SQL exactly. The cluster's nodes require the same users as the single Redis.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import asyncpg
import pytest
from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from app.kernel.bootstrap import open_redis
from app.kernel.partitions import Partition
from app.kernel.readmodels import dashboard_channel, dashboard_pointer
from app.kernel.settings import Settings
from app.read.progress import Broadcast, listen_redis
from infra import redis_cluster
from infra.native import Layout
from tests.faults.harness import api, assert_equal_to_write_model, mixed_writes
from tests.helpers.readside_fixtures import RunProjector
from tests.helpers.support import eventually


@pytest.fixture
def cluster_nodes(whole_cluster: dict[str, str]) -> str:
    """Every Redis Cluster node up and all slots served (a failed test may have left one
    down); the REDIS_CLUSTER_NODES value."""
    redis_cluster.start(Layout.default())
    return whole_cluster["REDIS_CLUSTER_NODES"]


def _info(port: int, section: str) -> dict[str, str]:
    pairs = (line.split(":", 1) for line in redis_cluster.cli(port, "info", section).splitlines())
    return {k: v.strip() for k, v in (p for p in pairs if len(p) == 2)}


async def test_counters_equal_sql_after_a_master_is_killed_mid_commands(
        clean_db: asyncpg.Pool[Any], es: AsyncElasticsearch, read_settings: Settings,
        run_projector: RunProjector, cluster_nodes: str) -> None:
    settings = read_settings.model_copy(update={"redis_cluster_nodes": cluster_nodes,
                                                "partitions": 8})
    cluster = open_redis(settings, "cli")
    assert isinstance(cluster, RedisCluster)
    await cluster.initialize()
    victim = cluster.get_node_from_key(
        dashboard_pointer(settings.dashboard_namespace, Partition(0, 8)))
    assert victim is not None
    port = int(victim.port)
    others = [int(n.port) for n in cluster.get_nodes() if int(n.port) != port]
    try:
        async with run_projector(settings), api(settings) as http:
            notices, stop = Broadcast(), asyncio.Event()
            listener = asyncio.create_task(listen_redis(
                cluster, dashboard_channel(settings.dashboard_namespace), notices, stop))
            async with mixed_writes(http) as tally, notices.subscribe() as heard:
                live = await http.get("/dashboard", params={"wait_ms": 5000})
                assert live.status_code == 200, live.text
                # live notices: each partition's script PUBLISHes; the cluster relays it
                notice = await asyncio.wait_for(heard.get(), 10)
                while not notice.isdigit():
                    notice = await asyncio.wait_for(heard.get(), 10)
                await asyncio.sleep(2)
                os.kill(int(_info(port, "server")["process_id"]), signal.SIGKILL)

                async def failed_over() -> bool:
                    seen = redis_cluster.cli(others[0], "cluster", "nodes").splitlines()
                    gone = [n for n in seen if f":{port}@" in n]
                    return bool(gone) and " fail " in f" {gone[0].split()[2].replace(',', ' ')} " \
                        and "cluster_state:ok" in redis_cluster.cli(others[0], "cluster", "info")

                await eventually(failed_over, 30, "a replica promoted in the killed one's place")
                await asyncio.sleep(3)  # commands go on against the promoted replica
            stop.set()
            await listener
            assert not tally.bad, tally.bad[:5]
            redis: Redis = cluster
            compared = await assert_equal_to_write_model(clean_db, es, redis, settings)
            assert compared > 0
            body = (await http.get("/dashboard")).json()
            assert body["orders"]["placed"] == compared
    finally:
        redis_cluster.start(Layout.default())  # the killed node rejoins, as a replica
        await cluster.initialize()
        for key in [k async for k in cluster.scan_iter(
                match=f"{settings.dashboard_namespace}:*")]:
            await cluster.delete(key)  # one by one: the partitions' keys sit in other slots
        await cluster.aclose()

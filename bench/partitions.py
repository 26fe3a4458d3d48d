"""Partitioned projection: throughput by number of projector processes, and failover time.

    .venv/bin/python -m bench.partitions [--events N]

One backlog of N events (default 60,000) is projected into both sinks from nothing, first
by today's shape (one process, P = 1, the baseline), then at P = 8 by 1, 2 and 4 projector
processes on the same machine; each figure is printed with its ratio to the baseline. Then
two processes share P = 8 and one is SIGKILLed: the time until the other holds its
partitions, and until an order written into one of them is on the dashboard. Last, the unit
costs of the capacity model (README): the same documents bulk-indexed straight into
Elasticsearch and the same counter updates pipelined straight into Redis, per second.

With the cluster stack's settings loaded (`set -a; . .stack/cluster.env; set +a`) the same
run measures the three-node Elasticsearch and the Redis Cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from app.demo import generate
from app.domain.commands import OrderLine, PlaceOrder
from app.kernel.partitions import partition_of, stream_hash
from app.kernel.positions import LogPositions, PostgresCheckpoints
from app.kernel.readmodels import dashboard_checkpoint, dashboard_frontier, search_checkpoint
from app.write import handlers
from app.write.store import OrderStore
from bench.common import ALIAS, Bench, open_bench, orders_cli, process
from bench.scenarios import counter_updates, raw_bulk, raw_redis

CLAIMED = """
SELECT split_part(owner, ':', 2) AS pid, count(*) AS n FROM projection_claims
WHERE partitions = $1 AND owner IS NOT NULL AND lease_until > now() GROUP BY 1"""


async def _caught_up(bench: Bench, partitions: int) -> bool:
    log = LogPositions(bench.pool)
    search = await search_checkpoint(bench.es, PostgresCheckpoints(bench.pool), ALIAS,
                                     partitions)
    dash = await dashboard_checkpoint(bench.redis, bench.settings.dashboard_namespace,
                                      partitions)
    return (await log.pending(search)).events == 0 and (await log.pending(dash)).events == 0


async def _forget_read_models(bench: Bench) -> None:
    """Keep the log; drop both read models, their checkpoints and every claim."""
    await bench.pool.execute("TRUNCATE projection_checkpoints, projection_status, "
                             "projection_claims, projector_members")
    await bench.drop_read_models()


@contextlib.asynccontextmanager
async def _projectors(bench: Bench, partitions: int, count: int) -> AsyncIterator[list[Any]]:
    env = {**bench.env(), "ORDERS_PARTITIONS": str(partitions)}
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(
            process(orders_cli("project", "--metrics-port", "0"), env)) for _ in range(count)]


async def _throughput(bench: Bench, events: int, partitions: int, count: int) -> float:
    """Events per second projecting the whole log from nothing into both sinks."""
    await _forget_read_models(bench)
    started = time.perf_counter()
    async with _projectors(bench, partitions, count):
        while not await _caught_up(bench, partitions):
            await asyncio.sleep(0.1)
        return events / (time.perf_counter() - started)


async def _failover(bench: Bench) -> dict[str, float]:
    """Seconds from a SIGKILL until the survivor holds all 8 partitions, and until an order
    written into one of the killed process's partitions is counted on the dashboard."""
    store = OrderStore(bench.pool)
    async with _projectors(bench, 8, 2) as (victim, survivor):
        while len(held := {r["pid"]: r["n"] for r in await bench.pool.fetch(CLAIMED, 8)}) < 2 \
                or set(held.values()) != {8}:  # 4 search + 4 dashboard each
            await asyncio.sleep(0.1)
        while not await _caught_up(bench, 8):
            await asyncio.sleep(0.1)
        theirs = {int(r["partition"]) for r in await bench.pool.fetch(
            "SELECT partition FROM projection_claims WHERE projection = 'dashboard' AND "
            "partitions = 8 AND split_part(owner, ':', 2) = $1", str(victim.pid))}
        victim.send_signal(signal.SIGKILL)
        killed = time.perf_counter()
        order = PlaceOrder("bench-failover", (OrderLine("SKU-1", "Kettle", 1, Decimal("30")),))
        while True:  # an order in one of the killed process's partitions
            placed = (await handlers.place_order(
                store, order, handlers.CommandContext(correlation_id=str(uuid4())))).body
            part = partition_of(stream_hash(UUID(placed["order_id"])), 8)
            if part.index in theirs:
                break
        located = await LogPositions(bench.pool).locate(placed["position"])
        assert located is not None
        claimed_s = applied_s = 0.0
        while not applied_s:
            held = {r["pid"]: r["n"] for r in await bench.pool.fetch(CLAIMED, 8)}
            if not claimed_s and held.get(str(survivor.pid)) == 16:
                claimed_s = time.perf_counter() - killed
            frontier = await dashboard_frontier(bench.redis, bench.settings.dashboard_namespace,
                                                8)
            if frontier.covers(*located):
                applied_s = time.perf_counter() - killed
            await asyncio.sleep(0.05)
        return {"claimed_s": round(claimed_s, 2), "applied_s": round(applied_s, 2)}


async def _unit_costs(bench: Bench) -> dict[str, Any]:
    """What each store takes per second with nothing of ours in between: documents
    bulk-indexed (with the deployment's shards and replicas) and counter updates pipelined."""
    orders, updates = await counter_updates(bench)
    es_s = await raw_bulk(bench, orders, f"{ALIAS}-raw")
    redis_s = await raw_redis(bench, updates)
    nodes = (await bench.es.cluster.health())["number_of_data_nodes"]
    return {"es_documents": len(orders), "es_docs_per_s": round(len(orders) / es_s),
            "es_data_nodes": nodes, "shards": bench.settings.search_shards,
            "replicas": bench.settings.search_replicas, "redis_updates": len(updates),
            "redis_updates_per_s": round(len(updates) / redis_s),
            "redis_cluster": bool(bench.settings.redis_cluster_nodes)}


async def main(events: int) -> dict[str, Any]:
    async with open_bench() as bench:
        written = await generate(OrderStore(bench.pool), int(events / 1.57), seed=7)
        baseline = await _throughput(bench, written, 1, 1)
        print(f"{written} events; baseline: 1 process, P=1: {baseline:,.0f} events/s", flush=True)
        results: dict[str, Any] = {"events": written, "baseline_events_per_s": round(baseline)}
        for count in (1, 2, 4):
            rate = await _throughput(bench, written, 8, count)
            results[f"p8_processes_{count}_events_per_s"] = round(rate)
            print(f"P=8, {count} process(es): {rate:,.0f} events/s "
                  f"({rate / baseline:.2f}x the baseline)", flush=True)
        results["unit_costs"] = await _unit_costs(bench)
        print(f"unit costs: {json.dumps(results['unit_costs'])}", flush=True)
        results["failover"] = await _failover(bench)
        print(f"SIGKILL of 1 of 2 processes: partitions claimed by the other after "
              f"{results['failover']['claimed_s']} s, a new order in them counted after "
              f"{results['failover']['applied_s']} s", flush=True)
        return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60_000)
    print(json.dumps(asyncio.run(main(parser.parse_args().events))))

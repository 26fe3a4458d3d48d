"""A deployment under fault: a projector process, the API, mixed commands, and the verdict.

Every scenario ends the same way: the writers stop, the projector (the same process, never
restarted by the test unless the test killed it) catches up, and every read model is
compared with the write model: each search document's version and status, every dashboard
counter. Answers are tallied: only 2xx, 4xx and 503 with `Retry-After` are acceptable.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis

from app.kernel.positions import LogPositions, PostgresCheckpoints
from app.kernel.readmodels import dashboard_checkpoint, search_checkpoint
from app.kernel.settings import Settings
from tests.helpers.support import (
    eventually,
    in_process_api,
    indexed_orders,
    redis_figures,
    sql_truth,
)

ITEMS = [("SKU-100", "Espresso beans"), ("SKU-200", "Ceramic mug"), ("SKU-300", "Kettle")]


def projector_env(settings: Settings) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": settings.database_url,
            "ELASTICSEARCH_URL": settings.elasticsearch_url, "REDIS_URL": settings.redis_url,
            "ORDERS_SEARCH_ALIAS": settings.search_alias,
            "ORDERS_DASHBOARD_NAMESPACE": settings.dashboard_namespace,
            "ORDERS_SEARCH_SHARDS": str(settings.search_shards),
            "ORDERS_SEARCH_REPLICAS": str(settings.search_replicas),
            "ORDERS_SEARCH_WAIT_FOR_ACTIVE_SHARDS": settings.search_wait_for_active_shards,
            "ORDERS_PARTITIONS": str(settings.partitions)}


_LOGS: dict[int, Path] = {}  # projector pid -> its log file, for a failure's message


def spawn_projector(settings: Settings, batch_size: int = 200) -> subprocess.Popen[bytes]:
    """`orders project` as its own process, as deployed; its log goes to a file that
    `projector_log_tail` reads when a test fails."""
    fd, name = tempfile.mkstemp(prefix="orders-projector-", suffix=".log")
    try:
        process = subprocess.Popen([sys.executable, "-m", "orders_cli.main", "project",
                                    "--batch-size", str(batch_size), "--metrics-port", "0"],
                                   env=projector_env(settings), stdout=fd,
                                   stderr=subprocess.STDOUT)
    finally:
        os.close(fd)
    _LOGS[process.pid] = Path(name)
    return process


def projector_log_tail(process: subprocess.Popen[bytes] | None, lines: int = 40) -> str:
    """The last lines a spawned projector wrote, or a note that there are none."""
    path = _LOGS.get(process.pid) if process is not None else None
    if path is None or not path.exists():
        return "(no projector log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Tally:
    """Every answer the writers got, and the ones no client should ever see."""

    statuses: Counter[int] = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)

    def record(self, response: httpx.Response) -> None:
        self.statuses[response.status_code] += 1
        if response.status_code >= 500 and not (
                response.status_code == 503 and response.headers.get("Retry-After")):
            self.bad.append(f"{response.status_code} {response.text[:300]}")


@contextlib.asynccontextmanager
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API in process, with a short command timeout: a fault answers 503 quickly."""
    async with in_process_api(settings.model_copy(update={"command_timeout_s": 3.0})) as http:
        yield http


@contextlib.asynccontextmanager
async def mixed_writes(http: httpx.AsyncClient, clients: int = 6,
                       seed: int = 1) -> AsyncIterator[Tally]:
    """Clients sending place (60%), cancel (20%) and ship (20%) until the block ends."""
    tally = Tally()
    stop = asyncio.Event()
    placed: list[str] = []

    async def client(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        while not stop.is_set():
            roll = rng.random()
            try:
                if roll < 0.6 or not placed:
                    sku, name = rng.choice(ITEMS)
                    response = await http.post("/orders", json={
                        "customer_id": f"c{rng.randint(1, 40)}", "customer_name": f"Fault {n}",
                        "items": [{"sku": sku, "name": name, "quantity": rng.randint(1, 3),
                                   "unit_price": f"{rng.randint(100, 9000) / 100:.2f}"}]})
                    if response.status_code == 201:
                        placed.append(response.json()["order_id"])
                else:
                    order_id = rng.choice(placed)
                    if roll < 0.8:
                        response = await http.post(f"/orders/{order_id}/cancel",
                                                   json={"reason": "changed mind"})
                    else:
                        response = await http.post(f"/orders/{order_id}/ship",
                                                   json={"tracking_number": f"TRK{n}-{roll}"})
            except httpx.TransportError as exc:  # the in-process app never drops a request
                tally.bad.append(f"transport: {exc!r}")
                await asyncio.sleep(0.05)
                continue
            tally.record(response)
            if response.status_code == 503:
                await asyncio.sleep(0.1)  # as Retry-After asks, briefly

    tasks = [asyncio.create_task(client(n)) for n in range(clients)]
    try:
        yield tally
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def caught_up(pool: asyncpg.Pool[Any], es: AsyncElasticsearch, redis: Redis,
                    settings: Settings) -> bool:
    try:
        log = LogPositions(pool)
        search = await search_checkpoint(es, PostgresCheckpoints(pool), settings.search_alias,
                                         settings.partitions)
        dash = await dashboard_checkpoint(redis, settings.dashboard_namespace,
                                          settings.partitions)
        return (await log.pending(search)).events == 0 and (await log.pending(dash)).events == 0
    except Exception:  # a store still coming back: not caught up yet
        return False


async def assert_equal_to_write_model(pool: asyncpg.Pool[Any], es: AsyncElasticsearch,
                                      redis: Redis, settings: Settings,
                                      seconds: float = 120) -> int:
    """Wait for the projection to catch up, then compare every read model with SQL; return
    how many orders were compared."""
    await eventually(lambda: caught_up(pool, es, redis, settings), seconds, "catch-up")
    rows = await pool.fetch("SELECT order_id, status, version FROM orders")
    truth = {str(r["order_id"]): (r["status"], r["version"]) for r in rows}
    documents = await indexed_orders(es, settings.search_alias, ("status", "version"))
    missing = truth.keys() - documents.keys()
    wrong = {k: (documents[k], truth[k]) for k in truth.keys() & documents.keys()
             if documents[k] != truth[k]}
    extra = documents.keys() - truth.keys()
    assert not missing and not wrong and not extra, (
        f"{len(missing)} missing, {len(wrong)} wrong (e.g. {list(wrong.items())[:3]}), "
        f"{len(extra)} extra documents")
    assert await redis_figures(redis, settings.dashboard_namespace) == await sql_truth(pool)
    return len(truth)

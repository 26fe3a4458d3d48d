"""SIGTERM drains the API and stops the projector cleanly; a soak of mixed load loses nothing."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis

from app.kernel.settings import Settings
from tests.helpers.support import eventually
from tests.projection.test_projector import assert_read_models_match, caught_up

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "20"))


def _env(settings: Settings) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": settings.database_url,
            "ELASTICSEARCH_URL": settings.elasticsearch_url, "REDIS_URL": settings.redis_url,
            "ORDERS_SEARCH_ALIAS": settings.search_alias,
            "ORDERS_DASHBOARD_NAMESPACE": settings.dashboard_namespace}


@contextmanager
def child(settings: Settings, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-m", "orders_cli.main", *args], env=_env(settings),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@asynccontextmanager
async def api_process(settings: Settings) -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    from tests.helpers.live import free_port

    port = free_port()
    with child(settings, "api", "--port", str(port)) as proc:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base) as http:
            async def answers() -> bool:
                try:
                    return (await http.get("/health")).status_code in (200, 503)
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
                    return False
            await eventually(answers, 60, "the API answering")
        yield base, proc


async def test_sigterm_lets_the_api_finish_requests_in_flight(read_settings: Settings,
                                                              clean_db: Any) -> None:
    async with api_process(read_settings) as (base, proc), \
            httpx.AsyncClient(base_url=base, timeout=20) as http:
        order = {"customer_id": "c", "items": [{"sku": "S", "name": "n", "quantity": 1,
                                                "unit_price": "1"}]}
        position = (await http.post("/orders", json=order)).json()["position"]
        # No projector runs, so this read waits its full 2 s inside the server.
        pending = asyncio.create_task(http.get("/dashboard", params={"wait_ms": 2000},
                                               headers={"X-Min-Position": str(position)}))
        await asyncio.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        response = await pending
        assert response.status_code == 503  # answered, not cut off
        assert response.json()["error"]["code"] == "ProjectionBehind"
        # uvicorn re-raises the signal after its graceful shutdown, hence -SIGTERM.
        assert await asyncio.to_thread(proc.wait, 20) in (0, -signal.SIGTERM)


async def test_sigterm_stops_the_projector_without_losing_or_repeating_work(
        read_settings: Settings, clean_db: Any, es: AsyncElasticsearch, redis: Redis) -> None:
    from app.demo import generate
    from app.write.store import OrderStore

    await generate(OrderStore(clean_db), 6000, seed=8)
    with child(read_settings, "project", "--batch-size", "200", "--metrics-port", "0") as proc:
        async def projecting() -> bool:  # signal handlers are in place once it projects
            return bool(await clean_db.fetchval(
                "SELECT count(*) FROM projection_status WHERE state <> 'starting' "
                "AND owner LIKE '%:' || $1", str(proc.pid)))
        await eventually(projecting, 60, "projecting")
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
        assert time.monotonic() - started < 15
    with child(read_settings, "project", "--metrics-port", "0"):
        await eventually(lambda: caught_up(clean_db, es, redis, read_settings), 90, "catch-up")
    await assert_read_models_match(clean_db, es, redis, read_settings)


@pytest.mark.soak
async def test_soak_of_mixed_load_with_a_projector_restart(
        read_settings: Settings, clean_db: Any, es: AsyncElasticsearch, redis: Redis) -> None:
    statuses: Counter[int] = Counter()
    placed: list[str] = []
    rng = random.Random(9)
    deadline = time.monotonic() + SOAK_SECONDS
    async with api_process(read_settings) as (base, _), \
            httpx.AsyncClient(base_url=base, timeout=20) as http:

        async def writer() -> None:
            while time.monotonic() < deadline:
                roll = rng.random()
                if roll < 0.6 or not placed:
                    response = await http.post("/orders", json={
                        "customer_id": f"c{rng.randint(1, 30)}", "items": [
                            {"sku": f"SKU-{rng.randint(1, 9)}", "name": "Soak item",
                             "quantity": rng.randint(1, 3), "unit_price": "2.50"}]})
                    if response.status_code == 201:
                        placed.append(response.json()["order_id"])
                else:
                    action = "cancel" if roll < 0.8 else "ship"
                    body = {"reason": "soak"} if action == "cancel" else {"tracking_number": "T"}
                    response = await http.post(f"/orders/{rng.choice(placed)}/{action}",
                                                json=body)
                statuses[response.status_code] += 1

        async def reader() -> None:
            while time.monotonic() < deadline:
                path = rng.choice(["/dashboard", "/search/orders?q=soak", "/search/suggest?"
                                   "prefix=So", "/customers/c1/orders"])
                statuses[(await http.get(path)).status_code] += 1
                await asyncio.sleep(0.01)

        async def projector() -> None:
            with child(read_settings, "project", "--metrics-port", "0") as first:
                await asyncio.sleep(SOAK_SECONDS / 2)
                first.send_signal(signal.SIGTERM)
                await asyncio.to_thread(first.wait, 30)
            with child(read_settings, "project", "--metrics-port", "0"):
                await asyncio.sleep(max(0.0, deadline - time.monotonic()))
                await eventually(lambda: caught_up(clean_db, es, redis, read_settings), 90,
                                 "catch-up after the soak")

        await asyncio.gather(projector(), *(writer() for _ in range(4)),
                             *(reader() for _ in range(4)))
    assert sum(statuses.values()) > 100
    assert not [s for s in statuses if s >= 500 and s != 503], statuses
    assert set(statuses) <= {200, 201, 409, 503}, statuses
    await assert_read_models_match(clean_db, es, redis, read_settings)

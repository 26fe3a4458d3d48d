"""A PostgreSQL crash or fast restart under concurrent commands: never a 500, no partial write.

The cluster is a private one this module starts (tests/helpers/private_postgres.py); the API runs on
a real port with the write role. During each fault every answer must be a success, a 4xx, or
a 503 with `Retry-After`; afterwards the API recovers by itself, every acknowledged write is
there, and the event log and the orders table agree.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest

from app.domain.errors import OrderNotFound
from app.kernel.pool import create_pool
from app.kernel.settings import Settings
from app.kernel.unavailable import ServiceUnavailable
from app.main import create_app
from app.write.store import OrderStore
from infra.migrate import migrate
from tests.helpers.live import serve
from tests.helpers.private_postgres import PrivateCluster, run_blocking
from tests.helpers.services import ServiceUrls
from tests.helpers.support import eventually, migrate_for_processes

WRITERS = 16
ROUNDS = 3  # one crash in flight did not always hit a command mid-statement
ITEMS = [{"sku": "SKU-1", "name": "Beans", "quantity": 1, "unit_price": "9.95"}]


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    made = PrivateCluster()
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture
async def api(cluster: PrivateCluster, service_urls: ServiceUrls) -> AsyncIterator[str]:
    await migrate_for_processes(cluster.url)
    settings = Settings(database_url=cluster.url, elasticsearch_url=service_urls.elasticsearch,
                        redis_url=service_urls.redis, role="write")
    async with serve(create_app(settings, role="write")) as base_url:
        yield base_url


@dataclass
class Load:
    """Concurrent writers; what they were answered and what was acknowledged."""

    base_url: str
    statuses: Counter[int] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    placed: set[str] = field(default_factory=set)
    changed: dict[str, int] = field(default_factory=dict)  # order id -> acknowledged version
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, response: httpx.Response) -> None:
        self.statuses[response.status_code] += 1
        if response.status_code >= 500 and not (
                response.status_code == 503 and response.headers.get("Retry-After")
                and response.json()["error"]["code"] == "ServiceUnavailable"):
            self.violations.append(f"{response.request.url.path}: {response.status_code} "
                                   f"{response.text[:300]}")

    async def writer(self, n: int) -> None:
        rng = random.Random(n)
        async with httpx.AsyncClient(base_url=self.base_url, timeout=30) as http:
            while not self.stop.is_set():
                try:
                    await self._one_command(http, rng)
                except httpx.TransportError as exc:  # the API itself must stay up
                    self.violations.append(f"transport error: {exc!r}")
                    await asyncio.sleep(0.1)

    async def _one_command(self, http: httpx.AsyncClient, rng: random.Random) -> None:
        headers = {"Idempotency-Key": str(uuid.uuid4())} if rng.random() < 0.5 else {}
        placed = await http.post("/orders", json={"customer_id": "c", "items": ITEMS},
                                 headers=headers)
        self.record(placed)
        if placed.status_code != 201:
            await asyncio.sleep(0.02)
            return
        order_id = placed.json()["order_id"]
        self.placed.add(order_id)
        change = rng.choice(["cancel", "ship", None])
        if change is not None:
            body = {"reason": "r"} if change == "cancel" else {"tracking_number": "T1"}
            changed = await http.post(f"/orders/{order_id}/{change}", json=body)
            self.record(changed)
            if changed.status_code == 200:
                self.changed[order_id] = changed.json()["version"]
        self.record(await http.get(f"/orders/{order_id}"))

    async def placed_after(self, mark: int, seconds: float) -> None:
        """Wait until an order placed after `mark` orders were acknowledged (recovery)."""

        async def more() -> bool:
            return self.statuses[201] > mark

        await eventually(more, seconds, "a write acknowledged after the fault")


async def _consistent(url: str, load: Load) -> None:
    conn = await asyncpg.connect(url)
    try:
        orders = {str(r["order_id"]): r["version"] for r in
                  await conn.fetch("SELECT order_id, version FROM orders")}
        streams = {str(r["stream_id"]): r["n"] for r in await conn.fetch(
            "SELECT stream_id, count(*) AS n, max(version) AS v FROM events GROUP BY 1")}
    finally:
        await conn.close()
    assert orders == streams, "the event log and the orders table disagree"
    assert load.placed <= orders.keys(), "an acknowledged order is missing"
    lost = {k: v for k, v in load.changed.items() if orders[k] < v}
    assert not lost, f"acknowledged changes missing: {lost}"


@pytest.mark.parametrize("fault", ["restart_fast", "kill_postmaster"])
async def test_postgres_crash_under_load_is_503_never_500_and_recovers(
        api: str, cluster: PrivateCluster, fault: str) -> None:
    load = Load(api)
    writers = [asyncio.create_task(load.writer(n)) for n in range(WRITERS)]
    try:
        await load.placed_after(20, 30)
        for _ in range(ROUNDS):
            if fault == "restart_fast":
                await run_blocking(cluster.restart_fast)
            else:
                await run_blocking(cluster.kill_postmaster)
                await asyncio.sleep(1)  # commands meet a dead server for a while
                await run_blocking(cluster.start)
            await load.placed_after(load.statuses[201] + 50, 30)
    finally:
        load.stop.set()
        await asyncio.gather(*writers)
    summary: dict[str, Any] = {"statuses": dict(load.statuses), "placed": len(load.placed)}
    assert not load.violations, (summary, load.violations[:10])
    assert load.statuses[503] > 0, f"the fault was never seen: {summary}"
    await _consistent(cluster.url, load)


async def test_store_turns_a_session_lost_mid_transaction_into_service_unavailable(
        cluster: PrivateCluster) -> None:
    await migrate(cluster.url)
    pool = await create_pool(cluster.url, min_size=1, max_size=1)
    store = OrderStore(pool)
    try:
        with pytest.raises(ServiceUnavailable) as raised:
            async with store.transaction() as tx:
                await run_blocking(cluster.restart_fast)  # the session ends mid-transaction
                await tx.load(uuid.uuid4(), lock=False)
        assert raised.value.service == "postgres"
        assert raised.value.__suppress_context__  # `from None`: no driver error leaks out
        with pytest.raises(OrderNotFound):  # the pool's one connection was replaced
            await store.get(uuid.uuid4())
    finally:
        await pool.close()

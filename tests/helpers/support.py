"""Helpers for tests of the read side: writers, a fault-injecting proxy, and the SQL truth."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis

from app.domain import errors
from app.domain.commands import CancelOrder, OrderLine, PlaceOrder, ShipOrder
from app.kernel.partitions import Partition
from app.kernel.positions import Checkpoint, LogPositions, PostgresCheckpoints
from app.kernel.readmodels import (
    dashboard_checkpoint,
    dashboard_keys,
    live_generation,
    search_checkpoint,
)
from app.kernel.settings import Settings
from app.main import create_app
from app.write import handlers
from app.write.store import OrderStore
from infra.migrate import migrate, role_passwords
from projectors.changes import Change, load_changes
from projectors.log import LogReader
from projectors.process import Projector

SKUS = [("SKU-100", "Espresso beans"), ("SKU-200", "Ceramic mug"), ("SKU-300", "Milk frother"),
        ("SKU-400", "Paper filters"), ("SKU-500", "Kettle")]


async def migrate_for_processes(url: str) -> list[str]:
    """Migrate, giving the process roles the passwords configured for this run (processes
    under test connect as their roles; without passwords configured, as the URL's user)."""
    return await migrate(url, role_passwords(Settings(database_url=url)))


def ctx() -> handlers.CommandContext:
    return handlers.CommandContext(correlation_id=str(uuid4()))


def random_order(rng: random.Random, customer: int) -> PlaceOrder:
    lines = tuple(OrderLine(sku, name, rng.randint(1, 4),
                            Decimal(rng.randint(100, 5000)) / 100)
                  for sku, name in rng.sample(SKUS, rng.randint(1, 3)))
    return PlaceOrder(f"cust-{customer}", lines, f"Customer {customer}")


async def write_orders(store: OrderStore, count: int, writers: int = 8,
                       seed: int = 7) -> list[UUID]:
    """`count` orders from `writers` concurrent writers; about a third cancelled or shipped."""
    ids: list[UUID] = []

    async def writer(n: int) -> None:
        rng = random.Random(seed * 100 + n)
        for _ in range(count // writers):
            placed = await handlers.place_order(store, random_order(rng, rng.randint(1, 50)),
                                                ctx())
            order_id = UUID(placed.body["order_id"])
            ids.append(order_id)
            roll = rng.random()
            with contextlib.suppress(errors.DomainError):
                if roll < 0.15:
                    await handlers.cancel_order(store, CancelOrder(order_id, "changed mind"),
                                                ctx())
                elif roll < 0.35:
                    await handlers.ship_order(store, ShipOrder(order_id, f"TRK{n}{rng.random()}"),
                                              ctx())

    await asyncio.gather(*(writer(n) for n in range(writers)))
    return ids


async def sql_truth(pool: asyncpg.Pool[Any]) -> dict[str, Any]:
    """The dashboard figures recomputed by SQL from the write model."""
    row = await pool.fetchrow("""
        SELECT count(*) AS placed,
               count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
               count(*) FILTER (WHERE status = 'shipped') AS shipped,
               count(*) FILTER (WHERE status = 'placed') AS open,
               coalesce(sum(total), 0) AS gross,
               coalesce(sum(total) FILTER (WHERE status <> 'cancelled'), 0) AS net
        FROM orders""")
    assert row is not None
    skus = await pool.fetch("SELECT sku, sum(quantity) AS q FROM order_lines GROUP BY sku")
    days = await pool.fetch("""
        SELECT to_char(placed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, count(*) AS n,
               sum(total) AS revenue FROM orders GROUP BY 1""")
    return {
        "placed": row["placed"], "cancelled": row["cancelled"], "shipped": row["shipped"],
        "open": row["open"], "gross_cents": int(row["gross"] * 100),
        "net_cents": int(row["net"] * 100),
        "top_skus": {r["sku"]: int(r["q"]) for r in skus},
        "by_day_placed": {r["day"]: r["n"] for r in days},
        "by_day_revenue_cents": {r["day"]: int(r["revenue"] * 100) for r in days},
    }


async def dashboard_partitions(redis: Redis, namespace: str) -> list[Partition]:
    """The partitions of the namespace's dashboard that have keys (found by their tag)."""
    found: set[Partition] = set()
    async for key in redis.scan_iter(match=f"{namespace}:dash:{{*"):
        label = re.search(r"/p(\d+)of(\d+)}", key.decode())
        if label:
            found.add(Partition(int(label[1]), int(label[2])))
    return sorted(found, key=lambda p: (p.count, p.index)) or [Partition()]


def _sum_into(total: dict[str, int], items: Any) -> None:
    for key, value in items:
        name = key.decode() if isinstance(key, bytes) else key
        total[name] = total.get(name, 0) + int(value)


async def redis_figures(redis: Redis, namespace: str) -> dict[str, Any]:
    """The same figures as the dashboard read model holds them (every partition summed)."""
    counters: dict[str, int] = {}
    by_day: dict[str, int] = {}
    skus: dict[str, int] = {}
    for partition in await dashboard_partitions(redis, namespace):
        generation = await live_generation(redis, namespace, partition) or "v1"
        keys = dashboard_keys(namespace, generation, partition)
        _sum_into(counters, (await redis.hgetall(keys["counters"])).items())
        _sum_into(by_day, (await redis.hgetall(keys["by_day"])).items())
        _sum_into(skus, await redis.zrange(keys["top_skus"], 0, -1, withscores=True))
    return {
        **{name: counters.get(name, 0) for name in
           ("placed", "cancelled", "shipped", "open", "gross_cents", "net_cents")},
        "top_skus": skus,
        "by_day_placed": {k.split(":")[0]: v for k, v in by_day.items()
                          if k.endswith(":placed")},
        "by_day_revenue_cents": {k.split(":")[0]: v for k, v in by_day.items()
                                 if k.endswith(":revenue_cents")},
    }


async def sql_orders(pool: asyncpg.Pool[Any]) -> dict[str, tuple[str, str]]:
    rows = await pool.fetch("SELECT order_id, status, total FROM orders")
    return {str(r["order_id"]): (r["status"], str(r["total"])) for r in rows}


async def indexed_orders(es: AsyncElasticsearch, alias: str,
                         fields: tuple[str, str] = ("status", "total")) -> dict[str, Any]:
    """Every document behind the alias as {order_id: (field, field)}; with "version" among
    the fields, each document's external version is checked to be its stream version."""
    await es.indices.refresh(index=alias)
    found: dict[str, Any] = {}
    after: list[Any] | None = None
    while True:
        body: dict[str, Any] = {"size": 1000, "sort": [{"order_id": "asc"}],
                                "_source": list(fields), "version": True}
        if after:
            body["search_after"] = after
        hits = (await es.search(index=alias, **body))["hits"]["hits"]
        if not hits:
            return found
        for hit in hits:
            if "version" in fields:
                assert hit["_version"] == hit["_source"]["version"]
            found[hit["_id"]] = tuple(hit["_source"][name] for name in fields)
        after = hits[-1]["sort"]


@contextlib.asynccontextmanager
async def in_process_api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on a freshly built app for `settings`, its lifespan running."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test",
                                     timeout=30) as http:
            yield http


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 30,
                     message: str = "condition") -> None:
    """Wait until `check()` is true, or fail after `seconds`."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{message} not reached within {seconds}s")
        await asyncio.sleep(0.1)


async def every_partition_applied(projector: Projector, settings: Settings,
                                  seconds: float = 30) -> None:
    """Wait until both read models have applied every committed event, in every partition
    (`X-Min-Position` waits only for its own order's partition)."""
    log = LogPositions(projector.pool)

    async def done() -> bool:
        search = await search_checkpoint(projector.es, PostgresCheckpoints(projector.pool),
                                         settings.search_alias, settings.partitions)
        dash = await dashboard_checkpoint(projector.redis, settings.dashboard_namespace,
                                          settings.partitions)
        return (await log.pending(search)).events == 0 and (await log.pending(dash)).events == 0

    await eventually(done, seconds, "every partition applied")


class TcpProxy:
    """A loopback TCP proxy that can be cut and restored, to simulate a service outage."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuse new connections and drop open ones."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def logged_changes(pool: asyncpg.Pool[Any]) -> list[Change]:
    """Every event of the log as a Change, in log order (once the snapshot horizon, which
    any open transaction on the server holds back, has passed all of them)."""
    written: int = await pool.fetchval("SELECT count(*) FROM events")
    reader = LogReader(pool)

    async def readable() -> bool:
        return len(await reader.read(Checkpoint.start(), 100_000)) == written

    await eventually(readable, 30, "every event past the snapshot horizon")
    batch = await reader.read(Checkpoint.start(), 100_000)
    changes, poison = await load_changes(pool, batch)
    assert poison is None and len(changes) == len(batch)
    return changes

"""The benchmark scenarios; each returns its figures and the same-run baseline's."""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import tempfile
import time
from typing import Any
from uuid import uuid4

from elasticsearch.helpers import async_bulk

from app.demo import Catalog, decide_order, generate
from app.domain.events import OrderPlaced, load_event
from app.domain.order import Order, evolve
from app.kernel.positions import LogPositions, PostgresCheckpoints
from app.kernel.readmodels import SearchIndexOptions, dashboard_checkpoint, search_checkpoint
from app.write import handlers
from app.write.store import OrderStore
from bench.common import (
    ALIAS,
    NAMESPACE,
    Bench,
    free_port,
    orders_cli,
    peak_rss_mib,
    percentile,
    process,
)
from projectors.changes import Change
from projectors.dashboard_sink import deltas
from projectors.documents import index_body, order_document


def _ctx() -> handlers.CommandContext:
    return handlers.CommandContext(correlation_id=str(uuid4()))


async def append(bench: Bench, orders: int) -> dict[str, Any]:
    """Orders placed per second through the write store vs raw asyncpg, same rows."""
    store = OrderStore(bench.pool)
    rng = random.Random(1)
    catalog = Catalog(rng)
    out: dict[str, Any] = {}
    for writers in (1, 8):
        commands = [decide_order(rng, catalog, uuid4(), time_now())[0].event
                    for _ in range(orders)]
        await bench.reset()
        started = time.perf_counter()
        await _parallel(writers, commands, lambda e: handlers.place_order(
            store, _command_of(e), _ctx()))
        ours = orders / (time.perf_counter() - started)
        await bench.reset()
        started = time.perf_counter()
        await _parallel(writers, commands, lambda e: _raw_insert(bench, e))
        raw = orders / (time.perf_counter() - started)
        out[f"{writers}_writers"] = {"orders_per_s": round(ours), "raw_asyncpg_per_s": round(raw),
                                     "ratio_vs_raw": round(ours / raw, 2)}
        recorder = await asyncio.to_thread(_eventsourcing_rate, bench, commands, writers)
        if recorder is not None:
            out[f"{writers}_writers"].update({"eventsourcing_per_s": round(recorder),
                                              "ratio_vs_eventsourcing": round(ours / recorder,
                                                                              2)})
    return out


def _eventsourcing_rate(bench: Bench, events: list[OrderPlaced], writers: int) -> float | None:
    """Events appended per second by the `eventsourcing` library's PostgreSQL recorder
    (its documented API), one event per order as we append, from `writers` threads."""
    try:
        from eventsourcing.persistence import StoredEvent
        from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
    except ImportError:
        return None
    from concurrent.futures import ThreadPoolExecutor
    from urllib.parse import urlsplit

    url = urlsplit(bench.settings.database_url)
    datastore = PostgresDatastore(dbname=url.path.lstrip("/"), host=url.hostname or "",
                                  port=url.port or 5432, user=url.username or "postgres",
                                  password=url.password or "", pool_size=writers)
    table = f"es_bench_{writers}"
    recorder = PostgresApplicationRecorder(datastore, events_table_name=table)
    recorder.create_table()
    stored = [StoredEvent(originator_id=e.order_id, originator_version=1,
                          topic="orders:OrderPlaced", state=json.dumps(e.payload()).encode())
              for e in events]
    started = time.perf_counter()
    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(lambda s: recorder.insert_events([s]), stored))
    rate = len(stored) / (time.perf_counter() - started)
    datastore.close()
    return rate


def time_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _command_of(event: Any) -> Any:
    from app.domain.commands import OrderLine, PlaceOrder

    return PlaceOrder(event.customer_id, tuple(OrderLine(i.sku, i.name, i.quantity, i.unit_price)
                                               for i in event.items), event.customer_name)


async def _parallel(writers: int, items: list[Any], call: Any) -> None:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)

    async def worker() -> None:
        while not queue.empty():
            await call(queue.get_nowait())

    await asyncio.gather(*(worker() for _ in range(writers)))


async def _raw_insert(bench: Bench, event: OrderPlaced) -> None:
    """The same three tables' rows with plain asyncpg: no domain, no idempotency, no notify."""
    async with bench.pool.acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO events (stream_id, version, type, schema_version, data,"
                           " metadata) VALUES ($1, 1, 'OrderPlaced', 2, $2, '{}')",
                           event.order_id, event.payload())
        await conn.execute("INSERT INTO orders (order_id, customer_id, customer_name, status, "
                           "total, item_count, version, placed_at) VALUES "
                           "($1, $2, $3, 'placed', $4, $5, 1, $6)", event.order_id,
                           event.customer_id, event.customer_name, event.total,
                           len(event.items), event.placed_at)
        await conn.executemany("INSERT INTO order_lines VALUES ($1, $2, $3, $4, $5, $6)",
                               [(event.order_id, n, i.sku, i.name, i.quantity, i.unit_price)
                                for n, i in enumerate(event.items, start=1)])


async def raw_bulk(bench: Bench, orders: list[Order], index: str) -> float:
    """Seconds to bulk-index the same final documents with the client's own helper."""
    body = index_body(SearchIndexOptions.of(bench.settings))  # the deployment's shards
    await bench.es.indices.create(index=index, mappings=body["mappings"], settings={
        **body["settings"], "refresh_interval": "-1"})
    started = time.perf_counter()
    await async_bulk(bench.es, ({"_index": index, "_id": str(o.order_id), "_source":
                                 order_document(o)} for o in orders), chunk_size=2000)
    await bench.es.indices.refresh(index=index)
    elapsed = time.perf_counter() - started
    await bench.es.indices.delete(index=index)
    return elapsed


async def counter_updates(bench: Bench) -> tuple[list[Order], list[list[Any]]]:
    """Every order folded from the log and the counter updates its events cause, in log
    order (outside any timing)."""
    rows = await bench.pool.fetch("SELECT stream_id, version, type, schema_version, data, "
                                  "position FROM events ORDER BY position")
    updates: list[list[Any]] = []
    states: dict[Any, Order] = {}
    for row in rows:
        event = load_event(row["type"], row["schema_version"], row["data"])
        before = states.get(row["stream_id"])
        states[row["stream_id"]] = after = evolve(before, event)
        updates += deltas(Change(None, event, before, after))  # type: ignore[arg-type]
    return list(states.values()), updates


async def raw_redis(bench: Bench, updates: list[list[Any]]) -> float:
    """Seconds to apply the same counter updates with a plain Redis pipeline."""
    names = {1: f"{NAMESPACE}-raw:counters", 2: f"{NAMESPACE}-raw:by_day",
             3: f"{NAMESPACE}-raw:top"}
    started = time.perf_counter()
    for start in range(0, len(updates), 5000):
        pipe = bench.redis.pipeline(transaction=False)
        for key, name, delta in updates[start:start + 5000]:
            if key == 3:
                pipe.zincrby(names[key], int(delta), name)
            else:
                pipe.hincrby(names[key], name, int(delta))
        await pipe.execute()
    elapsed = time.perf_counter() - started
    await bench.redis.delete(*names.values())
    return elapsed


async def _caught_up(bench: Bench) -> bool:
    log = LogPositions(bench.pool)
    search = await search_checkpoint(bench.es, PostgresCheckpoints(bench.pool), ALIAS)
    dash = await dashboard_checkpoint(bench.redis, bench.settings.dashboard_namespace)
    return (await log.pending(search)).events == 0 and (await log.pending(dash)).events == 0


async def projection(bench: Bench, events: int) -> dict[str, Any]:
    """A backlog of `events` projected into both sinks vs raw bulk + raw pipeline."""
    await bench.reset()
    written = await generate(OrderStore(bench.pool), int(events / 1.57), seed=7)
    started = time.perf_counter()
    async with process(orders_cli("project", "--metrics-port", "0"), bench.env(),
                       profile_as="projection") as projector:
        while not await _caught_up(bench):
            await asyncio.sleep(0.2)
        ours = time.perf_counter() - started
        projector_rss = peak_rss_mib(projector.pid)
    orders, updates = await counter_updates(bench)
    raw = await raw_bulk(bench, orders, f"{ALIAS}-raw") + await raw_redis(bench, updates)
    bench.results["projected_log"] = written  # projected, in place: the rebuild may reuse it
    return {"events": written, "events_per_s": round(written / ours),
            "raw_events_per_s": round(written / raw), "ratio_vs_raw": round(raw / ours, 2),
            "projector_peak_rss_mib": projector_rss}


async def rebuild(bench: Bench, events: int) -> dict[str, Any]:
    """A search rebuild of an `events` log vs raw bulk of the same documents; peak RSS and
    the longest gap in search answers seen by a reader during the swap. Runs on the log the
    projection scenario left when that is the asked size (quick mode), else on a new one."""
    written = bench.results.get("projected_log", 0)
    if not 0.95 * events <= written <= 1.05 * events:
        await bench.reset()
        written = await generate(OrderStore(bench.pool), int(events / 1.57), seed=9,
                                 batch_size=1000)
    peak_file = tempfile.NamedTemporaryFile(delete=False, suffix=".rss").name
    env = {**bench.env(), "PEAK_RSS_FILE": peak_file}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with process(orders_cli("project", "--metrics-port", "0"), bench.env()) as projector, \
            process(orders_cli("api", "--role", "read", "--port", str(port)), bench.env(),
                    f"{base}/health") as api:
        while not await _caught_up(bench):
            await asyncio.sleep(0.5)
        gaps = _GapWatch()
        watcher = asyncio.create_task(gaps.watch(base))
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.peak", "reindex", "search", env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        ours = time.perf_counter() - started
        await asyncio.sleep(2)
        gaps.stop = True
        await watcher
        # the live projector (which projected the whole log first) and the read API
        others = {"projector_peak_rss_mib": peak_rss_mib(projector.pid),
                  "api_peak_rss_mib": peak_rss_mib(api.pid)}
    if proc.returncode != 0:
        raise RuntimeError(err.decode()[-2000:])
    peak = float(open(peak_file).read().split()[-1])
    os.unlink(peak_file)
    orders, _ = await counter_updates(bench)
    raw = await raw_bulk(bench, orders, f"{ALIAS}-raw")
    return {"events": written, "events_per_s": round(written / ours),
            "raw_bulk_events_per_s": round(written / raw), "ratio_vs_raw": round(raw / ours, 2),
            "peak_rss_mib": peak, **others, "searches_during_rebuild": gaps.count,
            "failed_searches": gaps.failures, "longest_gap_ms": round(gaps.longest * 1000, 1)}


class _GapWatch:
    """Searches continuously; records the longest time between two good answers."""

    def __init__(self) -> None:
        self.stop = False
        self.count = 0
        self.failures = 0
        self.longest = 0.0

    async def watch(self, base: str) -> None:
        import httpx

        last_good = time.perf_counter()
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            while not self.stop:
                try:
                    response = await http.get("/search/orders", params={"q": "espresso",
                                                                        "size": 5})
                    ok = response.status_code == 200 and response.json()["total"] > 0
                except httpx.HTTPError:
                    ok = False
                self.count += 1
                now = time.perf_counter()
                if ok:
                    self.longest = max(self.longest, now - last_good)
                    last_good = now
                else:
                    self.failures += 1
                await asyncio.sleep(0.01)


# One API process per core, and the same for the bare baselines ("same server settings").
API_WORKERS = os.cpu_count() or 1
WORKERS = ["--workers", str(API_WORKERS)]
QUERIES = ["espresso", "mug", "Ada", "Hopper", "kettle 1kg", "SKU-10", "grinder black", "tea",
           "cust-00042", "1Z0", "frother", "changed my mind"]


def _search_params(rng: random.Random, count: int = 200) -> list[dict[str, Any]]:
    """The benchmark's search-box queries: a word or two, a status filter on 30%."""
    out: list[dict[str, Any]] = []
    for _ in range(count):
        params: dict[str, Any] = {"q": rng.choice(QUERIES), "size": 20}
        if rng.random() < 0.3:
            params["status"] = [rng.choice(["placed", "shipped", "cancelled"])]
        out.append(params)
    return out


def _search_paths(rng: random.Random, count: int = 200) -> list[str]:
    from urllib.parse import urlencode

    return ["/search/orders?" + urlencode(p, doseq=True) for p in _search_params(rng, count)]


async def freshness(bench: Bench, seconds: float, rate: int = 500) -> dict[str, Any]:
    """At a steady command rate: time from a 201 to the write being visible on each side
    (every 10th write is followed by an `X-Min-Position` read on each router). Commands go
    to a write-role API, reads to a read-role API, as the README's scaling section deploys them."""
    import aiohttp

    port, read_port = free_port(), free_port()
    base, read_base = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{read_port}"
    visible: dict[str, list[float]] = {"dashboard": [], "search": []}
    lag: list[tuple[float, int, int]] = []
    failures = 0
    sent = 0
    command_latency: list[float] = []
    body = {"customer_id": "cust-fresh", "customer_name": "Fresh Freddie",
            "items": [{"sku": "SKU-1", "name": "Freshness probe", "quantity": 1,
                       "unit_price": "1.00"}]}
    connector = aiohttp.TCPConnector(limit=256)
    async with process(orders_cli("project", "--metrics-port", "0"), bench.env()), \
            process(orders_cli("api", "--role", "write", "--port", str(port)), bench.env(),
                    f"{base}/health"), \
            process(orders_cli("api", "--role", "read", "--port", str(read_port)), bench.env(),
                    f"{read_base}/health"), \
            aiohttp.ClientSession(connector=connector) as http:
        started = time.perf_counter()
        tasks: list[asyncio.Task[None]] = []

        async def probe(position: int, acked: float, path: str, name: str) -> None:
            nonlocal failures
            async with http.get(read_base + path, params={"wait_ms": "5000"},
                                headers={"X-Min-Position": str(position)}) as response:
                await response.read()
                if response.status == 200:
                    visible[name].append(time.perf_counter() - acked)
                else:
                    failures += 1

        async def command(n: int) -> None:
            nonlocal sent, failures
            sent_at = time.perf_counter()
            async with http.post(base + "/orders", json=body) as response:
                payload = await response.json()
            acked = time.perf_counter()
            command_latency.append(acked - sent_at)
            if response.status != 201:
                failures += 1
                return
            if acked - started <= seconds:  # the rate counts answers within the window
                sent += 1
            if n % 10 == 0:
                position = payload["position"]
                tasks.append(asyncio.create_task(probe(position, acked, "/dashboard",
                                                       "dashboard")))
                tasks.append(asyncio.create_task(probe(position, acked, "/search/orders",
                                                       "search")))

        async def sample_lag() -> None:
            while time.perf_counter() - started < seconds + 2:
                async with http.get(read_base + "/admin/projections") as response:
                    status = (await response.json())["projections"]
                by_name = {p["name"]: p["lag_events"] or 0 for p in status}
                lag.append((round(time.perf_counter() - started, 2), by_name.get("search", 0),
                            by_name.get("dashboard", 0)))
                await asyncio.sleep(0.5)

        sampler = asyncio.create_task(sample_lag())
        cpu_before = _cpu_times()
        n = 0
        while time.perf_counter() - started < seconds:
            due = started + n / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(command(n)))
            n += 1
        elapsed = time.perf_counter() - started
        cpu_idle = _idle_share(cpu_before, _cpu_times())
        while any(not t.done() for t in tasks):
            await asyncio.gather(*tasks)
        await sampler
    return {"target_rate": rate, "achieved_rate": round(sent / elapsed), "seconds": seconds,
            "command_p50_ms": round(percentile(command_latency, 0.5) * 1000, 1),
            "command_p99_ms": round(percentile(command_latency, 0.99) * 1000, 1),
            "cpu_idle_pct": cpu_idle,
            **{f"{name}_p50_ms": round(percentile(v, 0.5) * 1000, 1) for name, v in
               visible.items()},
            **{f"{name}_p99_ms": round(percentile(v, 0.99) * 1000, 1) for name, v in
               visible.items()},
            "failed_requests": failures,
            "probes": {name: len(v) for name, v in visible.items()}, "lag_series": lag}


def _cpu_times() -> list[int]:
    with open("/proc/stat") as stat:
        return [int(v) for v in stat.readline().split()[1:]]


def _idle_share(before: list[int], after: list[int]) -> float:
    """Share of the machine's CPU time left idle between two /proc/stat readings, in %."""
    spent = [b - a for a, b in zip(before, after, strict=True)]
    return round(100 * (spent[3] + spent[4]) / max(1, sum(spent)), 1)  # idle + iowait

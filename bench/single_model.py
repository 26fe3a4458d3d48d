"""Scenario 7, "Is CQRS worth it here?": the same answers from the write model alone.

`app` is what a team tries first (run like `bench.bare`: `uvicorn bench.single_model:app`,
as many workers as our API, reading DATABASE_URL): `/dashboard` by SQL aggregates over
`orders` and `order_lines`, `/search/orders` by PostgreSQL full text over a trigger-kept
`tsvector` with a GIN index. `setup()` adds those to the benchmark database only (never to
the product's migrations); `single_model()` measures both sides at the same concurrency
while a steady write load runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import statistics
import sys
import time
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.demo import REASONS, Catalog
from app.domain.commands import CancelOrder, OrderLine, PlaceOrder, ShipOrder
from app.domain.errors import DomainError
from app.write import handlers
from app.write.store import OrderStore
from bench.common import ALIAS, Bench, free_port, orders_cli, percentile, process, wrk
from bench.scenarios import API_WORKERS, QUERIES, WORKERS, _caught_up, _search_paths

# A column kept by triggers, as a team would bolt onto a live write model: the write path's
# code stays as it is, and a generated column cannot see the order's lines.
SETUP = """
ALTER TABLE orders ADD COLUMN search tsvector;
CREATE FUNCTION bench_words(text) RETURNS tsvector LANGUAGE sql IMMUTABLE AS $$
    -- Punctuation to spaces first: the default parser reads 'SKU-1003' as 'sku', '-1003'.
    SELECT to_tsvector('simple', regexp_replace(coalesce($1, ''), '[^[:alnum:]]+', ' ', 'g'))
$$;
CREATE FUNCTION bench_order_search(o orders) RETURNS tsvector LANGUAGE sql STABLE AS $$
    SELECT setweight(bench_words(o.customer_name), 'A')
        || setweight(bench_words(string_agg(l.name || ' ' || l.sku, ' ')), 'B')
        || setweight(bench_words(concat_ws(' ', o.order_id, o.customer_id,
                                           o.tracking_number, o.cancel_reason)), 'C')
    FROM order_lines l WHERE l.order_id = o.order_id
$$;
CREATE FUNCTION bench_search_on_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.search := bench_order_search(NEW); RETURN NEW; END $$;
CREATE FUNCTION bench_search_on_place() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE orders o SET search = bench_order_search(o) WHERE o.order_id = NEW.order_id;
    RETURN NULL;
END $$;
-- The lines are inserted after their order: index a new order once, at commit.
CREATE CONSTRAINT TRIGGER bench_search_place AFTER INSERT ON orders
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bench_search_on_place();
CREATE TRIGGER bench_search_change
    BEFORE UPDATE OF customer_id, customer_name, tracking_number, cancel_reason ON orders
    FOR EACH ROW EXECUTE FUNCTION bench_search_on_change();
"""
BACKFILL = "UPDATE orders o SET search = bench_order_search(o)"
INDEX = "CREATE INDEX orders_search ON orders USING gin (search)"
TEARDOWN = """
DROP TRIGGER IF EXISTS bench_search_place ON orders;
DROP TRIGGER IF EXISTS bench_search_change ON orders;
DROP FUNCTION IF EXISTS bench_search_on_place(), bench_search_on_change(),
                        bench_order_search(orders), bench_words(text);
ALTER TABLE orders DROP COLUMN IF EXISTS search;
"""

DASHBOARD = """
WITH counts AS (
    SELECT count(*) AS placed,
           count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
           count(*) FILTER (WHERE status = 'shipped') AS shipped,
           count(*) FILTER (WHERE status = 'placed') AS open,
           round(coalesce(sum(total), 0), 2)::text AS gross,
           round(coalesce(sum(total) FILTER (WHERE status <> 'cancelled'), 0), 2)::text AS net
    FROM orders
), days AS (
    SELECT (e.at AT TIME ZONE 'UTC')::date AS day,
           count(*) FILTER (WHERE e.kind = 'placed') AS placed,
           count(*) FILTER (WHERE e.kind = 'cancelled') AS cancelled,
           count(*) FILTER (WHERE e.kind = 'shipped') AS shipped,
           round(coalesce(sum(o.total) FILTER (WHERE e.kind = 'placed'), 0), 2) AS revenue
    FROM orders o
    CROSS JOIN LATERAL (VALUES ('placed', o.placed_at), ('cancelled', o.cancelled_at),
                               ('shipped', o.shipped_at)) AS e (kind, at)
    WHERE e.at IS NOT NULL
    GROUP BY 1 ORDER BY 1 DESC LIMIT $1
), top AS (
    SELECT sku, sum(quantity) AS quantity FROM order_lines
    GROUP BY sku ORDER BY 2 DESC, sku COLLATE "C" DESC LIMIT $2
)
SELECT counts.*, (SELECT max(position) FROM events) AS position,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'day', day::text, 'placed', placed, 'cancelled', cancelled,
                   'shipped', shipped, 'revenue', revenue::text) ORDER BY day), '[]')
        FROM days) AS by_day,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('sku', sku, 'quantity', quantity)
                                  ORDER BY quantity DESC, sku COLLATE "C" DESC), '[]')
        FROM top) AS top_skus
FROM counts
"""

# Total and facets count every match; only the returned page pays for ts_headline.
SEARCH = """
WITH query AS MATERIALIZED (SELECT to_tsquery('simple', $1) AS q),
matched AS MATERIALIZED (
    SELECT o.order_id, o.status, ts_rank(o.search, query.q) AS rank
    FROM orders o, query WHERE /*match*/ o.search @@ query.q
), chosen AS (
    SELECT * FROM matched WHERE cardinality($2::text[]) = 0 OR status = ANY($2::text[])
), page AS (
    SELECT * FROM chosen ORDER BY rank DESC, order_id LIMIT $3
)
SELECT (SELECT count(*) FROM chosen) AS total,
       (SELECT coalesce(jsonb_object_agg(status, n), '{}')
        FROM (SELECT status, count(*) AS n FROM matched GROUP BY status) AS f) AS facets,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
            'order_id', o.order_id, 'customer_id', o.customer_id,
            'customer_name', o.customer_name, 'status', o.status,
            'item_count', o.item_count, 'total', o.total::text, 'placed_at', o.placed_at,
            'highlight', jsonb_build_object(
                'customer_name', jsonb_build_array(ts_headline(
                    'simple', coalesce(o.customer_name, ''), query.q, $4)),
                'tracking_number.text', jsonb_build_array(ts_headline(
                    'simple', coalesce(o.tracking_number, ''), query.q, $4)),
                'cancel_reason', jsonb_build_array(ts_headline(
                    'simple', coalesce(o.cancel_reason, ''), query.q, $4))
            ) || (SELECT jsonb_build_object(
                'item_names', jsonb_agg(ts_headline('simple', l.name, query.q, $4)),
                'skus.text', jsonb_agg(ts_headline('simple', l.sku, query.q, $4)))
                FROM order_lines l WHERE l.order_id = o.order_id)
        ) ORDER BY page.rank DESC, page.order_id), '[]')
        FROM page JOIN orders o USING (order_id) CROSS JOIN query) AS hits
"""
SEARCH_ALL = SEARCH.replace("/*match*/ o.search @@ query.q", "true")
HEADLINE = "StartSel=<mark>, StopSel=</mark>, HighlightAll=true"
STATUSES = ("placed", "cancelled", "shipped")
POOL_SIZE = 20  # the API's default (Settings.pool_max_size)


def tsquery(q: str) -> str:
    """`'word':* & ...` from the words of `q` (letters and digits only, as the documents
    are split), so no quote or operator of the user's reaches the tsquery parser."""
    words = re.findall(r"[^\W_]+", q.lower())[:8]
    return " & ".join(f"'{word[:64]}':*" for word in words)


def _bounded(raw: str | None, default: int, low: int, high: int) -> int | None:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if low <= value <= high else None


def _invalid(name: str) -> JSONResponse:
    return JSONResponse({"error": {"code": "validation_error", "message": f"bad {name}",
                                   "details": None}}, status_code=422)


def _marked(highlight: dict[str, list[str | None] | None]) -> dict[str, list[str]]:
    """Only the fields and values with a match, as Elasticsearch's highlighter answers."""
    kept = {name: [v for v in values or [] if v and "<mark>" in v]
            for name, values in highlight.items()}
    return {name: values for name, values in kept.items() if values}


async def dashboard(request: Request) -> JSONResponse:
    days = _bounded(request.query_params.get("days"), 30, 0, 366)
    if days is None:
        return _invalid("days")
    row = await request.app.state.pool.fetchrow(DASHBOARD, days, 10)
    return JSONResponse({
        "orders": {name: row[name] for name in ("placed", "cancelled", "shipped", "open")},
        "revenue": {"gross": row["gross"], "net": row["net"]},
        "by_day": row["by_day"], "top_skus": row["top_skus"], "position": row["position"] or 0})


async def search(request: Request) -> JSONResponse:
    size = _bounded(request.query_params.get("size"), 20, 1, 100)
    statuses = request.query_params.getlist("status")
    if size is None:
        return _invalid("size")
    if not set(statuses) <= set(STATUSES):
        return _invalid("status")
    q = (request.query_params.get("q") or "").strip()[:500]
    row = await request.app.state.pool.fetchrow(SEARCH if q else SEARCH_ALL, tsquery(q),
                                                statuses, size, HEADLINE)
    facets = dict.fromkeys(STATUSES, 0) | row["facets"]
    hits = [{**hit, "highlight": _marked(hit["highlight"]) if q else {}}
            for hit in row["hits"]]
    # No cursor paging: the benchmark never pages (a team would start with OFFSET).
    return JSONResponse({"total": row["total"], "hits": hits, "facets": {"status": facets},
                         "next_cursor": None})


async def health(request: Request) -> JSONResponse:
    await request.app.state.pool.fetchval("SELECT 1")
    return JSONResponse({"status": "ok"})


async def _codecs(conn: asyncpg.Connection[Any]) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads,
                              schema="pg_catalog")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    # UTC sessions: jsonb renders `placed_at` as `...+00:00`, as our documents hold it.
    app.state.pool = await asyncpg.create_pool(
        os.environ["DATABASE_URL"], min_size=2, max_size=POOL_SIZE, command_timeout=60,
        server_settings={"timezone": "UTC"}, init=_codecs)
    try:
        yield
    finally:
        await app.state.pool.close()


app = Starlette(routes=[Route("/dashboard", dashboard), Route("/search/orders", search),
                        Route("/health", health)], lifespan=lifespan)


async def setup(pool: asyncpg.Pool[Any]) -> dict[str, Any]:
    """Add the search column, its triggers and GIN index to the benchmark database; timed."""
    before = await pool.fetchval("SELECT pg_total_relation_size('orders')")
    timings: dict[str, float] = {}
    started = time.perf_counter()
    for name, sql in (("triggers", SETUP), ("backfill", BACKFILL), ("gin_index", INDEX),
                      ("vacuum_analyze", "VACUUM ANALYZE orders")):
        step = time.perf_counter()
        await pool.execute(sql)
        timings[f"{name}_s"] = round(time.perf_counter() - step, 2)
    after = await pool.fetchval("SELECT pg_total_relation_size('orders')")
    index = await pool.fetchval("SELECT pg_relation_size('orders_search')")
    return {"total_s": round(time.perf_counter() - started, 2), **timings,
            "index_mib": round(index / 2**20, 1),
            "orders_table_growth_mib": round((after - before) / 2**20, 1)}


async def teardown(pool: asyncpg.Pool[Any]) -> None:
    """Leave the benchmark database as the product's migrations made it."""
    await pool.execute(TEARDOWN)


class WriteLoad:
    """Commands at a steady rate through the write store: 60% place, 30% ship, 10% cancel
    (ships and cancels pick orders this load placed and left open)."""

    def __init__(self, store: OrderStore, rate: int) -> None:
        self._store, self._rate = store, rate
        self._rng = random.Random(3)
        self._catalog = Catalog(self._rng)
        self._open: list[UUID] = []
        self._inflight: set[asyncio.Task[None]] = set()
        self._latencies: list[float] = []
        self._errors = 0

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[dict[str, Any]]:
        """Send for the duration of the block; the yielded dict gets its figures."""
        figures: dict[str, Any] = {}
        self._latencies, self._errors = [], 0
        started = time.perf_counter()
        ticker = asyncio.create_task(self._tick(started))
        try:
            yield figures
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            elapsed = time.perf_counter() - started
            await asyncio.gather(*self._inflight)
            figures.update({
                "target_per_s": self._rate,
                "commands_per_s": round(len(self._latencies) / elapsed),
                "p50_ms": round(percentile(self._latencies, 0.5) * 1000, 2),
                "p99_ms": round(percentile(self._latencies, 0.99) * 1000, 2),
                "errors": self._errors})

    async def _tick(self, started: float) -> None:
        sent = 0
        while True:
            await asyncio.sleep(max(0.0, started + sent / self._rate - time.perf_counter()))
            task = asyncio.create_task(self._command())
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            sent += 1

    async def _command(self) -> None:
        started = time.perf_counter()
        try:
            await self._decide(handlers.CommandContext(correlation_id=str(uuid4())))
        except (DomainError, asyncpg.PostgresError, OSError):
            self._errors += 1  # counted; the load goes on
            return
        self._latencies.append(time.perf_counter() - started)

    async def _decide(self, ctx: handlers.CommandContext) -> None:
        rng, roll = self._rng, self._rng.random()
        if roll < 0.4 and self._open:
            order_id = self._open.pop(rng.randrange(len(self._open)))
            if roll < 0.1:
                await handlers.cancel_order(self._store, CancelOrder(
                    order_id, rng.choice(REASONS)), ctx)
            else:
                await handlers.ship_order(self._store, ShipOrder(
                    order_id, f"1Z{rng.randrange(10**12):012d}"), ctx)
            return
        customer_id, name = rng.choice(self._catalog.customers)
        lines = tuple(OrderLine(sku, item, rng.randint(1, 3), price) for sku, item, price
                      in rng.sample(self._catalog.items, rng.randint(1, 4)))
        placed = await handlers.place_order(self._store, PlaceOrder(customer_id, lines, name),
                                            ctx)
        self._open.append(UUID(placed.body["order_id"]))


async def _measure(base: str, paths: dict[str, list[str]], concurrency: int,
                   seconds: float) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        for name_paths in paths.values():  # warm caches and pools before timing
            (await http.get(name_paths[0])).raise_for_status()
    out: dict[str, Any] = {}
    for name, name_paths in paths.items():
        figures = await wrk(base, name_paths, concurrency, seconds)
        # With every connection busy, Little's law gives the mean latency from the rate.
        figures["mean_ms"] = concurrency / max(figures["rps"], 0.01) * 1000
        out[name] = {k: round(v, 2) for k, v in figures.items()}
    return out


async def _timed_get(http: httpx.AsyncClient, url: str,
                     params: dict[str, Any] | None = None) -> tuple[float, Any]:
    started = time.perf_counter()
    response = await http.get(url, params=params)
    response.raise_for_status()
    return time.perf_counter() - started, response.json()


async def _compare(bench: Bench, sides: dict[str, str]) -> dict[str, Any]:
    """Both sides' dashboards once the projector has caught up, the totals of the same
    searches, and one-at-a-time latencies (no load)."""
    await bench.es.indices.refresh(index=ALIAS)
    boards: dict[str, Any] = {}
    totals: dict[str, dict[str, int]] = {q: {} for q in QUERIES}
    unloaded: dict[str, dict[str, float]] = {}
    async with httpx.AsyncClient(timeout=60) as http:
        for side, base in sides.items():
            board_s = [await _timed_get(http, f"{base}/dashboard") for _ in range(5)]
            boards[side] = board_s[-1][1]
            search_s = []
            for q in QUERIES:
                elapsed, answer = await _timed_get(http, f"{base}/search/orders",
                                                   {"q": q, "size": 20})
                totals[q][side] = answer["total"]
                search_s.append(elapsed)
            unloaded[side] = {"dashboard_ms": round(statistics.median(
                                  s for s, _ in board_s) * 1000, 2),
                              "search_ms": round(statistics.median(search_s) * 1000, 2)}
    cqrs, single = boards["cqrs"], boards["single_model"]
    return {"agree": cqrs["orders"] == single["orders"],
            "dashboard_orders": {side: board["orders"] for side, board in boards.items()},
            "same": {key: cqrs[key] == single[key]
                     for key in ("revenue", "by_day", "top_skus", "position")},
            "search_totals": totals, "unloaded_ms": unloaded}


async def _projected(bench: Bench) -> None:
    async with asyncio.timeout(300):
        while not await _caught_up(bench):
            await asyncio.sleep(0.2)


async def single_model(bench: Bench, seconds: float, concurrency: int,
                       write_rate: int) -> dict[str, Any]:
    """Our read side (`orders api --role read` + `orders project`) against the single model
    (this module's app), same paths and `concurrency`, under `write_rate` commands/s.

    Runs on a data set already loaded and projected. The projector runs only in the CQRS
    phase (it is that side's cost); it catches up afterwards for the agreement check.
    """
    port, single_port = free_port(), free_port()
    sides = {"cqrs": f"http://127.0.0.1:{port}", "single_model": f"http://127.0.0.1:{single_port}"}
    paths = {"dashboard": ["/dashboard"], "search": _search_paths(random.Random(5))}
    load = WriteLoad(OrderStore(bench.pool), write_rate)
    project = orders_cli("project", "--metrics-port", "0")
    single_app = [sys.executable, "-m", "uvicorn", "bench.single_model:app", *WORKERS, "--port",
                  str(single_port), "--log-level", "warning"]
    started = time.perf_counter()
    out: dict[str, Any] = {"orders": await bench.pool.fetchval("SELECT count(*) FROM orders"),
                           "connections": concurrency, "write_rate": write_rate,
                           "load_generator": "wrk -t1", "api_workers": API_WORKERS}
    async with process(orders_cli("api", "--role", "read", "--port", str(port), *WORKERS),
                       bench.env(), f"{sides['cqrs']}/health"):
        async with process(project, bench.env()), load.running() as writes:
            out["cqrs"] = await _measure(sides["cqrs"], paths, concurrency, seconds)
        out["cqrs"]["writes"] = writes
        try:
            out["setup"] = await setup(bench.pool)
            async with process(single_app, bench.env(), f"{sides['single_model']}/health"):
                async with load.running() as writes:
                    out["single_model"] = await _measure(sides["single_model"], paths,
                                                         concurrency, seconds)
                out["single_model"]["writes"] = writes
                async with process(project, bench.env()):
                    await _projected(bench)
                    out.update(await _compare(bench, sides))
        finally:
            await teardown(bench.pool)
    out["ratio"] = {name: round(out["cqrs"][name]["rps"]
                                / max(out["single_model"][name]["rps"], 0.01), 2)
                    for name in paths}
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out

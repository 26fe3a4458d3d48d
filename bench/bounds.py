"""Commands and reads against the baselines that bound them, measured in the same run.

- commands: `POST /orders` vs the write store called directly (no HTTP) at the same
  concurrency, from as many processes as the API has workers; a bare route parsing the
  same body bounds the HTTP layer;
- search: `/search/orders` vs the identical Elasticsearch request bodies posted straight
  to Elasticsearch by the same load generator (what no API can beat for those queries);
- dashboard: `/dashboard` vs a bare route returning the very same bytes.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from typing import Any
from urllib.parse import urlencode

import httpx

from app.kernel.readmodels import resolve_index
from app.read.search import SearchQuery, build_msearch
from bench.common import (
    Bench,
    WrkRequest,
    free_port,
    orders_cli,
    peak_rss_mib,
    percentile,
    process,
    wrk,
    wrk_requests,
)
from bench.scenarios import API_WORKERS, WORKERS, _search_params
from bench.search_cost import search_cost

COMMAND_BODY = json.dumps({
    "customer_id": "cust-bench", "customer_name": "Bench Mark", "items": [
        {"sku": "SKU-1", "name": "Espresso beans", "quantity": 2, "unit_price": "9.95"},
        {"sku": "SKU-2", "name": "Ceramic mug", "quantity": 1, "unit_price": "12.00"}]})


def _ratio(ours: float, bound: float) -> float:
    return round(ours / bound, 2) if bound else float("nan")


async def store_direct(bench: Bench, seconds: float, concurrency: int) -> dict[str, float]:
    """Orders placed per second by the write store itself, `concurrency` writers spread
    over `API_WORKERS` processes (bench/store_direct.py), in one shared window."""
    start_at = time.time() + 3  # every process has its pool open by then
    per_process = [concurrency // API_WORKERS + (n < concurrency % API_WORKERS)
                   for n in range(API_WORKERS)]
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.store_direct", str(start_at), str(seconds), str(n),
        env=bench.env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        for n in per_process]
    latencies: list[float] = []
    for proc in procs:
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(err.decode()[-2000:])
        latencies += json.loads(out)
    return {"rps": round(len(latencies) / seconds, 1),
            "p50_ms": round(percentile(latencies, 0.5), 2),
            "p99_ms": round(percentile(latencies, 0.99), 2)}


async def commands(bench: Bench, seconds: float, concurrency: int = 32) -> dict[str, Any]:
    """`POST /orders` at `concurrency` connections (wrk) vs the store called directly at the
    same concurrency, and vs a bare Starlette route that parses the same body."""
    port, bare_port = free_port(), free_port()
    base, bare = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{bare_port}"
    await bench.reset()
    async with process(orders_cli("api", "--role", "write", "--port", str(port), *WORKERS),
                       bench.env(), f"{base}/health", profile_as="commands-api"):
        ours = await wrk(base, ["/orders"], concurrency, seconds, post_body=COMMAND_BODY)
    stored = await bench.pool.fetchval("SELECT count(*) FROM orders")
    direct = await store_direct(bench, seconds, concurrency)
    async with process([sys.executable, "-m", "uvicorn", "bench.bare:app", *WORKERS, "--port",
                        str(bare_port), "--log-level", "warning"], bench.env(), f"{bare}/fixed"):
        baseline = await wrk(bare, ["/orders"], concurrency, seconds, post_body=COMMAND_BODY)
    return {**{k: round(v, 2) for k, v in ours.items()}, "orders_stored": stored,
            "api_workers": API_WORKERS, "store_rps": direct["rps"],
            "store_p50_ms": direct["p50_ms"], "store_p99_ms": direct["p99_ms"],
            "ratio_vs_store": _ratio(ours["rps"], direct["rps"]),
            "bare_rps": round(baseline["rps"]), "bare_p99_ms": round(baseline["p99_ms"], 2),
            "ratio_vs_bare": _ratio(ours["rps"], baseline["rps"])}


def es_request(index: str, query: SearchQuery) -> WrkRequest:
    """The request `SearchReader.search` sends for `query`: one multi-search, as method,
    path and body."""
    lines = build_msearch(query, index)
    return ("POST", "/_msearch", "".join(json.dumps(line, separators=(",", ":")) + "\n"
                                         for line in lines))


async def reads(bench: Bench, seconds: float, concurrency: int = 64) -> dict[str, Any]:
    """`/dashboard` and `/search/orders` at `concurrency` connections (wrk), each against
    the baseline that bounds it (see the module docstring)."""
    port, bare_port = free_port(), free_port()
    base, bare = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{bare_port}"
    params = _search_params(random.Random(5))
    ref = await resolve_index(bench.es, bench.settings.search_alias)
    assert ref is not None, "the read data set is projected before this scenario"
    direct = [es_request(ref.name, SearchQuery(q=p["q"], status=p.get("status", []),
                                               size=p["size"])) for p in params]
    out: dict[str, Any] = {"orders": await bench.pool.fetchval("SELECT count(*) FROM orders"),
                           "connections": concurrency, "load_generator": "wrk -t1",
                           "api_workers": API_WORKERS}
    async with process(orders_cli("api", "--role", "read", "--port", str(port), *WORKERS),
                       bench.env(), f"{base}/health", profile_as="reads-api") as api:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            dashboard_body = (await http.get("/dashboard")).content
        out["search_one_at_a_time"] = await search_cost(
            base, bench.settings.elasticsearch_url, ref.name, params)
        out["dashboard"] = await wrk(base, ["/dashboard"], concurrency, seconds)
        out["search"] = await wrk(base, ["/search/orders?" + urlencode(p, doseq=True)
                                         for p in params], concurrency, seconds)
        out["api_peak_rss_mib"] = peak_rss_mib(api.pid)
    es = await wrk_requests(bench.settings.elasticsearch_url, direct, concurrency, seconds)
    out["search"].update({"es_rps": round(es["rps"]), "es_p50_ms": round(es["p50_ms"], 2),
                          "es_p99_ms": round(es["p99_ms"], 2), "es_errors": es["errors"],
                          "ratio_vs_es": _ratio(out["search"]["rps"], es["rps"])})
    env = {**bench.env(), "BARE_BODY": dashboard_body.decode()}
    async with process([sys.executable, "-m", "uvicorn", "bench.bare:app", *WORKERS, "--port",
                        str(bare_port), "--log-level", "warning"], env, f"{bare}/fixed"):
        baseline = await wrk(bare, ["/fixed"], concurrency, seconds)
    out["dashboard"].update({"bare_rps": round(baseline["rps"]),
                             "bare_p99_ms": round(baseline["p99_ms"], 2),
                             "ratio_vs_bare": _ratio(out["dashboard"]["rps"], baseline["rps"]),
                             "body_bytes": len(dashboard_body)})
    return out

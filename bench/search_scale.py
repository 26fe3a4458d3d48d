"""Scenario `search_scale`: what one search costs as the index grows (1,000,000 orders in
the full run), through the API and straight to Elasticsearch.

The index holds demo orders folded to their final state and bulk-indexed with the
projection's own mapping and documents (no log behind them: building a million orders
through the command path would take most of the run). A read API serves it under an alias
of its own; each distinct query of the benchmark's search mix then runs one at a time
through the API and as the identical multi-search straight to Elasticsearch, with the
engine's own `took` (bench/search_cost.py).
"""

from __future__ import annotations

import random
import time
from typing import Any

from elasticsearch.helpers import async_bulk

from bench.as_you_type import demo_orders
from bench.common import ALIAS, Bench, free_port, orders_cli, peak_rss_mib, process
from bench.scenarios import _search_params
from bench.search_cost import search_cost
from projectors.documents import index_body, order_document

SCALE_ALIAS = f"{ALIAS}-scale"
INDEX = f"{SCALE_ALIAS}-v1"


async def search_scale(bench: Bench, orders: int) -> dict[str, Any]:
    """Build an index of `orders` orders, measure searches on it, delete it."""
    body = index_body()
    await bench.es.indices.create(index=INDEX, mappings=body["mappings"],
                                  settings=body["settings"])
    try:
        started = time.perf_counter()
        await async_bulk(bench.es, ({"_index": INDEX, "_id": str(o.order_id),
                                     "_source": order_document(o)}
                                    for o in demo_orders(orders, seed=17)), chunk_size=2000)
        await bench.es.indices.refresh(index=INDEX)
        built_s = time.perf_counter() - started
        await bench.es.indices.put_alias(index=INDEX, name=SCALE_ALIAS)
        stats = await bench.es.indices.stats(index=INDEX, metric="docs,store")
        primaries = stats["indices"][INDEX]["primaries"]
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**bench.env(), "ORDERS_SEARCH_ALIAS": SCALE_ALIAS}
        async with process(orders_cli("api", "--role", "read", "--port", str(port)), env,
                           f"{base}/health") as api:
            cost = await search_cost(base, bench.settings.elasticsearch_url, INDEX,
                                     _search_params(random.Random(5)))
            rss = peak_rss_mib(api.pid)
    finally:
        await bench.es.indices.delete(index=INDEX, ignore_unavailable=True)
    return {"orders": primaries["docs"]["count"], "build_s": round(built_s, 1),
            "index_mib": round(primaries["store"]["size_in_bytes"] / 2**20, 1),
            "read_api_peak_rss_mib": rss, **cost}

"""Scenario `typing`: the search box's query as people type, against the query it replaced.

Both queries run on the same index of demo orders (bulk-indexed final documents, built for
this scenario and deleted after it), one request at a time, alternating per input so that
drift on a shared machine hits both alike. Inputs are multi-word searches typed a character
at a time (every prefix from two characters on), as the page sends them.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from elasticsearch.helpers import async_bulk

from app.demo import Catalog, decide_order
from app.domain.order import Order, evolve
from app.read.search import SearchQuery, build_search
from app.read.search_text import HIGHLIGHT_FIELDS, PREFIX_FIELDS, TEXT_FIELDS
from bench.common import ALIAS, Bench, percentile
from projectors.documents import index_body, order_document

INDEX = f"{ALIAS}-typing"

TYPED = ["Ada Lovelace espresso beans", "Grace ceramic mug", "gooseneck kettle Linus",
         "sku-1003 changed my mind", "travel mug 1Z0", "oat milk -cancelled"]


def typed_inputs() -> list[str]:
    """Every prefix of every text, from two characters on."""
    return [text[:end] for text in TYPED for end in range(2, len(text) + 1)]


def previous_query(q: str, size: int = 20) -> dict[str, Any]:
    """The request body before as-you-type across fields (the baseline): one
    `simple_query_string` or a `bool_prefix` that needed every word in one field."""
    body = build_search(SearchQuery(q=None, size=size))
    body["query"]["bool"]["must"] = [{"bool": {"should": [
        {"simple_query_string": {"query": q, "fields": TEXT_FIELDS, "default_operator": "and",
                                 "lenient": True}},
        {"multi_match": {"query": q, "type": "bool_prefix", "fields": PREFIX_FIELDS,
                         "operator": "and"}},
    ], "minimum_should_match": 1}}]
    words = re.findall(r"\w+", q.lower())[:8]
    prefixes = [{"wildcard": {f: {"value": f"{w}*"}}} for w in words for f in PREFIX_FIELDS]
    body["highlight"] = {
        "type": "unified", "fields": {f: {"number_of_fragments": 0} for f in HIGHLIGHT_FIELDS},
        "highlight_query": {"bool": {"should": [
            {"simple_query_string": {"query": q, "fields": HIGHLIGHT_FIELDS, "lenient": True}},
            *prefixes]}},
        "pre_tags": ["<mark>"], "post_tags": ["</mark>"], "require_field_match": False}
    return body


def _summary(wall: list[float], took: list[float], found: int, inputs: int) -> dict[str, Any]:
    return {"mean_ms": round(sum(wall) / len(wall), 2), "p50_ms": round(percentile(wall, 0.5), 2),
            "p99_ms": round(percentile(wall, 0.99), 2),
            "engine_mean_ms": round(sum(took) / len(took), 2),
            "inputs_with_hits": found, "inputs": inputs}


def demo_orders(count: int, seed: int = 13) -> Iterator[Order]:
    """`count` demo orders folded to their final state, as the projection would index them
    (one at a time: a million of them need not fit in memory)."""
    rng = random.Random(seed)
    catalog = Catalog(rng)
    now = datetime.now(UTC)
    for n in range(count):
        placed_at = now - timedelta(days=7) + timedelta(seconds=7 * 86400 * n / count)
        state = None
        for versioned in decide_order(rng, catalog, uuid4(), placed_at, not_after=now):
            state = evolve(state, versioned.event)
        assert state is not None
        yield state


async def as_you_type(bench: Bench, orders: int, rounds: int) -> dict[str, Any]:
    """Latency of today's query vs the previous one over `rounds` passes of typed inputs,
    on an index of `orders` demo orders."""
    body = index_body()
    await bench.es.indices.create(index=INDEX, mappings=body["mappings"],
                                  settings=body["settings"])
    try:
        await async_bulk(bench.es, ({"_index": INDEX, "_id": str(o.order_id),
                                     "_source": order_document(o)}
                                    for o in demo_orders(orders)), chunk_size=2000)
        await bench.es.indices.refresh(index=INDEX)
        await bench.es.indices.forcemerge(index=INDEX, max_num_segments=1)
        out = await _measure(bench, rounds)
    finally:
        await bench.es.indices.delete(index=INDEX)
    out["orders"] = orders
    return out


async def _measure(bench: Bench, rounds: int) -> dict[str, Any]:
    inputs = typed_inputs()
    timings: dict[str, tuple[list[float], list[float]]] = {"ours": ([], []), "previous": ([], [])}
    with_hits = {"ours": 0, "previous": 0}
    bodies = {q: {"ours": build_search(SearchQuery(q=q)), "previous": previous_query(q)}
              for q in inputs}
    for q in inputs[:10]:  # warm caches for both
        for body in bodies[q].values():
            await bench.es.search(index=INDEX, **body)
    for n in range(rounds):
        for q in inputs:
            order = ("ours", "previous") if n % 2 == 0 else ("previous", "ours")
            for name in order:
                started = time.perf_counter()
                response = await bench.es.search(index=INDEX, **bodies[q][name])
                timings[name][0].append((time.perf_counter() - started) * 1000)
                timings[name][1].append(float(response.body["took"]))
                if n == 0 and response.body["hits"]["hits"]:
                    with_hits[name] += 1
    out = {name: _summary(wall, took, with_hits[name], len(inputs))
           for name, (wall, took) in timings.items()}
    out["ratio_mean"] = round(out["ours"]["mean_ms"] / out["previous"]["mean_ms"], 2)
    out["ratio_p99"] = round(out["ours"]["p99_ms"] / out["previous"]["p99_ms"], 2)
    out["rounds"] = rounds
    return out

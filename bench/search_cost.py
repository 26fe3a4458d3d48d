"""What one search costs, one at a time: through the API, and the same multi-search sent
straight to Elasticsearch with the engine's own time (`took`) of each of its two requests."""

from __future__ import annotations

import statistics
import time
from typing import Any
from urllib.parse import urlencode

import httpx
from elasticsearch import AsyncElasticsearch

from app.read.search import SearchQuery, build_msearch


async def _through_api(http: httpx.AsyncClient, params: dict[str, Any],
                       samples: dict[str, list[float]]) -> None:
    started = time.perf_counter()
    answer = await http.get("/search/orders", params=params)
    samples["api_ms"].append((time.perf_counter() - started) * 1000)
    answer.raise_for_status()


async def _direct(es: AsyncElasticsearch, index: str, query: SearchQuery,
                  samples: dict[str, list[float]]) -> None:
    started = time.perf_counter()
    response = await es.msearch(searches=build_msearch(query, index))
    samples["es_ms"].append((time.perf_counter() - started) * 1000)
    counts, page = response.body["responses"]
    samples["took_counts_ms"].append(counts["took"])
    samples["took_page_ms"].append(page["took"])


def _key(params: dict[str, Any]) -> str:
    return urlencode(params, doseq=True)


async def search_cost(http: httpx.AsyncClient, es: AsyncElasticsearch, index: str,
                      mix: list[dict[str, Any]], rounds: int = 5) -> dict[str, Any]:
    """Each distinct query of `mix`, `rounds` times, API and direct in turns: the medians
    per query, and over all of them the p50 of API and direct latency and of `took`."""
    distinct = list({_key(p): p for p in mix}.values())
    samples: dict[str, dict[str, list[float]]] = {
        _key(p): {"api_ms": [], "es_ms": [], "took_page_ms": [], "took_counts_ms": []}
        for p in distinct}
    for n in range(rounds):
        for params in distinct:
            mine = samples[_key(params)]
            query = SearchQuery(q=params["q"], status=params.get("status", []),
                                size=params["size"])
            turns = [_through_api(http, params, mine), _direct(es, index, query, mine)]
            # whichever runs first warms the engine's caches for the other: take turns
            for turn in turns if n % 2 == 0 else reversed(turns):
                await turn
    per_query = {key: {name: round(statistics.median(values), 1)
                       for name, values in found.items()} for key, found in samples.items()}
    overall = {name: round(statistics.median([v for found in samples.values()
                                              for v in found[name]]), 2)
               for name in ("api_ms", "es_ms", "took_page_ms", "took_counts_ms")}
    return {"queries": len(distinct), "rounds": rounds, "p50": overall,
            "per_query": per_query}

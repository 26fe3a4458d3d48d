"""What one search costs, one at a time: through the API, and the same multi-search sent
straight to Elasticsearch with the engine's own time (`took`) of each of its two requests,
both timed with the same HTTP client."""

from __future__ import annotations

import json
import statistics
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp

from app.read.search import SearchQuery, build_msearch


async def _through_api(http: aiohttp.ClientSession, base: str, params: dict[str, Any],
                       samples: dict[str, list[float]]) -> None:
    url = f"{base}/search/orders?{urlencode(params, doseq=True)}"
    started = time.perf_counter()
    async with http.get(url) as answer:
        await answer.read()
    samples["api_ms"].append((time.perf_counter() - started) * 1000)
    answer.raise_for_status()


async def _direct(http: aiohttp.ClientSession, es_url: str, index: str, query: SearchQuery,
                  samples: dict[str, list[float]]) -> None:
    body = "".join(json.dumps(line) + "\n" for line in build_msearch(query, index))
    started = time.perf_counter()
    # aiohttp sends the URL's user:password as basic auth
    async with http.post(f"{es_url.rstrip('/')}/_msearch", data=body,
                         headers={"Content-Type": "application/x-ndjson"}) as response:
        found = await response.json()
    samples["es_ms"].append((time.perf_counter() - started) * 1000)
    response.raise_for_status()
    counts, page = found["responses"]
    samples["took_counts_ms"].append(counts["took"])
    samples["took_page_ms"].append(page["took"])


def _key(params: dict[str, Any]) -> str:
    return urlencode(params, doseq=True)


async def search_cost(base: str, es_url: str, index: str, mix: list[dict[str, Any]],
                      rounds: int = 5) -> dict[str, Any]:
    """Each distinct query of `mix`, `rounds` times, API (at `base`) and direct in turns:
    the medians per query, and over all of them the p50 of API and direct latency and of
    `took`. Both are timed with one HTTP client (aiohttp, on one keep-alive connection to
    each server), so the difference is the API's, not the clients'."""
    distinct = list({_key(p): p for p in mix}.values())
    samples: dict[str, dict[str, list[float]]] = {
        _key(p): {"api_ms": [], "es_ms": [], "took_page_ms": [], "took_counts_ms": []}
        for p in distinct}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        for n in range(rounds):
            for params in distinct:
                mine = samples[_key(params)]
                query = SearchQuery(q=params["q"], status=params.get("status", []),
                                    size=params["size"])
                turns = [_through_api(http, base, params, mine),
                         _direct(http, es_url, index, query, mine)]
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

"""The search request against the one it replaced, on the reads data set, straight to
Elasticsearch with the same `wrk` mix, back to back (previous, current, previous, current)
so that a machine whose load drifts shows it.

Previous: one search that ranked, counted every match exactly and aggregated the status
facets in one go. Current (`build_msearch`): a page that neither counts nor aggregates and a
hit-less counts request, both from the request cache while the index is unchanged. The same
current request without highlights shows what highlighting costs.
"""

from __future__ import annotations

import json
import random
from typing import Any
from urllib.parse import urlencode

from app.kernel.readmodels import resolve_index
from app.read.search import SearchQuery, build_counts, build_msearch, build_search
from bench.common import Bench, WrkRequest, wrk_requests
from bench.scenarios import _search_params


def _ndjson(lines: list[dict[str, Any]]) -> WrkRequest:
    return ("POST", "/_msearch", "".join(json.dumps(line, separators=(",", ":")) + "\n"
                                         for line in lines))


def previous_request(index: str, query: SearchQuery) -> WrkRequest:
    """The request the API sent before counting moved apart from ranking."""
    body = build_search(query)
    body.update(track_total_hits=True, aggs=build_counts(query)["aggs"])
    fields = ",".join(body.pop("_source"))
    return ("POST", f"/{index}/_search?" + urlencode({"_source_includes": fields}),
            json.dumps(body, separators=(",", ":")))


def without_highlight(index: str, query: SearchQuery) -> WrkRequest:
    lines = build_msearch(query, index)
    lines[3].pop("highlight", None)
    return _ndjson(lines)


async def search_bodies(bench: Bench, seconds: float, concurrency: int) -> dict[str, Any]:
    ref = await resolve_index(bench.es, bench.settings.search_alias)
    assert ref is not None, "the read data set is projected before this scenario"
    queries = [SearchQuery(q=p["q"], status=p.get("status", []), size=p["size"])
               for p in _search_params(random.Random(5))]
    mixes = {"previous": [previous_request(ref.name, q) for q in queries],
             "current": [_ndjson(build_msearch(q, ref.name)) for q in queries],
             "current_without_highlight": [without_highlight(ref.name, q) for q in queries]}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in mixes}
    for name in ("previous", "current", "previous", "current", "current_without_highlight"):
        runs[name].append(await wrk_requests(bench.settings.elasticsearch_url, mixes[name],
                                             concurrency, seconds))
    rps = {name: [round(r["rps"], 1) for r in found] for name, found in runs.items()}
    mean = {name: sum(v) / len(v) for name, v in rps.items()}
    return {"connections": concurrency, "rps": rps,
            "p99_ms": {name: [round(r["p99_ms"], 1) for r in found]
                       for name, found in runs.items()},
            "errors": sum(r["errors"] for found in runs.values() for r in found),
            "ratio_current_vs_previous": round(mean["current"] / mean["previous"], 2),
            "ratio_without_highlight_vs_current": round(
                mean["current_without_highlight"] / mean["current"], 2)}

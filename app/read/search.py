"""The search box on Elasticsearch: full text, filters, status facets, cursors, suggestions.

Built on server-core features only: `simple_query_string` (never fails on user syntax),
`multi_match` of type `bool_prefix` over `index_prefixes` fields (as-you-type), `terms`
aggregations, highlighting, `search_after` cursors and the `completion` suggester.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from elasticsearch import AsyncElasticsearch

Sort = Literal["relevance", "placed_at", "-placed_at", "total", "-total"]
TEXT_FIELDS = ["customer_name^3", "item_names^2", "skus.text^2", "tracking_number.text",
               "cancel_reason", "order_id", "customer_id"]
PREFIX_FIELDS = ["customer_name", "item_names", "skus.text", "tracking_number.text"]
HIGHLIGHT_FIELDS = ["customer_name", "item_names", "skus.text", "tracking_number.text",
                    "cancel_reason"]
SORTS: dict[str, list[dict[str, str]]] = {
    "relevance": [{"_score": "desc"}, {"order_id": "asc"}],
    "placed_at": [{"placed_at": "asc"}, {"order_id": "asc"}],
    "-placed_at": [{"placed_at": "desc"}, {"order_id": "desc"}],
    "total": [{"total_cents": "asc"}, {"order_id": "asc"}],
    "-total": [{"total_cents": "desc"}, {"order_id": "desc"}],
}
HIT_FIELDS = ["order_id", "customer_id", "customer_name", "status", "item_count", "total",
              "placed_at"]
STATUSES = ("placed", "cancelled", "shipped")


class BadCursor(ValueError):
    """The cursor was not made by this API for this sort."""


@dataclass(frozen=True)
class SearchQuery:
    q: str | None = None
    status: list[str] = field(default_factory=list)
    customer_id: str | None = None
    placed_from: datetime | None = None
    placed_to: datetime | None = None
    min_total: Decimal | None = None
    max_total: Decimal | None = None
    sort: Sort = "relevance"
    size: int = 20
    cursor: str | None = None


def encode_cursor(sort: str, values: list[Any]) -> str:
    raw = json.dumps({"s": sort, "a": values}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> list[Any]:
    """The `search_after` values inside an opaque cursor, checked against the sort."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        values = data["a"]
        if data["s"] != sort or not isinstance(values, list) or len(values) != 2:
            raise BadCursor("the cursor belongs to another sort order")
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError,
            RecursionError):
        raise BadCursor("the cursor is not valid") from None
    return values


def _cents(amount: Decimal) -> int:
    return int(amount.scaleb(2).to_integral_value())


def _filters(query: SearchQuery) -> list[dict[str, Any]]:
    filters: list[dict[str, Any]] = []
    if query.customer_id:
        filters.append({"term": {"customer_id": query.customer_id}})
    placed: dict[str, str] = {}
    if query.placed_from:
        placed["gte"] = query.placed_from.isoformat()
    if query.placed_to:
        placed["lte"] = query.placed_to.isoformat()
    if placed:
        filters.append({"range": {"placed_at": placed}})
    total: dict[str, int] = {}
    if query.min_total is not None:
        total["gte"] = _cents(query.min_total)
    if query.max_total is not None:
        total["lte"] = _cents(query.max_total)
    if total:
        filters.append({"range": {"total_cents": total}})
    return filters


def _text(q: str) -> dict[str, Any]:
    return {"bool": {"should": [
        {"simple_query_string": {"query": q, "fields": TEXT_FIELDS, "default_operator": "and",
                                 "lenient": True}},
        {"multi_match": {"query": q, "type": "bool_prefix", "fields": PREFIX_FIELDS,
                         "operator": "and"}},
    ], "minimum_should_match": 1}}


def _highlight(q: str) -> dict[str, Any]:
    # Prefix matches run on the hidden `_index_prefix` fields, which highlighters cannot see;
    # a wildcard per typed word on the visible fields marks the same words.
    words = re.findall(r"\w+", q.lower())[:8]
    prefixes = [{"wildcard": {f: {"value": f"{w}*"}}} for w in words for f in PREFIX_FIELDS]
    highlight_query = {"bool": {"should": [
        {"simple_query_string": {"query": q, "fields": HIGHLIGHT_FIELDS, "lenient": True}},
        *prefixes]}}
    # unified, whole field (names are short): the cheapest of the highlighters measured here
    return {"type": "unified", "fields": {f: {"number_of_fragments": 0} for f in HIGHLIGHT_FIELDS},
            "highlight_query": highlight_query, "pre_tags": ["<mark>"],
            "post_tags": ["</mark>"], "require_field_match": False}


def build_search(query: SearchQuery) -> dict[str, Any]:
    """The Elasticsearch request body for a search box query.

    The status filter is a post filter, so `facets.status` counts every status that the
    other filters and the text allow (clicking a facet shows how many you would get).
    """
    must: list[dict[str, Any]] = [_text(query.q)] if query.q else [{"match_all": {}}]
    body: dict[str, Any] = {
        "query": {"bool": {"must": must, "filter": _filters(query)}},
        "size": query.size,
        "sort": SORTS[query.sort],
        "track_total_hits": True,
        "source_includes": HIT_FIELDS,
        "aggs": {"status": {"terms": {"field": "status", "size": 10}}},
    }
    if query.status:
        body["post_filter"] = {"terms": {"status": query.status}}
    if query.q:
        body["highlight"] = _highlight(query.q)
    if query.cursor:
        body["search_after"] = decode_cursor(query.cursor, query.sort)
    return body


def _hit(hit: dict[str, Any]) -> dict[str, Any]:
    source = hit["_source"]
    return {**{f: source.get(f) for f in HIT_FIELDS},
            "highlight": hit.get("highlight", {})}


def search_result(query: SearchQuery, response: dict[str, Any]) -> dict[str, Any]:
    """The API's answer from an Elasticsearch response."""
    hits = response["hits"]["hits"]
    buckets = response["aggregations"]["status"]["buckets"]
    facets = {status: 0 for status in STATUSES}
    facets.update({b["key"]: b["doc_count"] for b in buckets})
    next_cursor = None
    if len(hits) == query.size:
        next_cursor = encode_cursor(query.sort, hits[-1]["sort"])
    return {"total": response["hits"]["total"]["value"], "hits": [_hit(h) for h in hits],
            "facets": {"status": facets}, "next_cursor": next_cursor}


SUGGEST_KINDS = {"customer": "suggest_customer", "item": "suggest_item", "sku": "suggest_sku"}


def build_suggest(prefix: str, size: int) -> dict[str, Any]:
    return {"suggest": {kind: {"prefix": prefix, "completion": {
        "field": field_name, "size": size, "skip_duplicates": True}}
        for kind, field_name in SUGGEST_KINDS.items()}, "source": False}


def suggest_result(response: dict[str, Any], size: int) -> list[dict[str, str]]:
    """Merge the three suggesters, best first, one entry per distinct text."""
    scored: list[tuple[float, str, str]] = []
    for kind in SUGGEST_KINDS:
        for entry in response.get("suggest", {}).get(kind, []):
            for option in entry.get("options", []):
                scored.append((option.get("_score", 0.0), option["text"], kind))
    seen: set[str] = set()
    merged: list[dict[str, str]] = []
    for _, text, kind in sorted(scored, key=lambda s: (-s[0], s[1])):
        if text.lower() not in seen:
            seen.add(text.lower())
            merged.append({"text": text, "kind": kind})
    return merged[:size]


class SearchReader:
    """Runs search-box queries against the `orders` alias, or the concrete index given."""

    def __init__(self, es: AsyncElasticsearch, alias: str) -> None:
        self._es = es
        self._alias = alias

    async def search(self, query: SearchQuery, index: str | None = None) -> dict[str, Any]:
        response = await self._es.search(index=index or self._alias, **build_search(query))
        return search_result(query, response.body)

    async def suggest(self, prefix: str, size: int = 10,
                      index: str | None = None) -> list[dict[str, str]]:
        response = await self._es.search(index=index or self._alias,
                                         **build_suggest(prefix, size))
        return suggest_result(response.body, size)

    async def customer_orders(self, customer_id: str, index: str | None = None,
                              limit: int = 50) -> list[dict[str, Any]]:
        response = await self._es.search(
            index=index or self._alias, query={"term": {"customer_id": customer_id}},
            sort=[{"placed_at": "desc"}, {"order_id": "desc"}], size=limit,
            source_includes=["order_id", "status", "item_count", "total", "placed_at"])
        return [h["_source"] for h in response.body["hits"]["hits"]]

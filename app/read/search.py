"""The search box on Elasticsearch: full text, filters, status facets, cursors, suggestions.

Built on server-core features only (the text queries are in `app.read.search_text`): `terms`
aggregations, highlighting, `search_after` cursors, multi-search and the `completion`
suggester. One answer is one multi-search of two requests: the page of hits, which neither
counts nor aggregates, and the counts (total and status facets), which has no hits; both
are served from the engine's request cache while the index has not changed.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, get_args

from elastic_transport import ApiResponseMeta
from elasticsearch import ApiError, AsyncElasticsearch
from elasticsearch.exceptions import HTTP_EXCEPTIONS

from app.domain.money import cents
from app.domain.order import STATUSES
from app.kernel.unavailable import unavailable_on_failure
from app.read.search_text import HIGHLIGHT_KEYS, TextQuery, highlight, parse_text, text_query

SORTS: dict[str, list[dict[str, str]]] = {
    "relevance": [{"_score": "desc"}, {"order_id": "asc"}],
    "placed_at": [{"placed_at": "asc"}, {"order_id": "asc"}],
    "-placed_at": [{"placed_at": "desc"}, {"order_id": "desc"}],
    "total": [{"total_cents": "asc"}, {"order_id": "asc"}],
    "-total": [{"total_cents": "desc"}, {"order_id": "desc"}],
}
# The sort names, for request validation and the OpenAPI schema; checked against SORTS.
Sort = Literal["relevance", "placed_at", "-placed_at", "total", "-total"]
if get_args(Sort) != tuple(SORTS):
    raise ImportError("Sort and SORTS disagree")
# The request bounds of `GET /search/orders`, for the route and its fast path alike.
MAX_TEXT = 500
MAX_CUSTOMER_ID = 64
MAX_CURSOR = 2000
MAX_SIZE = 100
DEFAULT_SIZE = 20
# `GET /search/suggest`: the prefix's bound, and how many suggestions an answer has.
MAX_PREFIX = 100
SUGGESTIONS = 10
HIT_FIELDS = ["order_id", "customer_id", "customer_name", "status", "item_count", "total",
              "placed_at"]


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
    size: int = DEFAULT_SIZE
    cursor: str | None = None

    @classmethod
    def typed(cls, q: str | None, **filters: Any) -> SearchQuery:
        """The query for search-box text as typed: a trailing space says the last word is
        complete, so the text is kept whole; blank text searches everything."""
        return cls(q=q if q and q.strip() else None, **filters)


def encode_cursor(sort: str, values: list[Any]) -> str:
    raw = json.dumps({"s": sort, "a": values}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _sort_value(value: Any) -> bool:
    """What a hit's sort values are: text (ids), whole numbers (dates, cents) or a finite
    score; anything else in a cursor was not made here."""
    return type(value) in (str, int) or (type(value) is float and math.isfinite(value))


def decode_cursor(cursor: str, sort: str) -> list[Any]:
    """The `search_after` values inside an opaque cursor, checked against the sort."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)  # NaN and Infinity parse, and `_sort_value` refuses them
        values = data["a"]
        if data["s"] != sort or not isinstance(values, list) or len(values) != 2:
            raise BadCursor("the cursor belongs to another sort order")
        if not all(map(_sort_value, values)):
            raise ValueError("not a sort value")
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError,
            RecursionError):
        raise BadCursor("the cursor is not valid") from None
    return values


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
        total["gte"] = cents(query.min_total)
    if query.max_total is not None:
        total["lte"] = cents(query.max_total)
    if total:
        filters.append({"range": {"total_cents": total}})
    return filters


def _query(query: SearchQuery) -> dict[str, Any]:
    parsed = parse_text(query.q) if query.q else TextQuery()
    must = [text_query(parsed)] if query.q else [{"match_all": {}}]
    return {"bool": {"must": must, "filter": _filters(query)}}


def build_search(query: SearchQuery) -> dict[str, Any]:
    """The Elasticsearch request body for one page of hits of a search box query.

    It neither counts nor aggregates (`build_counts` does): the engine then only ranks the
    best `size` matches. The status filter is a post filter, as in `build_counts`.
    """
    body: dict[str, Any] = {
        "query": _query(query),
        "size": query.size,
        "sort": SORTS[query.sort],
        "track_total_hits": False,
        "_source": HIT_FIELDS,
    }
    if query.status:
        body["post_filter"] = {"terms": {"status": query.status}}
    marks = highlight(parse_text(query.q) if query.q else TextQuery())
    if marks is not None:
        body["highlight"] = marks
    if query.cursor:
        body["search_after"] = decode_cursor(query.cursor, query.sort)
    return body


def build_counts(query: SearchQuery) -> dict[str, Any]:
    """The request body for `total` and `facets.status`: no hits, no scores, no status filter.

    `facets.status` counts every status that the other filters and the text allow (clicking
    a facet shows how many you would get); `total` is the sum of the chosen statuses'.
    Without hits the request is served from the shard request cache until the next refresh
    that changes the index, so a popular query is counted once per refresh.
    """
    return {"query": _query(query), "size": 0, "track_total_hits": True,
            "aggs": {"status": {"terms": {"field": "status", "size": 10}}}}


def build_msearch(query: SearchQuery, index: str) -> list[dict[str, Any]]:
    """One round trip for a search box answer: the counts request, then the hits request.

    Both ask for the request cache: the page's ranking (its query phase) is then reused too
    until the index changes; its fetch phase, highlights included, runs every time.
    """
    return [{"index": index, "request_cache": True}, build_counts(query),
            {"index": index, "request_cache": True}, build_search(query)]


def _hit(hit: dict[str, Any]) -> dict[str, Any]:
    source = hit["_source"]
    marks = hit.get("highlight", {})
    return {**{f: source.get(f) for f in HIT_FIELDS},
            "highlight": {HIGHLIGHT_KEYS[f]: v for f, v in marks.items() if f in HIGHLIGHT_KEYS}}


def search_result(query: SearchQuery, counts: dict[str, Any],
                  page: dict[str, Any]) -> dict[str, Any]:
    """The API's answer from the responses to `build_counts` and `build_search`."""
    hits = page["hits"]["hits"]
    buckets = counts["aggregations"]["status"]["buckets"]
    facets = {status: 0 for status in STATUSES}
    facets.update({b["key"]: b["doc_count"] for b in buckets})
    # every order has exactly one status, so the chosen statuses' counts add up to the total
    total = (sum(facets.get(s, 0) for s in set(query.status)) if query.status
             else counts["hits"]["total"]["value"])
    next_cursor = None
    if len(hits) == query.size:
        next_cursor = encode_cursor(query.sort, hits[-1]["sort"])
    return {"total": total, "hits": [_hit(h) for h in hits],
            "facets": {"status": facets}, "next_cursor": next_cursor}


def _raise_for_item(item: dict[str, Any], meta: ApiResponseMeta) -> dict[str, Any]:
    """A multi-search item's own error, raised as the error a single search would raise."""
    if "error" not in item:
        return item
    status = int(item.get("status", 500))
    error = HTTP_EXCEPTIONS.get(status, ApiError)
    raise error(message=str(item["error"].get("type", "search_failed")),
                meta=replace(meta, status=status), body=item)


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
        with unavailable_on_failure("elasticsearch"):
            response = await self._es.msearch(
                searches=build_msearch(query, index or self._alias))
        counts, page = (_raise_for_item(item, response.meta)
                        for item in response.body["responses"])
        return search_result(query, counts, page)

    async def suggest(self, prefix: str, size: int = SUGGESTIONS,
                      index: str | None = None) -> list[dict[str, str]]:
        """Completions of `prefix` as typed, surrounding blanks aside (all blank: as is)."""
        with unavailable_on_failure("elasticsearch"):
            response = await self._es.search(index=index or self._alias,
                                             **build_suggest(prefix.strip() or prefix, size))
        return suggest_result(response.body, size)

    async def customer_orders(self, customer_id: str, index: str | None = None,
                              limit: int = 50) -> list[dict[str, Any]]:
        with unavailable_on_failure("elasticsearch"):
            response = await self._es.search(
                index=index or self._alias, query={"term": {"customer_id": customer_id}},
                sort=[{"placed_at": "desc"}, {"order_id": "desc"}], size=limit,
                track_total_hits=False,  # the newest `limit` only: nothing to count
                source_includes=["order_id", "status", "item_count", "total", "placed_at"])
        return [h["_source"] for h in response.body["hits"]["hits"]]

"""The search box on Elasticsearch: full text, filters, status facets, cursors, suggestions.

Built on server-core features only: `multi_match` per word (every word must match some
field), of type `bool_prefix` over `index_prefixes` fields for the word being typed, `phrase`
for quoted text and exclusions, `terms`
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
from typing import Any, Literal, get_args

from elasticsearch import AsyncElasticsearch

from app.domain.money import cents
from app.domain.order import STATUSES

TEXT_FIELDS = ["customer_name^3", "item_names^2", "skus.text^2", "tracking_number.text",
               "cancel_reason", "order_id", "customer_id"]
PREFIX_FIELDS = ["customer_name", "item_names", "skus.text", "tracking_number.text"]
# Index field -> the public name of the same text (the order's fields in `GET /orders/{id}`).
HIGHLIGHT_KEYS = {"customer_name": "customer_name", "item_names": "items.name",
                  "skus.text": "items.sku", "tracking_number.text": "tracking_number",
                  "cancel_reason": "cancel_reason"}
HIGHLIGHT_FIELDS = list(HIGHLIGHT_KEYS)
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


# `-word`, `-"a phrase"`, `"a phrase"` (closed or still open at the end), or a plain word.
_TOKEN = re.compile(r'(-?)"([^"]*)("?)|(\S+)')
_WORDY = re.compile(r"\w")
# A prefix match scores this, whatever the field: a whole-word match always adds more.
PREFIX_SCORE = 0.5


@dataclass(frozen=True)
class TextQuery:
    """What the search box understood: the words and phrases to find, those to exclude, and
    the word (or phrase) still being typed, which matches as a prefix."""

    words: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    typing: str | None = None
    typing_phrase: str | None = None


def parse_text(q: str) -> TextQuery:
    """Split search-box text into words, phrases and exclusions.

    The last word is still being typed unless the text ends with a space; words without a
    letter or digit (a lone `-`, `***`) are ignored, like the punctuation inside words.
    """
    words: list[str] = []
    phrases: list[str] = []
    excluded: list[str] = []
    typing = typing_phrase = None
    matches = list(_TOKEN.finditer(q))
    for n, match in enumerate(matches):
        at_end = n == len(matches) - 1 and match.end() == len(q)
        negated, phrase, closed, word = match.groups()
        if word is not None:
            negated, text = ("-", word[1:]) if word.startswith("-") else ("", word)
        else:
            text = phrase
        if not _WORDY.search(text):
            continue
        if negated:
            excluded.append(text)
        elif word is None and not closed and at_end:
            typing_phrase = text
        elif word is None:
            phrases.append(text)
        elif at_end:
            typing = text
        else:
            words.append(text)
    return TextQuery(tuple(words), tuple(phrases), tuple(excluded), typing, typing_phrase)


def _whole(text: str, kind: str = "best_fields") -> dict[str, Any]:
    # lenient: a phrase on a keyword field (ids) is an exact match, never an error
    return {"multi_match": {"query": text, "fields": TEXT_FIELDS, "type": kind,
                            "operator": "and", "lenient": True}}


def _typing(word: str) -> dict[str, Any]:
    """The word being typed: a whole word anywhere, or a prefix of a prefix-indexed field."""
    prefix = {"multi_match": {"query": word, "type": "bool_prefix", "fields": PREFIX_FIELDS,
                              "operator": "and"}}
    return {"bool": {"should": [
        _whole(word),
        {"constant_score": {"filter": prefix, "boost": PREFIX_SCORE}},
    ], "minimum_should_match": 1}}


def _text(parsed: TextQuery) -> dict[str, Any]:
    must = [_whole(w) for w in parsed.words] + [_whole(p, "phrase") for p in parsed.phrases]
    if parsed.typing:
        must.append(_typing(parsed.typing))
    if parsed.typing_phrase:
        must.append({"multi_match": {"query": parsed.typing_phrase, "type": "phrase_prefix",
                                     "fields": PREFIX_FIELDS}})
    return {"bool": {"must": must or [{"match_all": {}}],
                     "must_not": [_whole(x, "phrase") for x in parsed.excluded]}}


def _highlight(parsed: TextQuery) -> dict[str, Any] | None:
    # Prefix matches run on the hidden `_index_prefix` fields, which highlighters cannot see;
    # a wildcard on the visible fields marks the same words. Exclusions are never marked.
    should: list[dict[str, Any]] = [
        {"multi_match": {"query": text, "fields": HIGHLIGHT_FIELDS, "type": "phrase",
                         "lenient": True}}
        for text in (*parsed.words, *parsed.phrases, parsed.typing, parsed.typing_phrase)
        if text]
    typed = re.findall(r"\w+", (parsed.typing or parsed.typing_phrase or "").lower())
    if typed:
        should += [{"wildcard": {f: {"value": f"{typed[-1]}*"}}} for f in PREFIX_FIELDS]
    if not should:
        return None
    # unified, whole field (names are short): the cheapest of the highlighters measured here
    return {"type": "unified", "fields": {f: {"number_of_fragments": 0} for f in HIGHLIGHT_FIELDS},
            "highlight_query": {"bool": {"should": should}}, "pre_tags": ["<mark>"],
            "post_tags": ["</mark>"], "require_field_match": False}


def build_search(query: SearchQuery) -> dict[str, Any]:
    """The Elasticsearch request body for a search box query.

    The status filter is a post filter, so `facets.status` counts every status that the
    other filters and the text allow (clicking a facet shows how many you would get).
    """
    parsed = parse_text(query.q) if query.q else TextQuery()
    must = [_text(parsed)] if query.q else [{"match_all": {}}]
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
    highlight = _highlight(parsed)
    if highlight is not None:
        body["highlight"] = highlight
    if query.cursor:
        body["search_after"] = decode_cursor(query.cursor, query.sort)
    return body


def _hit(hit: dict[str, Any]) -> dict[str, Any]:
    source = hit["_source"]
    marks = hit.get("highlight", {})
    return {**{f: source.get(f) for f in HIT_FIELDS},
            "highlight": {HIGHLIGHT_KEYS[f]: v for f, v in marks.items() if f in HIGHLIGHT_KEYS}}


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

"""What the search box understood, as Elasticsearch queries: words, phrases, exclusions and
the word still being typed (a prefix of a prefix-indexed field), and their highlighting."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

TEXT_FIELDS = ["customer_name^3", "item_names^2", "skus.text^2", "tracking_number.text",
               "cancel_reason", "order_id", "customer_id"]
PREFIX_FIELDS = ["customer_name", "item_names", "skus.text", "tracking_number.text"]
# Index field -> the public name of the same text (the order's fields in `GET /orders/{id}`).
HIGHLIGHT_KEYS = {"customer_name": "customer_name", "item_names": "items.name",
                  "skus.text": "items.sku", "tracking_number.text": "tracking_number",
                  "cancel_reason": "cancel_reason"}
HIGHLIGHT_FIELDS = list(HIGHLIGHT_KEYS)
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


def text_query(parsed: TextQuery) -> dict[str, Any]:
    must = [_whole(w) for w in parsed.words] + [_whole(p, "phrase") for p in parsed.phrases]
    if parsed.typing:
        must.append(_typing(parsed.typing))
    if parsed.typing_phrase:
        must.append({"multi_match": {"query": parsed.typing_phrase, "type": "phrase_prefix",
                                     "fields": PREFIX_FIELDS}})
    return {"bool": {"must": must or [{"match_all": {}}],
                     "must_not": [_whole(x, "phrase") for x in parsed.excluded]}}


def highlight(parsed: TextQuery) -> dict[str, Any] | None:
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

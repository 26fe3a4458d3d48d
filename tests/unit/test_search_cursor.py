"""Search cursors: what `next_cursor` carries comes back intact; anything this API did not
make is a bad cursor (a 422), never a request Elasticsearch refuses."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from app.read.search import SORTS, BadCursor, decode_cursor, encode_cursor


def _raw(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("values", [[1.25, "order-1"], [0.0, "a"], [1772355600000, "b"],
                                    [-5, "c"], ["x", "y"]])
def test_sort_values_come_back_intact(values: list[Any]) -> None:
    for sort in SORTS:
        assert decode_cursor(encode_cursor(sort, values), sort) == values


def test_a_cursor_of_another_sort_is_refused() -> None:
    with pytest.raises(BadCursor):
        decode_cursor(encode_cursor("total", [100, "a"]), "-total")


@pytest.mark.parametrize("text", [
    '{"s": "relevance", "a": [NaN, "a"]}', '{"s": "relevance", "a": [Infinity, "a"]}',
    '{"s": "relevance", "a": [-Infinity, "a"]}', '{"s": "relevance", "a": [1e999, "a"]}',
    '{"s": "relevance", "a": [null, "a"]}', '{"s": "relevance", "a": [true, "a"]}',
    '{"s": "relevance", "a": [{"x": 1}, "a"]}', '{"s": "relevance", "a": [[1], "a"]}',
    '{"s": "relevance", "a": [1]}', '{"s": "relevance", "a": NaN}', '{"s": "relevance"}',
    "[]", "NaN", "not json",
])
def test_what_this_api_did_not_make_is_a_bad_cursor(text: str) -> None:
    with pytest.raises(BadCursor):
        decode_cursor(_raw(text), "relevance")

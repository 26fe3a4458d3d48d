"""The plain search and suggestions skip the framework (app/read/fast.py); they must answer
exactly what the FastAPI routes answer, and leave every other request shape to the routes."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from app.kernel.settings import Settings
from app.main import create_app
from app.read.fast import ReadFastPath, search_query, suggest_prefix
from app.read.search import SearchQuery, encode_cursor
from tests.read.conftest import PAGED, Seeded, same_answer

# `wait_ms=0` changes nothing in the answer but sends the request through the route
ROUTE_ONLY = {"wait_ms": "0"}
KEYS = "board:read:readkey123,shop:write:writekey123"
PLAIN: list[dict[str, Any]] = [
    {}, {"q": "espresso"}, {"q": "espr"}, {"q": "bob jones "}, {"q": "   "}, {"q": ""},
    {"q": "😀 émoji"}, {"q": '"milk frother" -kettle'}, {"q": "x" * 500},
    {"q": "widget", "size": "3", "sort": "-total"}, {"size": "100"}, {"size": "007"},
    {"status": ["shipped", "cancelled"], "sort": "total"},
    {"customer_id": "cust-a", "status": "placed"}, {"customer_id": ""}, {"cursor": ""},
]
TO_THE_ROUTE: list[dict[str, Any]] = [
    {"wait_ms": "0"}, {"placed_from": "2026-03-01T00:00:00Z"}, {"min_total": "1"},
    {"max_total": "1"}, {"placed_to": "x"}, {"unknown": "1"}, {"q": ["a", "b"]},
    {"sort": ["total", "total"]}, {"size": "0"}, {"size": "101"}, {"size": "x"}, {"size": ""},
    {"size": "+5"}, {"size": "٣"}, {"sort": "random"}, {"sort": ""}, {"status": "lost"},
    {"status": ""}, {"q": "x" * 501}, {"customer_id": "c" * 65}, {"cursor": "%%%garbage"},
    {"cursor": encode_cursor("total", [1, "a"]), "sort": "-total"},
]

SUGGEST_PLAIN = ["Milk", "ali", " ali ", "   ", "SKU-3", "é", "x" * 100]
SUGGEST_TO_THE_ROUTE: list[dict[str, Any]] = [
    {}, {"prefix": ""}, {"prefix": "x" * 101}, {"prefix": ["a", "b"]},
    {"prefix": "a", "wait_ms": "0"}, {"prefix": "a", "other": "1"},
]


def _query(params: dict[str, Any]) -> bytes:
    return urlencode(params, doseq=True).encode()


def test_the_plain_shapes_are_parsed_as_the_route_reads_them() -> None:
    assert search_query(b"") == SearchQuery()
    assert search_query(_query({"q": "bob jones ", "status": ["shipped", "placed"],
                                "sort": "-total", "size": "007", "customer_id": "c-1"})) == \
        SearchQuery(q="bob jones ", status=["shipped", "placed"], sort="-total", size=7,
                    customer_id="c-1")
    assert search_query(b"q=%20%20") == SearchQuery()  # blank text searches everything
    assert search_query(b"q=caf%C3%A9+cr%C3%A8me") == SearchQuery(q="café crème")
    for params in PLAIN:
        assert search_query(_query(params)) is not None, params


@pytest.mark.parametrize("params", TO_THE_ROUTE)
def test_every_other_shape_is_left_to_the_route(params: dict[str, Any]) -> None:
    assert search_query(_query(params)) is None


def test_a_suggestions_query_is_its_prefix_alone() -> None:
    for prefix in SUGGEST_PLAIN:
        assert suggest_prefix(_query({"prefix": prefix})) == prefix
    for params in SUGGEST_TO_THE_ROUTE:
        assert suggest_prefix(_query(params)) is None, params


async def test_plain_suggestions_answer_the_routes_bytes_and_headers(
        reader: httpx.AsyncClient, seeded: Seeded) -> None:
    for prefix in SUGGEST_PLAIN:
        fast = await reader.get("/search/suggest", params={"prefix": prefix})
        assert fast.status_code == 200, (prefix, fast.text)
        same_answer(fast, await reader.get("/search/suggest",
                                           params={"prefix": prefix, **ROUTE_ONLY}))
    milk = await reader.get("/search/suggest", params={"prefix": "Milk"})
    assert {"text": "Milk frother", "kind": "item"} in milk.json()["suggestions"]
    for params in SUGGEST_TO_THE_ROUTE:
        answer = await reader.get("/search/suggest", params=params)
        assert answer.status_code in (200, 422), (params, answer.text)


async def test_plain_searches_answer_the_routes_bytes_and_headers(
        reader: httpx.AsyncClient, seeded: Seeded) -> None:
    for params in PLAIN:
        fast = await reader.get("/search/orders", params=params)
        assert fast.status_code == 200, (params, fast.text)
        same_answer(fast, await reader.get("/search/orders", params={**params, **ROUTE_ONLY}))
        assert fast.headers["x-request-id"]  # still inside the correlation-id layer
    cursor, seen = None, []
    while True:  # paging through the fast path alone
        params = {"q": "widget", "size": "7", "sort": "total", "cursor": cursor or ""}
        fast = await reader.get("/search/orders", params=params)
        same_answer(fast, await reader.get("/search/orders", params={**params, **ROUTE_ONLY}))
        seen += [hit["order_id"] for hit in fast.json()["hits"]]
        cursor = fast.json()["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == PAGED == len(set(seen))


@pytest.mark.parametrize("params", TO_THE_ROUTE)
async def test_the_route_still_refuses_what_the_fast_path_leaves_to_it(
        reader: httpx.AsyncClient, seeded: Seeded, params: dict[str, Any]) -> None:
    answer = await reader.get("/search/orders", params=params)
    assert answer.status_code in (200, 422), (params, answer.text)
    if answer.status_code == 422:
        assert answer.json()["error"]["code"] == "validation_error"
        assert "x-projection-position" in answer.headers


async def test_plain_searches_and_suggestions_never_reach_the_routes_and_the_rest_always_do(
        read_settings: Settings, seeded: Seeded) -> None:
    app = create_app(read_settings, role="read")
    routed: list[bytes] = []

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        routed.append(scope["query_string"])
        await send({"type": "http.response.start", "status": 599, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def status_of(query: bytes, *headers: tuple[bytes, bytes],
                        path: str = "/search/orders") -> int:
        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)

        async def receive() -> Message:
            return {"type": "http.request", "body": b""}

        scope = {"type": "http", "method": "GET", "path": path, "app": app,
                 "query_string": query, "headers": list(headers)}
        await ReadFastPath(route)(scope, receive, send)
        return int(sent[0]["status"])

    async with app.router.lifespan_context(app):
        for params in PLAIN:
            assert await status_of(_query(params)) == 200, params
        assert routed == []
        for params in TO_THE_ROUTE:
            assert await status_of(_query(params)) == 599, params
        assert await status_of(b"q=mug", (b"x-min-position", b"1")) == 599
        assert await status_of(b"q=mug", (b"x-min-version", b"1")) == 599
        assert len(routed) == len(TO_THE_ROUTE) + 2
        for prefix in SUGGEST_PLAIN:
            assert await status_of(_query({"prefix": prefix}), path="/search/suggest") == 200
        assert len(routed) == len(TO_THE_ROUTE) + 2
        for params in SUGGEST_TO_THE_ROUTE:
            assert await status_of(_query(params), path="/search/suggest") == 599, params
        assert await status_of(b"prefix=a", (b"x-min-position", b"1"),
                               path="/search/suggest") == 599
        assert len(routed) == len(TO_THE_ROUTE) + 3 + len(SUGGEST_TO_THE_ROUTE)


async def test_api_keys_hold_on_the_plain_search(read_settings: Settings,
                                                 seeded: Seeded) -> None:
    app = create_app(read_settings.model_copy(update={"api_keys": KEYS}), role="read")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            missing = await http.get("/search/orders", params={"q": "mug"})
            assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
            assert missing.json()["error"]["code"]
            wrong_scope = await http.get("/search/orders", params={"q": "mug"},
                                         headers={"Authorization": "Bearer writekey123"})
            assert wrong_scope.status_code == 403
            allowed = await http.get("/search/orders", params={"q": "mug"},
                                     headers={"Authorization": "Bearer readkey123"})
            assert allowed.status_code == 200 and allowed.json()["total"] == 1
            same_answer(allowed, await http.get(
                "/search/orders", params={"q": "mug", **ROUTE_ONLY},
                headers={"Authorization": "Bearer readkey123"}))

"""Hostile input: always a clear 4xx in the error envelope, never a 5xx, and nothing stored."""

from __future__ import annotations

import base64
import json
from typing import Any

import asyncpg
import httpx
import pytest

from app.middleware import MAX_JSON_DEPTH, json_nesting_exceeds

VALID_ITEM: dict[str, Any] = {"sku": "SKU-1", "name": "Beans", "quantity": 2,
                              "unit_price": "9.95"}
VALID_ORDER: dict[str, Any] = {"customer_id": "cust-1", "customer_name": "Ada",
                               "items": [VALID_ITEM]}
MISSING = "00000000-0000-4000-8000-000000000000"


def order_with(**changes: Any) -> dict[str, Any]:
    return {**VALID_ORDER, **changes}


def item_with(**changes: Any) -> dict[str, Any]:
    return order_with(items=[{**VALID_ITEM, **changes}])


def raw_order(unit_price: str = '"9.95"', quantity: str = "2") -> bytes:
    """An order body with raw JSON tokens (e.g. `NaN`) that `json.dumps` would not write."""
    return (b'{"customer_id": "c", "items": [{"sku": "S", "name": "n", "quantity": '
            + quantity.encode() + b', "unit_price": ' + unit_price.encode() + b"}]}")


def problem(response: httpx.Response, status: int | None = None,
            code: str | None = None) -> str | None:
    """What is wrong with an answer that should be a clear 4xx in the envelope, if anything."""
    try:
        assert_clear_4xx(response, status, code)
    except AssertionError as exc:
        return f"{response.status_code}: {exc}"[:300]
    return None


def assert_all_clear(problems: dict[str, str | None]) -> None:
    """Table-driven cases: report every failing case at once, by name."""
    failing = {case: found for case, found in problems.items() if found is not None}
    assert not failing, json.dumps(failing, indent=1, ensure_ascii=True)


def assert_clear_4xx(response: httpx.Response, status: int | None = None,
                     code: str | None = None) -> dict[str, Any]:
    """A 4xx (the given one, if any) whose JSON body is the error envelope."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    if status is not None:
        assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    result: dict[str, Any] = error
    return result


async def assert_nothing_stored(pool: asyncpg.Pool[Any]) -> None:
    assert await pool.fetchval("SELECT count(*) FROM events") == 0
    assert await pool.fetchval("SELECT count(*) FROM orders") == 0
    assert await pool.fetchval("SELECT count(*) FROM idempotency_keys") == 0


@pytest.fixture
async def api(client: httpx.AsyncClient, clean_db: asyncpg.Pool[Any]) -> httpx.AsyncClient:
    return client


# --- POST /orders with a JSON body that parses but breaks a rule: 422 validation_error ----

INVALID_ORDERS: dict[str, Any] = {
    "quantity as a word": item_with(quantity="two"),
    "quantity as a float": item_with(quantity=1.5),
    "quantity zero": item_with(quantity=0),
    "quantity negative": item_with(quantity=-3),
    "quantity huge": item_with(quantity=10**30),
    "quantity over 10000": item_with(quantity=10_001),
    "quantity as a numeric string": item_with(quantity="2"),
    "quantity as true": item_with(quantity=True),
    "items as an object": order_with(items={"sku": "S"}),
    "items as a string": order_with(items="S"),
    "items null": order_with(items=None),
    "item as a list": order_with(items=[["S", "n", 1, "1"]]),
    "customer_id missing": {"items": VALID_ORDER["items"]},
    "customer_id as a number": order_with(customer_id=42),
    "customer_id blank": order_with(customer_id="   "),
    "unknown field": order_with(surprise=True),
    "unknown item field": item_with(discount="100%"),
    "customer_id over 64": order_with(customer_id="c" * 65),
    "customer_name over 200": order_with(customer_name="n" * 201),
    "sku over 64": item_with(sku="s" * 65),
    "item name over 200": item_with(name="n" * 201),
    "price with 3 decimals": item_with(unit_price="1.999"),
    "price float with 3 decimals": item_with(unit_price=1.999),
    "price negative": item_with(unit_price="-0.01"),
    "price negative number": item_with(unit_price=-5),
    "price too many digits": item_with(unit_price="12345678901.00"),
    "price over 999999.99": item_with(unit_price="1000000.00"),
    "price number over 999999.99": item_with(unit_price=1_000_000),
    "price with a trailing third decimal": item_with(unit_price="9.950"),
    "price in exponent form": item_with(unit_price="1E2"),
    "price with underscores": item_with(unit_price="1_000"),
    "price with a plus sign": item_with(unit_price="+1"),
    "price in full-width digits": item_with(unit_price="\uff11\uff12"),
    "price as true": item_with(unit_price=True),
    "price huge exponent": item_with(unit_price="1E+999999999"),
    "price tiny exponent": item_with(unit_price="1E-999999999"),
    "price NaN string": item_with(unit_price="NaN"),
    "price nan string": item_with(unit_price="nan"),
    "price sNaN string": item_with(unit_price="sNaN"),
    "price Infinity string": item_with(unit_price="Infinity"),
    "price -Infinity string": item_with(unit_price="-Infinity"),
    "price as an object": item_with(unit_price={"amount": 1}),
    "price as a word": item_with(unit_price="cheap"),
    "NUL in customer_id": order_with(customer_id="a\x00b"),
    "NUL in item name": item_with(name="bean\x00s"),
    "NUL in customer_name": order_with(customer_name="\x00"),
    # Elasticsearch completion fields refuse \x1e and \x1f: such an order would stop the
    # search projection (a dead letter), so the API refuses control characters.
    "unit separator in customer_name": order_with(customer_name="Ada\x1fLovelace"),
    "record separator in sku": item_with(sku="SKU\x1e1"),
    "escape in item name": item_with(name="\x1b[31mred"),
    "C1 control in customer_id": order_with(customer_id="c\x85"),
    "blank sku": item_with(sku=" \t "),
}


async def test_invalid_orders_are_422(api: httpx.AsyncClient,
                                      clean_db: asyncpg.Pool[Any]) -> None:
    assert_all_clear({case: problem(await api.post("/orders", json=body), 422,
                                    "validation_error")
                      for case, body in INVALID_ORDERS.items()})
    await assert_nothing_stored(clean_db)


async def test_largest_order_fits(api: httpx.AsyncClient, clean_db: asyncpg.Pool[Any]) -> None:
    """The field limits keep every valid total inside the orders.total column."""
    lines = [{**VALID_ITEM, "sku": f"S{i}", "quantity": 10_000, "unit_price": "999999.99"}
             for i in range(100)]
    response = await api.post("/orders", json=order_with(items=lines))
    assert response.status_code == 201, response.text
    assert response.json()["total"] == "999999990000.00"


async def test_line_breaks_in_text_are_accepted(api: httpx.AsyncClient) -> None:
    placed = await api.post("/orders", json=order_with(customer_name="Ada\tLovelace"))
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]
    cancelled = await api.post(f"/orders/{order_id}/cancel",
                               json={"reason": "line one\r\nline two"})
    assert cancelled.status_code == 200, cancelled.text


async def test_whole_float_quantity_is_accepted(api: httpx.AsyncClient) -> None:
    """JSON Schema counts 2.0 as an integer, and so does the API."""
    response = await api.post("/orders", json=item_with(quantity=2.0, unit_price=9.95))
    assert response.status_code == 201, response.text
    assert response.json()["total"] == "19.90"


async def test_101_lines_is_too_many_items(api: httpx.AsyncClient,
                                           clean_db: asyncpg.Pool[Any]) -> None:
    lines = [{**VALID_ITEM, "sku": f"S{i}"} for i in range(101)]
    error = assert_clear_4xx(await api.post("/orders", json=order_with(items=lines)), 422,
                             "TooManyItems")
    assert error["details"] == {"lines": 101, "max": 100}
    await assert_nothing_stored(clean_db)


async def test_over_1000_lines_is_a_validation_error(api: httpx.AsyncClient,
                                                     clean_db: asyncpg.Pool[Any]) -> None:
    lines = [VALID_ITEM] * 1001
    assert_clear_4xx(await api.post("/orders", json=order_with(items=lines)), 422,
                     "validation_error")
    await assert_nothing_stored(clean_db)


# --- POST /orders with bodies that are not (acceptable) JSON -------------------------------

RAW_BODIES: dict[str, bytes] = {
    "malformed": b"{not json",
    "truncated": b'{"customer_id": "c", "items": [',
    "empty": b"",
    "trailing garbage": json.dumps(VALID_ORDER).encode() + b" x",
    "NaN token as price": raw_order(unit_price="NaN"),
    "Infinity token as price": raw_order(unit_price="Infinity"),
    "-Infinity token as price": raw_order(unit_price="-Infinity"),
    "overflowing float as price": raw_order(unit_price="1e999"),
    "NaN token as quantity": raw_order(quantity="NaN"),
    "Infinity token as quantity": raw_order(quantity="Infinity"),
    "array": b"[]",
    "array of orders": json.dumps([VALID_ORDER]).encode(),
    "string": b'"order"',
    "number": b"42",
    "null": b"null",
    "true": b"true",
    "invalid UTF-8": b'{"customer_id": "\xff\xfe\xfd", "items": []}',
    "invalid UTF-8 start": b"\xff" * 16,
    "UTF-8 encoded surrogate": b'{"customer_id": "\xed\xa0\x80", "items": []}',
    "escaped lone surrogate": raw_order().replace(b'"S"', b'"\\ud800"'),
    "escaped NUL": raw_order().replace(b'"S"', b'"\\u0000"'),
    "surrogate as unknown key": b'{"\\udc00": 1, "customer_id": "c", "items": []}',
    "huge unknown key": b'{"' + b"k" * 500_000 + b'": 1}',
    "duplicate keys of bad types": b'{"items": 1, "items": {"a": [1]}, "customer_id": []}',
    "deep arrays": b"[" * 100_000,
    "deep arrays closed": b"[" * 100_000 + b"]" * 100_000,
    "deep objects": b'{"a":' * 100_000,
    "deep objects closed": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "deep arrays under a field": b'{"customer_id": "c", "items": ' + b"[" * 5_000
                                 + b"]" * 5_000 + b"}",
    "moderately deep arrays": b"[" * 900 + b"]" * 900,
}


async def test_unparseable_bodies_are_422(api: httpx.AsyncClient,
                                          clean_db: asyncpg.Pool[Any]) -> None:
    problems: dict[str, str | None] = {}
    for case, content in RAW_BODIES.items():
        response = await api.post("/orders", content=content,
                                  headers={"content-type": "application/json"})
        problems[case] = problem(response, 422, "validation_error")
    assert_all_clear(problems)
    await assert_nothing_stored(clean_db)
    assert (await api.get("/health")).status_code == 200


async def test_deep_nesting_is_refused_before_parsing(api: httpx.AsyncClient) -> None:
    for content in (b"[" * 100_000, b"[" * 33 + b"]" * 33):
        response = await api.post("/orders", content=content,
                                  headers={"content-type": "application/json"})
        error = assert_clear_4xx(response, 422, "validation_error")
        assert f"nested deeper than {MAX_JSON_DEPTH} levels" in error["message"]


def nested(depth: int, inner: Any = 1) -> Any:
    for n in range(depth):
        inner = [inner, "]]}\\\"[{"] if n % 2 else {"k[": inner, "s": "\\"}
    return inner


def test_nesting_guard_counts_only_structure() -> None:
    """Brackets, quotes and backslashes inside strings do not count; real nesting does."""
    assert not json_nesting_exceeds(json.dumps(nested(MAX_JSON_DEPTH)).encode())
    assert json_nesting_exceeds(json.dumps(nested(MAX_JSON_DEPTH + 1)).encode())
    assert not json_nesting_exceeds(json.dumps({"a": "[" * 5000, "b": "\\" * 99}).encode())
    assert not json_nesting_exceeds(json.dumps([[1, 2]] * 10_000).encode())
    assert json_nesting_exceeds(b'{"a": "' + b"[" * 100 + b'"' + b"[" * 40)


async def test_deep_strings_are_not_nesting(api: httpx.AsyncClient,
                                            clean_db: asyncpg.Pool[Any]) -> None:
    """Brackets inside strings do not count: such an order is accepted."""
    body = order_with(customer_name="[" * 150, items=[item_with(name="{" * 150)["items"][0]])
    response = await api.post("/orders", json=body)
    assert response.status_code == 201, response.text
    assert await clean_db.fetchval("SELECT count(*) FROM orders") == 1


async def test_other_content_types_are_4xx(api: httpx.AsyncClient,
                                           clean_db: asyncpg.Pool[Any]) -> None:
    problems: dict[str, str | None] = {}
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "application/xml",
                         "multipart/form-data; boundary=x", "application/json; charset=latin-1"]:
        response = await api.post("/orders", content=json.dumps(VALID_ORDER).encode()[:-1],
                                  headers={"content-type": content_type})
        problems[content_type] = problem(response)
    assert_all_clear(problems)
    await assert_nothing_stored(clean_db)


async def test_two_megabyte_body_is_413(api: httpx.AsyncClient,
                                        clean_db: asyncpg.Pool[Any]) -> None:
    content = json.dumps(order_with(customer_name="x" * (2 << 20))).encode()
    response = await api.post("/orders", content=content,
                              headers={"content-type": "application/json"})
    assert_clear_4xx(response, 413, "payload_too_large")
    await assert_nothing_stored(clean_db)


async def test_two_megabyte_streamed_body_is_413(api: httpx.AsyncClient,
                                                 clean_db: asyncpg.Pool[Any]) -> None:
    """Without a Content-Length (chunked), the limit holds while the body streams in."""

    async def chunks() -> Any:
        yield b'{"customer_id": "c", "customer_name": "'
        for _ in range(32):
            yield b"x" * (64 * 1024)
        yield b'", "items": []}'

    response = await api.post("/orders", content=chunks(),
                              headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    assert_clear_4xx(response, 413, "payload_too_large")
    await assert_nothing_stored(clean_db)


# --- Headers --------------------------------------------------------------------------------

async def test_bad_idempotency_keys_are_422(api: httpx.AsyncClient,
                                           clean_db: asyncpg.Pool[Any]) -> None:
    problems: dict[str, str | None] = {}
    for key in ["k" * 201, "tab\tinside", "\xe9" * 201, "caf\xe9", "nbsp\xa0inside"]:
        response = await api.post("/orders", json=VALID_ORDER,
                                  headers=[("Idempotency-Key", key.encode("latin-1"))])
        problems[repr(key[:20])] = problem(response, 422, "validation_error")
    assert_all_clear(problems)
    await assert_nothing_stored(clean_db)


IF_MATCH = ["abc", "", '"', "W/", "-1", '"-1"', "1" * 40, "9" * 10, "1.5", "\xb2", "0x10",
            "null"]


async def test_bad_if_match_is_422(api: httpx.AsyncClient,
                                   clean_db: asyncpg.Pool[Any]) -> None:
    problems: dict[str, str | None] = {}
    for if_match in IF_MATCH:
        for action, body in [("cancel", {"reason": "r"}), ("ship", {"tracking_number": "T"})]:
            response = await api.post(f"/orders/{MISSING}/{action}", json=body,
                                      headers=[(b"If-Match", if_match.encode("latin-1"))])
            problems[f"{action} {if_match!r}"] = problem(response, 422, "validation_error")
    assert_all_clear(problems)
    await assert_nothing_stored(clean_db)


# --- Cancel and ship bodies ----------------------------------------------------------------

CHANGE_BODIES: list[tuple[str, Any]] = [
    ("cancel", {"reason": "r" * 501}),
    ("cancel", {"reason": ""}),
    ("cancel", {"reason": 7}),
    ("cancel", {"reason": "r", "extra": 1}),
    ("cancel", {"reason": "a\x00b"}),
    ("cancel", {}),
    ("cancel", ["reason"]),
    ("ship", {"tracking_number": "t" * 101}),
    ("ship", {"tracking_number": None}),
    ("ship", {"tracking_number": "T", "carrier": "x"}),
    ("ship", {"tracking_number": "T\x00"}),
    ("ship", {"tracking_number": "T\x1f1"}),
    ("cancel", {"reason": "bell\x07"}),
    ("ship", "T"),
]


async def test_invalid_change_bodies_are_422(api: httpx.AsyncClient,
                                             clean_db: asyncpg.Pool[Any]) -> None:
    """On a real order (so validation, not 404, answers): nothing is appended or changed."""
    placed = await api.post("/orders", json=VALID_ORDER)
    assert placed.status_code == 201
    order_id = placed.json()["order_id"]
    problems: dict[str, str | None] = {}
    for action, body in CHANGE_BODIES:
        response = await api.post(f"/orders/{order_id}/{action}", json=body)
        problems[f"{action} {body!r}"[:80]] = problem(response, 422, "validation_error")
    for action in ("cancel", "ship"):
        for content in [b"[" * 100_000, b"\xff\xfe", b"NaN", b"{", b"", b"[]"]:
            response = await api.post(f"/orders/{order_id}/{action}", content=content,
                                      headers={"content-type": "application/json"})
            problems[f"{action} {content[:10]!r}"] = problem(response, 422, "validation_error")
    assert_all_clear(problems)
    assert await clean_db.fetchval("SELECT count(*) FROM events") == 1
    order = await api.get(f"/orders/{order_id}")
    assert order.json()["status"] == "placed" and order.json()["version"] == 1


async def test_bad_order_ids_are_4xx(api: httpx.AsyncClient) -> None:
    problems: dict[str, str | None] = {}
    for path in ["/orders/not-a-uuid", "/orders/1", f"/orders/{MISSING}x", "/orders/%00",
                 "/orders/%ff", "/orders/" + "9" * 5000]:
        problems[f"GET {path[:50]}"] = problem(await api.get(path))
        response = await api.post(f"{path}/cancel", json={"reason": "r"})
        problems[f"cancel {path[:50]}"] = problem(response)
    assert_all_clear(problems)


# --- Read side: consistency headers and query parameters -----------------------------------

MIN_POSITIONS = ["-1", "abc", "1" * 30, "1.5", "", " ", "\xb2", "\xb9\xb2", "0x1", "+1"]
READ_PATHS = ["/dashboard", "/search/orders", "/search/suggest?prefix=a",
              "/customers/cust-1/orders"]


async def test_bad_min_positions_are_422(api: httpx.AsyncClient) -> None:
    problems: dict[str, str | None] = {}
    for value in MIN_POSITIONS:
        for path in READ_PATHS:
            for header in ("X-Min-Position", "X-Min-Version"):
                response = await api.get(path, headers=[(header.encode(),
                                                         value.encode("latin-1"))])
                problems[f"{path} {header}: {value!r}"] = problem(response, 422,
                                                                  "validation_error")
    assert_all_clear(problems)


def cursor_of(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


BAD_QUERIES = [
    "/search/orders?min_total=NaN", "/search/orders?max_total=Infinity",
    "/search/orders?min_total=-1", "/search/orders?min_total=1.001",
    "/search/orders?min_total=1e999", "/search/orders?size=0", "/search/orders?size=101",
    "/search/orders?size=abc", "/search/orders?sort=price", "/search/orders?status=lost",
    "/search/orders?placed_from=yesterday", "/search/orders?placed_from=0.5",
    "/search/orders?placed_to=2026-03-01", "/search/orders?placed_to=2026-03-01T09:00:00",
    "/search/orders?placed_from=2026-13-01T09:00:00Z", "/search/orders?wait_ms=-1",
    "/search/orders?wait_ms=99999999999999999999", "/search/orders?q=" + "q" * 501,
    "/search/orders?cursor=%%%", "/search/orders?cursor=" + "A" * 2001,
    "/search/orders?cursor=" + cursor_of(b"[" * 1400),
    "/search/orders?cursor=" + cursor_of(b'{"s": "relevance", "a": NaN}'),
    "/search/orders?cursor=" + cursor_of(b'{"s": "relevance", "a": [NaN, 1]}'),
    "/search/orders?cursor=" + cursor_of(b'{"s": "relevance", "a": [{"x": 1}, 1]}'),
    "/search/suggest", "/search/suggest?prefix=", "/search/suggest?prefix=" + "p" * 101,
    "/dashboard?days=-1", "/dashboard?days=367", "/dashboard?days=1e3",
    "/customers/" + "c" * 65 + "/orders",
]


async def test_bad_read_queries_are_422(api: httpx.AsyncClient) -> None:
    assert_all_clear({path[:120]: problem(await api.get(path), 422, "validation_error")
                      for path in BAD_QUERIES})


# --- The published contract -----------------------------------------------------------------

async def test_openapi_documents_every_error_as_the_envelope(api: httpx.AsyncClient) -> None:
    schema = (await api.get("/openapi.json")).json()
    assert "HTTPValidationError" not in json.dumps(schema)
    envelope = schema["components"]["schemas"]["ErrorEnvelope"]
    assert envelope["required"] == ["error"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            for status, answer in operation["responses"].items():
                if status.startswith(("4", "5")) and path != "/health":
                    ref = answer["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorEnvelope"), where
            for parameter in operation.get("parameters", []):
                assert {"type": "null"} not in parameter["schema"].get("anyOf", []), where
    orders = schema["paths"]["/orders"]["post"]["responses"]
    assert {"201", "401", "403", "412", "413", "422", "503"} <= set(orders)
    assert {"404", "409", "412"} <= set(schema["paths"]["/orders/{order_id}/cancel"]["post"]
                                        ["responses"])
    assert "503" in schema["paths"]["/search/orders"]["get"]["responses"]

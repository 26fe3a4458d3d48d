"""Input and HTTP answers as the README documents them: number rules, conditional GET,
limit messages in characters, malformed order ids."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.test_write_api import ORDER, assert_envelope


def _order_with_price(raw_price: str) -> bytes:
    """An order body whose `unit_price` is written exactly as `raw_price` (a JSON literal)."""
    return (b'{"customer_id": "c1", "items": [{"sku": "S", "name": "Beans", "quantity": 1, '
            b'"unit_price": ' + raw_price.encode() + b"}]}")


@pytest.mark.parametrize("price", ["1e2", "1.990", "1E2", "19.9e0", "0.001", "-1", "1.0e-2"])
async def test_amounts_break_the_same_rules_as_numbers_and_as_strings(
        client: httpx.AsyncClient, price: str) -> None:
    for raw in (price, f'"{price}"'):
        response = await client.post("/orders", content=_order_with_price(raw),
                                     headers={"content-type": "application/json"})
        assert_envelope(response, 422, "validation_error")
        assert response.json()["error"]["details"][0]["loc"][-1] == "unit_price", raw


@pytest.mark.parametrize(("price", "total"), [("19.9", "19.90"), ("19.90", "19.90"),
                                              ("100", "100.00"), ("0.5", "0.50")])
async def test_amounts_within_the_rules_pass_as_numbers_and_as_strings(
        client: httpx.AsyncClient, price: str, total: str) -> None:
    for raw in (price, f'"{price}"'):
        response = await client.post("/orders", content=_order_with_price(raw),
                                     headers={"content-type": "application/json"})
        assert response.status_code == 201, response.text
        assert response.json()["total"] == total


async def test_a_whole_quantity_written_with_a_fraction_is_still_a_quantity(
        client: httpx.AsyncClient) -> None:
    body = b'{"customer_id": "c1", "items": [{"sku": "S", "name": "B", "quantity": 2.0, ' \
           b'"unit_price": 1.5}]}'
    response = await client.post("/orders", content=body,
                                 headers={"content-type": "application/json"})
    assert response.status_code == 201, response.text
    assert response.json()["total"] == "3.00"


async def test_if_none_match_with_the_current_version_is_304(client: httpx.AsyncClient) -> None:
    placed = (await client.post("/orders", json=ORDER)).json()
    path = f"/orders/{placed['order_id']}"
    etag = (await client.get(path)).headers["ETag"]
    assert etag == '"1"'
    for held in (etag, f"W/{etag}", f'"7", {etag}', "*"):
        response = await client.get(path, headers={"If-None-Match": held})
        assert response.status_code == 304, held
        assert response.content == b"" and response.headers["ETag"] == etag
    await client.post(f"{path}/cancel", json={"reason": "r"})
    changed = await client.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] == '"2"'
    assert changed.json()["status"] == "cancelled"


@pytest.mark.parametrize(("field", "limit"), [("customer_name", 200), ("customer_id", 64)])
async def test_text_limits_speak_of_characters(client: httpx.AsyncClient, field: str,
                                               limit: int) -> None:
    body: dict[str, Any] = {**ORDER, field: "x" * (limit + 1)}
    response = await client.post("/orders", json=body)
    assert_envelope(response, 422, "validation_error")
    (detail,) = response.json()["error"]["details"]
    assert detail["loc"] == ["body", field]
    assert f"at most {limit} characters" in detail["msg"]


async def test_a_malformed_order_id_is_the_documented_422(client: httpx.AsyncClient) -> None:
    for response in (await client.get("/orders/not-a-uuid"),
                     await client.post("/orders/not-a-uuid/cancel", json={"reason": "r"})):
        assert_envelope(response, 422, "validation_error")
        (detail,) = response.json()["error"]["details"]
        assert detail["loc"] == ["path", "order_id"] and detail["type"] == "uuid_parsing"

"""The write API's contract: each status and error code the README lists, in the envelope."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

ORDER: dict[str, Any] = {
    "customer_id": "cust-1", "customer_name": "Ada Lovelace",
    "items": [{"sku": "SKU-1", "name": "Beans", "quantity": 2, "unit_price": "9.95"},
              {"sku": "SKU-2", "name": "Mug", "quantity": 1, "unit_price": 5}],
}


def assert_envelope(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert "details" in error


async def place(client: httpx.AsyncClient, **headers: str) -> httpx.Response:
    return await client.post("/orders", json=ORDER, headers=headers)


async def test_place_order_returns_201_with_location_and_position(
        client: httpx.AsyncClient) -> None:
    response = await place(client)
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "placed" and body["version"] == 1
    assert body["total"] == "24.90" and body["item_count"] == 2
    assert response.headers["Location"] == f"/orders/{body['order_id']}"
    assert response.headers["X-Event-Position"] == str(body["position"])


async def test_get_order_returns_write_model_with_etag(client: httpx.AsyncClient) -> None:
    order_id = (await place(client)).json()["order_id"]
    response = await client.get(f"/orders/{order_id}")
    assert response.status_code == 200
    assert response.headers["ETag"] == '"1"'
    body = response.json()
    assert body["customer_name"] == "Ada Lovelace" and body["total"] == "24.90"
    assert [i["unit_price"] for i in body["items"]] == ["9.95", "5.00"]


async def test_unknown_order_is_404(client: httpx.AsyncClient) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    assert_envelope(await client.get(f"/orders/{missing}"), 404, "OrderNotFound")
    response = await client.post(f"/orders/{missing}/cancel", json={"reason": "x"})
    assert_envelope(response, 404, "OrderNotFound")
    response = await client.post(f"/orders/{missing}/ship", json={"tracking_number": "T"})
    assert_envelope(response, 404, "OrderNotFound")


async def test_empty_and_oversized_orders_are_422(client: httpx.AsyncClient) -> None:
    assert_envelope(await client.post("/orders", json={**ORDER, "items": []}), 422, "EmptyOrder")
    many = [{"sku": f"S{i}", "name": "n", "quantity": 1, "unit_price": "1"} for i in range(101)]
    assert_envelope(await client.post("/orders", json={**ORDER, "items": many}), 422,
                    "TooManyItems")


@pytest.mark.parametrize("body", [
    {"items": ORDER["items"]},
    {**ORDER, "items": [{"sku": "S", "name": "n", "quantity": 0, "unit_price": "1"}]},
    {**ORDER, "items": [{"sku": "S", "name": "n", "quantity": 1, "unit_price": "-1"}]},
    {**ORDER, "items": [{"sku": "S", "name": "n", "quantity": 1, "unit_price": "1.999"}]},
    {**ORDER, "surprise": True},
    {**ORDER, "customer_id": "x" * 65},
])
async def test_invalid_bodies_are_validation_errors(client: httpx.AsyncClient,
                                                    body: dict[str, Any]) -> None:
    assert_envelope(await client.post("/orders", json=body), 422, "validation_error")
    assert (await client.get("/health")).status_code == 200


async def test_malformed_json_is_validation_error(client: httpx.AsyncClient) -> None:
    response = await client.post("/orders", content=b"{not json",
                                 headers={"content-type": "application/json"})
    assert_envelope(response, 422, "validation_error")


async def test_body_over_one_mebibyte_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post("/orders", content=b"x" * (1024 * 1024 + 1),
                                 headers={"content-type": "application/json"})
    assert_envelope(response, 413, "payload_too_large")


async def test_cancel_then_cancel_again_is_409(client: httpx.AsyncClient) -> None:
    order_id = (await place(client)).json()["order_id"]
    response = await client.post(f"/orders/{order_id}/cancel", json={"reason": "changed mind"})
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled" and response.json()["version"] == 2
    again = await client.post(f"/orders/{order_id}/cancel", json={"reason": "again"})
    assert_envelope(again, 409, "AlreadyCancelled")


async def test_ship_then_cancel_is_409(client: httpx.AsyncClient) -> None:
    order_id = (await place(client)).json()["order_id"]
    shipped = await client.post(f"/orders/{order_id}/ship", json={"tracking_number": "1Z9"})
    assert shipped.status_code == 200 and shipped.json()["status"] == "shipped"
    cancel = await client.post(f"/orders/{order_id}/cancel", json={"reason": "late"})
    assert_envelope(cancel, 409, "CannotCancelShippedOrder")
    again = await client.post(f"/orders/{order_id}/ship", json={"tracking_number": "1Z9"})
    assert_envelope(again, 409, "InvalidStatusForShipping")


async def test_if_match_mismatch_is_412_and_match_succeeds(client: httpx.AsyncClient) -> None:
    order_id = (await place(client)).json()["order_id"]
    stale = await client.post(f"/orders/{order_id}/ship", json={"tracking_number": "T"},
                              headers={"If-Match": '"2"'})
    assert_envelope(stale, 412, "VersionConflict")
    fresh = await client.post(f"/orders/{order_id}/ship", json={"tracking_number": "T"},
                              headers={"If-Match": '"1"'})
    assert fresh.status_code == 200


async def test_bad_if_match_header_is_422(client: httpx.AsyncClient) -> None:
    order_id = (await place(client)).json()["order_id"]
    response = await client.post(f"/orders/{order_id}/cancel", json={"reason": "r"},
                                 headers={"If-Match": "yesterday"})
    assert_envelope(response, 422, "validation_error")


async def test_idempotency_key_replays_first_response(client: httpx.AsyncClient) -> None:
    first = await place(client, **{"Idempotency-Key": "abc-1"})
    second = await place(client, **{"Idempotency-Key": "abc-1"})
    assert second.status_code == 201 and second.json() == first.json()
    other = await client.post("/orders", json={**ORDER, "customer_id": "someone-else"},
                              headers={"Idempotency-Key": "abc-1"})
    assert_envelope(other, 422, "IdempotencyKeyReused")
    too_long = await place(client, **{"Idempotency-Key": "k" * 201})
    assert_envelope(too_long, 422, "validation_error")


async def test_unknown_route_is_404_envelope(client: httpx.AsyncClient) -> None:
    assert_envelope(await client.get("/no/such/thing"), 404, "not_found")


async def test_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await place(client, **{"X-Request-ID": "req-123"})
    assert response.headers["X-Request-ID"] == "req-123"


async def test_health_reports_each_service(client: httpx.AsyncClient) -> None:
    body = (await client.get("/health")).json()
    assert body["status"] == "ok"
    assert set(body["services"]) == {"postgres", "redis", "elasticsearch"}


async def test_openapi_documents_the_write_calls(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/orders", "/orders/{order_id}", "/orders/{order_id}/cancel",
            "/orders/{order_id}/ship"} <= set(paths)

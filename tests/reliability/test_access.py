"""API keys with scopes, the admin token, and the audit trail of who wrote what."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.auth import parse_keys
from app.kernel.settings import Settings
from tests.helpers.readside_fixtures import RunProjector
from tests.helpers.support import bearer, in_process_api

KEYS = "shop:write:shop-key-123, board:read:board-key-456, ops:read+write+admin:ops-key-789"
ORDER = {"customer_id": "c1", "items": [{"sku": "S", "name": "n", "quantity": 1,
                                         "unit_price": "1.00"}]}


@pytest.fixture
async def secured(read_settings: Settings,
                  run_projector: RunProjector) -> AsyncIterator[httpx.AsyncClient]:
    async with run_projector(only={"dashboard"}):
        pass  # builds and publishes the (empty) dashboard the reads below answer from
    async with in_process_api(read_settings.model_copy(update={"api_keys": KEYS})) as http:
        yield http


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


async def test_missing_or_wrong_key_is_401(secured: httpx.AsyncClient) -> None:
    assert_error(await secured.post("/orders", json=ORDER), 401, "unauthorized")
    assert_error(await secured.post("/orders", json=ORDER, headers=bearer("nope-nope")), 401,
                 "unauthorized")
    assert_error(await secured.get("/dashboard", headers={"Authorization": "board-key-456"}),
                 401, "unauthorized")
    response = await secured.get("/search/orders")
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_key_without_the_scope_is_403(secured: httpx.AsyncClient) -> None:
    assert_error(await secured.post("/orders", json=ORDER, headers=bearer("board-key-456")),
                 403, "forbidden")
    assert_error(await secured.get("/dashboard", headers=bearer("shop-key-123")), 403,
                 "forbidden")
    assert_error(await secured.post("/admin/reindex", json={"target": "search"},
                                    headers=bearer("board-key-456")), 403, "forbidden")


async def test_keys_with_the_scope_pass(secured: httpx.AsyncClient,
                                        clean_db: Any) -> None:
    placed = await secured.post("/orders", json=ORDER, headers=bearer("shop-key-123"))
    assert placed.status_code == 201
    assert (await secured.get("/dashboard", headers=bearer("board-key-456"))).status_code == 200
    assert (await secured.get("/admin/projections",
                              headers=bearer("ops-key-789"))).status_code == 200
    assert (await secured.get("/health")).status_code == 200  # probes stay open


async def test_events_record_the_key_name_and_correlation_id_never_the_key(
        secured: httpx.AsyncClient, clean_db: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="orders.access"):
        response = await secured.post("/orders", json=ORDER, headers={
            **bearer("shop-key-123"), "X-Request-ID": "req-audit-1", "Idempotency-Key": "k-1"})
    assert response.headers["X-Request-ID"] == "req-audit-1"
    metadata = await clean_db.fetchval("SELECT metadata FROM events")
    assert metadata == {"correlation_id": "req-audit-1", "causation_id": "req-audit-1",
                        "idempotency_key": "k-1", "actor": "shop"}
    stored = json.dumps(await clean_db.fetchval("SELECT row_to_json(e)::text FROM events e"))
    assert "shop-key-123" not in stored
    access = [r for r in caplog.records if r.name == "orders.access"]
    assert any(getattr(r, "fields", {}).get("actor") == "shop" for r in access)
    assert all("shop-key-123" not in r.getMessage() + json.dumps(getattr(r, "fields", {}))
               for r in caplog.records)


async def test_without_keys_reads_and_writes_are_open_and_admin_is_403(
        client: httpx.AsyncClient) -> None:
    assert (await client.post("/orders", json=ORDER)).status_code == 201
    response = await client.post("/admin/reindex", json={"target": "search"})
    assert_error(response, 403, "forbidden")
    assert "ORDERS_API_KEYS" in response.json()["error"]["message"]


def test_malformed_key_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="name:scope"):
        parse_keys("just-a-key")
    with pytest.raises(ValueError, match="unknown scope"):
        parse_keys("x:superuser:0123456789")
    assert [k.name for k in parse_keys(KEYS)] == ["shop", "board", "ops"]


def test_json_log_lines_carry_the_correlation_id() -> None:
    from app.logs import JsonFormatter, correlation_id

    token = correlation_id.set("req-42")
    try:
        record = logging.LogRecord("orders.api", logging.INFO, __file__, 1, "hello", None, None)
        record.fields = {"path": "/orders"}
        line = json.loads(JsonFormatter().format(record))
    finally:
        correlation_id.reset(token)
    assert line["correlation_id"] == "req-42" and line["message"] == "hello"
    assert line["path"] == "/orders" and line["level"] == "info"

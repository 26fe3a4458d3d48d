"""Dead dependencies degrade service and never corrupt it; the API recovers by itself.

These stop and restart the real native services (infra/stack.py), so they run only where
the native stack serves the tests (as `make test` sets it up).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.kernel.settings import Settings
from infra import native, stack
from tests.faults.harness import api as fault_api
from tests.helpers.readside_fixtures import RunProjector

ORDER = {"customer_id": "c1", "items": [{"sku": "S", "name": "Tea", "quantity": 1,
                                         "unit_price": "1.00"}]}

pytestmark = pytest.mark.skipif(not native.redis_running(),
                                reason="needs the native stack (orders stack up) to stop it")


@pytest.fixture
async def api(read_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with fault_api(read_settings) as http:
        yield http


@contextlib.asynccontextmanager
async def stopped(service: str) -> AsyncIterator[None]:
    """The service is down inside the block and running again after it."""
    await asyncio.to_thread(stack.stop, service)
    try:
        yield
    finally:
        await asyncio.to_thread(stack.start, service)


async def until_status(http: httpx.AsyncClient, method: str, path: str, status: int,
                       seconds: float = 30, **kw: Any) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        response = await http.request(method, path, **kw)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.3)


def assert_unavailable(response: httpx.Response, service: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1"
    error = response.json()["error"]
    assert error["code"] == "ServiceUnavailable" and error["details"]["service"] == service


async def test_postgres_down_commands_get_503_quickly_and_recover(
        api: httpx.AsyncClient, clean_db: Any) -> None:
    assert (await api.post("/orders", json=ORDER)).status_code == 201
    async with stopped("postgres"):
        started = time.monotonic()
        response = await api.post("/orders", json=ORDER)
        assert time.monotonic() - started < 10  # bounded: no hang
        assert_unavailable(response, "postgres")
        health = await api.get("/health")
        assert health.status_code == 503
        assert health.json()["services"]["postgres"]["ok"] is False
        assert health.json()["services"]["redis"]["ok"] is True
    recovered = await until_status(api, "POST", "/orders", 201, json=ORDER)
    assert recovered.status_code == 201  # the pool reconnected by itself
    counts = await clean_db.fetchrow("SELECT (SELECT count(*) FROM events) AS e, "
                                     "(SELECT count(*) FROM orders) AS o")
    assert counts["e"] == counts["o"] >= 2  # no partial write


async def test_redis_down_only_the_dashboard_is_503(
        api: httpx.AsyncClient, clean_db: Any, run_projector: RunProjector) -> None:
    async with run_projector():
        position = (await api.post("/orders", json=ORDER)).json()["position"]
        await api.get("/search/orders", params={"wait_ms": 5000},
                      headers={"X-Min-Position": str(position)})
    async with stopped("redis"):
        assert_unavailable(await api.get("/dashboard"), "redis")
        assert (await api.post("/orders", json=ORDER)).status_code == 201
        assert (await api.get("/search/orders", params={"q": "tea"})).status_code == 200
        assert (await api.get("/health")).json()["services"]["redis"]["ok"] is False
    assert (await until_status(api, "GET", "/dashboard", 200)).status_code == 200


async def test_elasticsearch_down_only_search_is_503(
        api: httpx.AsyncClient, clean_db: Any, run_projector: RunProjector) -> None:
    async with run_projector():
        position = (await api.post("/orders", json=ORDER)).json()["position"]
        await api.get("/dashboard", params={"wait_ms": 5000},
                      headers={"X-Min-Position": str(position)})
        await api.get("/search/orders", params={"wait_ms": 5000},
                      headers={"X-Min-Position": str(position)})
    async with stopped("elasticsearch"):
        assert_unavailable(await api.get("/search/orders", params={"q": "tea"}),
                           "elasticsearch")
        assert_unavailable(await api.get("/search/suggest", params={"prefix": "te"}),
                           "elasticsearch")
        assert (await api.post("/orders", json=ORDER)).status_code == 201
        assert (await api.get("/dashboard")).status_code == 200
    response = await until_status(api, "GET", "/search/orders", 200, params={"q": "tea"})
    assert response.status_code == 200 and response.json()["total"] >= 1

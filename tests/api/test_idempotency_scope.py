"""Idempotency keys belong to the API key that sent them: another caller's key is another key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.kernel.settings import Settings
from app.main import create_app

KEYS = "shop:write:shop-key-123, till:write:till-key-456"
ORDER: dict[str, Any] = {
    "customer_id": "cust-1",
    "items": [{"sku": "SKU-1", "name": "Beans", "quantity": 1, "unit_price": "9.95"}],
}


@pytest.fixture
async def secured(settings: Settings, clean_db: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"api_keys": KEYS}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


def as_caller(key: str, idempotency_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Idempotency-Key": idempotency_key}


async def test_another_caller_replaying_a_key_gets_its_own_answer(
        secured: httpx.AsyncClient, clean_db: Any) -> None:
    shop = await secured.post("/orders", json=ORDER, headers=as_caller("shop-key-123", "k-1"))
    till = await secured.post("/orders", json=ORDER, headers=as_caller("till-key-456", "k-1"))
    assert shop.status_code == 201 and till.status_code == 201, till.text
    assert till.json()["order_id"] != shop.json()["order_id"]
    # The same caller replaying still gets its first answer.
    again = await secured.post("/orders", json=ORDER, headers=as_caller("till-key-456", "k-1"))
    assert again.json() == till.json()
    assert await clean_db.fetchval("SELECT count(*) FROM orders") == 2


async def test_another_callers_key_with_another_body_is_not_refused(
        secured: httpx.AsyncClient) -> None:
    await secured.post("/orders", json=ORDER, headers=as_caller("shop-key-123", "k-2"))
    other = {**ORDER, "customer_id": "cust-2"}
    till = await secured.post("/orders", json=other, headers=as_caller("till-key-456", "k-2"))
    assert till.status_code == 201, till.text  # not 422 IdempotencyKeyReused

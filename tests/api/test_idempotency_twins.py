"""Twins: concurrent requests with one `Idempotency-Key` all get the first answer."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

ORDER: dict[str, Any] = {
    "customer_id": "cust-twins",
    "items": [{"sku": "SKU-1", "name": "Beans", "quantity": 1, "unit_price": "9.95"}],
}
CHANGES = {"cancel": {"reason": "changed my mind"}, "ship": {"tracking_number": "1Z-TWIN"}}
TRIALS = 20


@pytest.mark.parametrize("change", sorted(CHANGES))
async def test_concurrent_twins_on_a_change_get_the_first_answer(
        client: httpx.AsyncClient, clean_db: Any, change: str) -> None:
    for trial in range(TRIALS):
        order_id = (await client.post("/orders", json=ORDER)).json()["order_id"]
        headers = {"Idempotency-Key": f"{change}-twin-{trial}"}
        first, second = await asyncio.gather(*(
            client.post(f"/orders/{order_id}/{change}", json=CHANGES[change], headers=headers)
            for _ in range(2)))
        assert (first.status_code, second.status_code) == (200, 200), (
            f"trial {trial}: {first.text} / {second.text}")
        assert first.json() == second.json()
        assert first.json()["version"] == 2
    events = await clean_db.fetchval("SELECT count(*) FROM events WHERE version = 2")
    assert events == TRIALS  # each trial appended its change once

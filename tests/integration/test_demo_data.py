"""`orders demo` data is never dated after the moment it was generated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from app.demo import generate
from app.write.store import OrderStore


async def test_demo_orders_shipments_and_cancels_are_never_in_the_future(
        clean_db: asyncpg.Pool[Any]) -> None:
    before = datetime.now(UTC)
    # one day, so about half of the 1..48 h delays would land after now
    await generate(OrderStore(clean_db), 3000, days=1, seed=5)
    after = datetime.now(UTC)
    row = await clean_db.fetchrow(
        "SELECT max(placed_at) AS placed, max(shipped_at) AS shipped, "
        "max(cancelled_at) AS cancelled, min(placed_at) AS first, "
        "count(*) FILTER (WHERE shipped_at < placed_at OR cancelled_at < placed_at) AS before "
        "FROM orders")
    assert row["first"] >= before - timedelta(days=1, seconds=1)
    for latest in (row["placed"], row["shipped"], row["cancelled"]):
        assert latest is not None and latest <= after
    assert row["before"] == 0
    statuses = await clean_db.fetch("SELECT status, count(*) FROM orders GROUP BY status")
    assert {r["status"] for r in statuses} == {"placed", "shipped", "cancelled"}

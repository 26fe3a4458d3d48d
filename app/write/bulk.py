"""Bulk appends for seeding and demos: many decided events in one transaction, pipelined.

The same tables and the same rules as the command path; only the round trips are batched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.domain.events import Event, OrderCancelled, OrderPlaced, OrderShipped
from app.kernel.positions import NOTIFY_CHANNEL
from app.write.store import (
    INSERT_EVENT,
    INSERT_LINES,
    INSERT_ORDER,
    UPDATE_CANCELLED,
    UPDATE_SHIPPED,
    OrderStore,
)


@dataclass(frozen=True)
class Versioned:
    event: Event
    version: int


async def append_batch(store: OrderStore, batch: list[Versioned],
                       metadata: dict[str, Any]) -> None:
    """Append every event of `batch` (in order) and update the write model, atomically."""
    events, orders, lines, cancels, ships = [], [], [], [], []
    for item in batch:
        e, v = item.event, item.version
        events.append((e.order_id, v, e.type, e.schema_version, e.payload(), metadata))
        if isinstance(e, OrderPlaced):
            orders.append((e.order_id, e.customer_id, e.customer_name, e.total, len(e.items),
                           e.placed_at))
            lines += [(e.order_id, n, li.sku, li.name, li.quantity, li.unit_price)
                      for n, li in enumerate(e.items, start=1)]
        elif isinstance(e, OrderCancelled):
            cancels.append((e.order_id, v, e.cancelled_at, e.reason))
        elif isinstance(e, OrderShipped):
            ships.append((e.order_id, v, e.shipped_at, e.tracking_number))
    async with store.transaction() as tx:
        conn = tx.connection
        await conn.executemany(INSERT_EVENT.replace(" RETURNING position", ""), events)
        await conn.executemany(INSERT_ORDER, orders)
        await conn.executemany(INSERT_LINES, lines)
        await conn.executemany(UPDATE_CANCELLED, cancels)
        await conn.executemany(UPDATE_SHIPPED, ships)
        await conn.execute("SELECT pg_notify($1, 'batch')", NOTIFY_CHANNEL)

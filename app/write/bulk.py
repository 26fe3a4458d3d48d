"""Bulk appends for seeding and demos: many decided events in one transaction, pipelined.

The same tables and the same rules as the command path; only the round trips are batched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.domain.events import Event
from app.kernel.positions import NOTIFY_CHANNEL
from app.write.store import INSERT_EVENT, OrderStore, WriteModelRows


@dataclass(frozen=True)
class Versioned:
    event: Event
    version: int


async def append_batch(store: OrderStore, batch: list[Versioned],
                       metadata: dict[str, Any]) -> None:
    """Append every event of `batch` (in order) and update the write model, atomically."""
    events: list[tuple[Any, ...]] = []
    rows = WriteModelRows()
    for item in batch:
        e, v = item.event, item.version
        events.append((e.order_id, v, e.type, e.schema_version, e.payload(), metadata))
        rows.add(e, v)
    async with store.transaction() as tx:
        conn = tx.connection
        await conn.executemany(INSERT_EVENT.replace(" RETURNING position", ""), events)
        await rows.write(conn)
        await conn.execute("SELECT pg_notify($1, 'batch')", NOTIFY_CHANNEL)

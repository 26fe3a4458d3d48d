"""Events: facts about an order (past tense), stored forever and never edited.

Each event class has a `type` and a `schema_version`. When a shape must change, bump the
version, keep the old shape readable with an upcaster `upcast_<type>_v<n>_v<n+1>` registered
in `UPCASTERS`, and add a JSON fixture of the old shape under tests/fixtures/events/.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from app.domain.money import CENTS


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    type: ClassVar[str]
    schema_version: ClassVar[int] = 1

    order_id: UUID

    def payload(self) -> dict[str, Any]:
        """The JSON-ready data stored in the event log."""
        return self.model_dump(mode="json")


class PlacedLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    sku: str
    name: str
    quantity: int
    unit_price: Decimal


class OrderPlaced(Event):
    type = "OrderPlaced"
    schema_version = 2

    customer_id: str
    customer_name: str | None
    items: tuple[PlacedLine, ...]
    total: Decimal
    placed_at: datetime


class OrderCancelled(Event):
    type = "OrderCancelled"

    reason: str
    cancelled_at: datetime


class OrderShipped(Event):
    type = "OrderShipped"

    tracking_number: str
    shipped_at: datetime


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls for cls in (OrderPlaced, OrderCancelled, OrderShipped)
}

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


def upcast_order_placed_v1_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v1 (the first log format) had `price` per line, no customer name and no total."""
    items = [
        {"sku": line["sku"], "name": line.get("name") or line["sku"],
         "quantity": line["quantity"], "unit_price": line["price"]}
        for line in data["items"]
    ]
    total = sum((Decimal(str(i["unit_price"])) * i["quantity"] for i in items), Decimal("0"))
    rest = {k: v for k, v in data.items() if k != "items"}
    return {**rest, "items": items, "customer_name": data.get("customer_name"),
            "total": str(total.quantize(CENTS))}


UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("OrderPlaced", 1): upcast_order_placed_v1_v2,
}


class UnknownEvent(ValueError):
    """An event type or schema version this code cannot read."""


def load_event(event_type: str, schema_version: int, data: dict[str, Any]) -> Event:
    """Rebuild an event from the log, upcasting old shapes to the current one."""
    cls = EVENT_TYPES.get(event_type)
    if cls is None or schema_version > cls.schema_version:
        raise UnknownEvent(f"cannot read {event_type} v{schema_version}")
    while schema_version < cls.schema_version:
        upcaster = UPCASTERS.get((event_type, schema_version))
        if upcaster is None:
            raise UnknownEvent(f"no upcaster for {event_type} v{schema_version}")
        data = upcaster(data)
        schema_version += 1
    return cls.model_validate(data)


def load_event_json(event_type: str, schema_version: int, text: str | bytes) -> Event:
    """`load_event` from the stored JSON text; a current shape is parsed and validated in
    one pass (pydantic's own parser, no dict in between)."""
    cls = EVENT_TYPES.get(event_type)
    if cls is not None and schema_version == cls.schema_version:
        return cls.model_validate_json(text)
    return load_event(event_type, schema_version, json.loads(text))

"""The order aggregate: `place`, `cancel` and `ship` turn a command into an event, `evolve`
folds events into state.

All are pure: no I/O, no clock (the caller passes `now`). The write side and every
projection use the same `evolve`, so a read model is the log folded by the same rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Literal, get_args
from uuid import UUID

from app.domain import errors
from app.domain.commands import CancelOrder, PlaceOrder, ShipOrder
from app.domain.events import Event, OrderCancelled, OrderPlaced, OrderShipped, PlacedLine
from app.domain.money import CENTS

MAX_LINES = 100


class Status(StrEnum):
    """An order's status: the one list behind the read API's filter and the search facets."""

    PLACED = "placed"
    CANCELLED = "cancelled"
    SHIPPED = "shipped"


# The statuses as text, for request validation and the OpenAPI schema; checked against the
# enum here, so the two can never drift apart.
StatusText = Literal["placed", "cancelled", "shipped"]
STATUSES: tuple[str, ...] = get_args(StatusText)
if STATUSES != tuple(status.value for status in Status):
    raise ImportError("StatusText and Status disagree")


@dataclass(frozen=True)
class Order:
    order_id: UUID
    customer_id: str
    customer_name: str | None
    items: tuple[PlacedLine, ...]
    total: Decimal
    status: Status
    version: int
    placed_at: datetime
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    shipped_at: datetime | None = None
    tracking_number: str | None = None

    @property
    def item_count(self) -> int:
        return len(self.items)


def place(command: PlaceOrder, order_id: UUID, now: datetime) -> OrderPlaced:
    """Decide on a new order: at least one line and at most MAX_LINES."""
    if not command.items:
        raise errors.EmptyOrder("an order needs at least one item")
    if len(command.items) > MAX_LINES:
        raise errors.TooManyItems(f"an order holds at most {MAX_LINES} lines",
                                  {"lines": len(command.items), "max": MAX_LINES})
    items = tuple(PlacedLine(sku=i.sku, name=i.name, quantity=i.quantity,
                             unit_price=i.unit_price) for i in command.items)
    total = sum((i.unit_price * i.quantity for i in items), Decimal("0")).quantize(CENTS)
    return OrderPlaced(order_id=order_id, customer_id=command.customer_id,
                       customer_name=command.customer_name, items=items, total=total,
                       placed_at=now)


def cancel(order: Order, command: CancelOrder, now: datetime) -> OrderCancelled:
    """Decide on a cancellation: only a placed order can be cancelled."""
    if order.status is Status.SHIPPED:
        raise errors.CannotCancelShippedOrder("a shipped order cannot be cancelled")
    if order.status is Status.CANCELLED:
        raise errors.AlreadyCancelled("the order is already cancelled")
    return OrderCancelled(order_id=order.order_id, reason=command.reason, cancelled_at=now)


def ship(order: Order, command: ShipOrder, now: datetime) -> OrderShipped:
    """Decide on a shipment: only a placed order can be shipped."""
    if order.status is not Status.PLACED:
        raise errors.InvalidStatusForShipping(
            f"only placed orders can be shipped; this one is {order.status.value}",
            {"status": order.status.value})
    return OrderShipped(order_id=order.order_id, tracking_number=command.tracking_number,
                        shipped_at=now)


def evolve(order: Order | None, event: Event) -> Order:
    """Apply one event to the state it follows (None before the first event)."""
    if isinstance(event, OrderPlaced):
        return Order(order_id=event.order_id, customer_id=event.customer_id,
                     customer_name=event.customer_name, items=event.items, total=event.total,
                     status=Status.PLACED, version=1, placed_at=event.placed_at)
    if order is None:
        raise ValueError(f"{event.type} before OrderPlaced for {event.order_id}")
    if isinstance(event, OrderCancelled):
        return replace(order, status=Status.CANCELLED, version=order.version + 1,
                       cancelled_at=event.cancelled_at, cancel_reason=event.reason)
    if isinstance(event, OrderShipped):
        return replace(order, status=Status.SHIPPED, version=order.version + 1,
                       shipped_at=event.shipped_at, tracking_number=event.tracking_number)
    raise ValueError(f"unknown event {event.type}")


def replay(events: Iterable[Event]) -> Order | None:
    """Fold a stream's events into the order's current state."""
    order: Order | None = None
    for event in events:
        order = evolve(order, event)
    return order

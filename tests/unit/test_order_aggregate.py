"""Every rule and state transition of the order aggregate, without I/O."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from app.domain import errors
from app.domain.commands import CancelOrder, OrderLine, PlaceOrder, ShipOrder
from app.domain.events import OrderPlaced, UnknownEvent, load_event
from app.domain.order import MAX_LINES, Order, Status, cancel, evolve, place, replay, ship

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
FIXTURES = Path(__file__).parent.parent / "fixtures" / "events"


def line(sku: str = "SKU-1", qty: int = 1, price: str = "9.99") -> OrderLine:
    return OrderLine(sku=sku, name=f"item {sku}", quantity=qty, unit_price=Decimal(price))


def placed(lines: int = 1) -> Order:
    event = place(PlaceOrder("c1", tuple(line(f"S{i}") for i in range(lines))), uuid4(), NOW)
    return evolve(None, event)


def test_place_order_totals_lines_exactly_in_decimal() -> None:
    event = place(PlaceOrder("c1", (line(qty=3, price="0.10"), line("S2", 1, "19.90"))),
                  uuid4(), NOW)
    assert event.total == Decimal("20.20")
    order = evolve(None, event)
    assert (order.status, order.version, order.item_count) == (Status.PLACED, 1, 2)


def test_empty_order_is_rejected() -> None:
    with pytest.raises(errors.EmptyOrder):
        place(PlaceOrder("c1", ()), uuid4(), NOW)


def test_more_than_100_lines_is_rejected_and_100_is_accepted() -> None:
    with pytest.raises(errors.TooManyItems):
        place(PlaceOrder("c1", tuple(line(f"S{i}") for i in range(MAX_LINES + 1))), uuid4(), NOW)
    assert placed(MAX_LINES).item_count == MAX_LINES


def test_cancel_of_placed_order_cancels_it() -> None:
    order = placed()
    cancelled = evolve(order, cancel(order, CancelOrder(order.order_id, "changed mind"), NOW))
    assert (cancelled.status, cancelled.version, cancelled.cancel_reason) == (
        Status.CANCELLED, 2, "changed mind")


def test_cancel_of_shipped_order_is_rejected() -> None:
    order = placed()
    shipped = evolve(order, ship(order, ShipOrder(order.order_id, "TRK1"), NOW))
    with pytest.raises(errors.CannotCancelShippedOrder):
        cancel(shipped, CancelOrder(order.order_id, "too late"), NOW)


def test_cancel_of_cancelled_order_is_rejected() -> None:
    order = placed()
    cancelled = evolve(order, cancel(order, CancelOrder(order.order_id, "x"), NOW))
    with pytest.raises(errors.AlreadyCancelled):
        cancel(cancelled, CancelOrder(order.order_id, "again"), NOW)


def test_ship_of_placed_order_ships_it() -> None:
    order = placed()
    shipped = evolve(order, ship(order, ShipOrder(order.order_id, "TRK1"), NOW))
    assert (shipped.status, shipped.tracking_number, shipped.version) == (
        Status.SHIPPED, "TRK1", 2)


@pytest.mark.parametrize("first", ["cancel", "ship"])
def test_ship_of_order_not_placed_is_rejected(first: str) -> None:
    order = placed()
    if first == "cancel":
        order = evolve(order, cancel(order, CancelOrder(order.order_id, "x"), NOW))
    else:
        order = evolve(order, ship(order, ShipOrder(order.order_id, "T"), NOW))
    with pytest.raises(errors.InvalidStatusForShipping):
        ship(order, ShipOrder(order.order_id, "T2"), NOW)


def test_domain_errors_carry_a_code_and_no_http_status() -> None:
    assert errors.OrderNotFound.code == "OrderNotFound"
    assert not hasattr(errors.DomainError("x"), "status")


def test_stored_events_replay_to_the_same_state() -> None:
    order = placed(3)
    event1 = place(PlaceOrder("c9", (line(),), "Zoe"), order.order_id, NOW)
    state = evolve(None, event1)
    event2 = ship(state, ShipOrder(order.order_id, "TRK"), NOW)
    stored = [(e.type, e.schema_version, json.loads(json.dumps(e.payload())))
              for e in (event1, event2)]
    replayed = replay(load_event(t, v, d) for t, v, d in stored)
    assert replayed == evolve(state, event2)


def test_v1_order_placed_is_upcast_when_read() -> None:
    raw = json.loads((FIXTURES / "order_placed_v1.json").read_text())
    event = load_event(raw["type"], raw["schema_version"], raw["data"])
    assert isinstance(event, OrderPlaced)
    assert event.total == Decimal("25.50")
    assert event.items[1].name == "SKU-2"
    assert event.order_id == UUID(raw["data"]["order_id"])


def test_unknown_event_type_or_future_version_is_refused() -> None:
    with pytest.raises(UnknownEvent):
        load_event("OrderTeleported", 1, {})
    with pytest.raises(UnknownEvent):
        load_event("OrderShipped", 99, {})


def test_event_before_placed_is_an_error() -> None:
    order = placed()
    event = ship(order, ShipOrder(order.order_id, "T"), NOW)
    with pytest.raises(ValueError, match="before OrderPlaced"):
        evolve(None, event)

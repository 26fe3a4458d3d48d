"""Property-based tests of the aggregate: any command sequence keeps it valid and replayable."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain import errors
from app.domain.commands import CancelOrder, OrderLine, PlaceOrder, ShipOrder
from app.domain.events import Event, load_event
from app.domain.order import MAX_LINES, Order, Status, cancel, evolve, place, replay, ship

NOW = datetime(2026, 1, 1, tzinfo=UTC)
lines = st.builds(OrderLine, sku=st.text(min_size=1, max_size=8), name=st.text(max_size=8),
                  quantity=st.integers(1, 1000),
                  unit_price=st.decimals(0, 10_000, places=2, allow_nan=False,
                                         allow_infinity=False))
follow_ups = st.lists(st.sampled_from(["cancel", "ship"]), max_size=6)


@settings(max_examples=300, deadline=None)
@given(items=st.lists(lines, max_size=MAX_LINES + 5), steps=follow_ups)
def test_any_command_sequence_keeps_a_valid_state_that_replays(
        items: list[OrderLine], steps: list[str]) -> None:
    order_id = uuid4()
    try:
        first = place(PlaceOrder("c", tuple(items)), order_id, NOW)
    except (errors.EmptyOrder, errors.TooManyItems):
        assert not items or len(items) > MAX_LINES
        return
    assert 1 <= len(items) <= MAX_LINES
    events: list[Event] = [first]
    state: Order = evolve(None, first)
    for step in steps:
        try:
            event: Event = (cancel(state, CancelOrder(order_id, "r"), NOW) if step == "cancel"
                            else ship(state, ShipOrder(order_id, "T"), NOW))
        except errors.Conflict:
            assert state.status is not Status.PLACED  # only a placed order accepts either
            continue
        assert state.status is Status.PLACED
        events.append(event)
        state = evolve(state, event)
    # Invariants: at most one terminal event; version counts events; total is exact.
    assert state.version == len(events) <= 2
    assert state.total == sum((i.unit_price * i.quantity for i in items), Decimal("0"))
    assert (state.status is Status.CANCELLED) == (state.cancelled_at is not None)
    assert (state.status is Status.SHIPPED) == (state.tracking_number is not None)
    stored = [(e.type, e.schema_version, e.payload()) for e in events]
    assert replay(load_event(t, v, d) for t, v, d in stored) == state

"""The contract every write store keeps, stated once and run against each implementation.

A subclass provides `repository` (an empty `OrderRepository`) and `appended` (how many
events its log holds). The PostgreSQL store and the in-memory one both pass it, so handler
logic proven on the in-memory store holds on the real one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from app.domain import errors
from app.domain.commands import CancelOrder, OrderLine, PlaceOrder, ShipOrder
from app.domain.events import OrderPlaced
from app.domain.order import Status, place
from app.write import handlers
from app.write.handlers import CommandContext
from app.write.ports import IdempotencyRace, OrderRepository, StoredResponse

Count = Callable[[], Awaitable[int]]
KETTLE = PlaceOrder("c-1", (OrderLine("SKU-1", "Kettle", 2, Decimal("30.00")),), "Ada")


def ctx(key: str | None = None, body_hash: str | None = None,
        expected: int | None = None) -> CommandContext:
    return CommandContext("corr-1", idempotency_key=key, request_hash=body_hash,
                          actor="tester", expected_version=expected)


class EventStoreContract:
    """Subclasses provide the `repository` and `appended` fixtures."""

    async def test_a_placed_order_reads_back_with_its_lines_at_version_1(
            self, repository: OrderRepository, appended: Count) -> None:
        placed = await handlers.place_order(repository, KETTLE, ctx())
        order = await repository.get(placed_id(placed))
        assert (order.status, order.version, order.total, order.item_count) == (
            Status.PLACED, 1, Decimal("60.00"), 1)
        assert [li.name for li in order.items] == ["Kettle"]
        assert await appended() == 1

    async def test_each_append_gets_a_higher_position(
            self, repository: OrderRepository) -> None:
        first = await handlers.place_order(repository, KETTLE, ctx())
        second = await handlers.place_order(repository, KETTLE, ctx())
        cancelled = await handlers.cancel_order(
            repository, CancelOrder(placed_id(first), "changed my mind"), ctx())
        positions = [r.body["position"] for r in (first, second, cancelled)]
        assert positions == sorted(positions) and len(set(positions)) == 3

    async def test_a_stream_version_is_appended_once(
            self, repository: OrderRepository, appended: Count) -> None:
        event = place(KETTLE, uuid4(), now())
        async with repository.transaction() as tx:
            await tx.append(event, 1, {})
            await tx.apply(event, 1)
        with pytest.raises(errors.VersionConflict):
            async with repository.transaction() as tx:
                await tx.append(event, 1, {})
        assert await appended() == 1

    @pytest.mark.parametrize("alone", [False, True], ids=["in a transaction", "on its own"])
    async def test_placing_in_one_step_writes_every_line_in_its_order_once(
            self, repository: OrderRepository, appended: Count, alone: bool) -> None:
        async def placed(event: OrderPlaced, metadata: dict[str, str]) -> int:
            if alone:  # a command without an idempotency key
                return await repository.place(event, metadata)
            async with repository.transaction() as tx:
                return await tx.place(event, metadata)

        lines = (OrderLine("SKU-9", "Zeppelin", 1, Decimal("0.00")),
                 OrderLine("SKU-1", "Kettle — ƒancy", 3, Decimal("19.99")),
                 OrderLine("SKU-5", "Cup", 12, Decimal("2.50")))
        event = place(PlaceOrder("c-7", lines, None), uuid4(), now())
        position = await placed(event, {"actor": "tester"})
        order = await repository.get(event.order_id)
        assert [(li.sku, li.name, li.quantity, li.unit_price) for li in order.items] == [
            (li.sku, li.name, li.quantity, li.unit_price) for li in lines]
        assert (order.version, order.total, order.item_count, order.customer_name) == (
            1, Decimal("89.97"), 3, None)
        with pytest.raises(errors.VersionConflict):
            await placed(event, {})
        assert await appended() == 1
        assert len((await repository.get(event.order_id)).items) == 3
        assert position >= 1

    async def test_a_transaction_that_raises_leaves_nothing_behind(
            self, repository: OrderRepository, appended: Count) -> None:
        event = place(KETTLE, uuid4(), now())
        with pytest.raises(RuntimeError):
            async with repository.transaction() as tx:
                await tx.append(event, 1, {})
                await tx.apply(event, 1)
                await tx.remember("tester:k", "h", StoredResponse(201, {"a": 1}))
                raise RuntimeError("the handler failed after writing")
        assert await appended() == 0
        with pytest.raises(errors.OrderNotFound):
            await repository.get(event.order_id)
        async with repository.transaction() as tx:
            assert await tx.recall("tester:k") is None

    async def test_an_unknown_order_is_not_found(self, repository: OrderRepository) -> None:
        with pytest.raises(errors.OrderNotFound):
            await repository.get(uuid4())

    async def test_an_idempotency_key_keeps_one_answer(
            self, repository: OrderRepository) -> None:
        async with repository.transaction() as tx:
            await tx.remember("tester:k", "h1", StoredResponse(201, {"order_id": "o"}))
        async with repository.transaction() as tx:
            assert await tx.recall("tester:k") == ("h1", StoredResponse(201, {"order_id": "o"}))
        with pytest.raises(IdempotencyRace):
            async with repository.transaction() as tx:
                await tx.remember("tester:k", "h2", StoredResponse(201, {"order_id": "p"}))

    async def test_a_replayed_command_returns_the_first_answer_and_appends_nothing(
            self, repository: OrderRepository, appended: Count) -> None:
        first = await handlers.place_order(repository, KETTLE, ctx("k-1", "hash-a"))
        again = await handlers.place_order(repository, KETTLE, ctx("k-1", "hash-a"))
        assert again == first and await appended() == 1
        with pytest.raises(errors.IdempotencyKeyReused):
            await handlers.place_order(repository, KETTLE, ctx("k-1", "hash-b"))

    async def test_twins_in_flight_get_one_answer(
            self, repository: OrderRepository, appended: Count) -> None:
        placed = placed_id(await handlers.place_order(repository, KETTLE, ctx()))
        twins = [handlers.cancel_order(repository, CancelOrder(placed, "twice"),
                                       ctx("k-2", "hash-c")) for _ in range(2)]
        first, second = await asyncio.gather(*twins)
        assert first == second and await appended() == 2

    async def test_the_order_rules_hold_through_the_store(
            self, repository: OrderRepository) -> None:
        placed = placed_id(await handlers.place_order(repository, KETTLE, ctx()))
        with pytest.raises(errors.VersionConflict):
            await handlers.ship_order(repository, ShipOrder(placed, "1Z9"), ctx(expected=7))
        shipped = await handlers.ship_order(repository, ShipOrder(placed, "1Z9"),
                                            ctx(expected=1))
        assert shipped.body["status"] == "shipped" and shipped.body["version"] == 2
        with pytest.raises(errors.CannotCancelShippedOrder):
            await handlers.cancel_order(repository, CancelOrder(placed, "late"), ctx())
        order = await repository.get(placed)
        assert (order.status, order.version, order.tracking_number) == (
            Status.SHIPPED, 2, "1Z9")


def placed_id(response: StoredResponse) -> UUID:
    return UUID(response.body["order_id"])


def now() -> datetime:
    return datetime.now(UTC)

"""Command handlers: plain functions that load, decide with the domain, and store.

Each runs in one write transaction. With an idempotency key, a replay of the same request
returns the first response and appends nothing; the same key with another body is refused.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from app.domain import errors, order
from app.domain.commands import CancelOrder, PlaceOrder, ShipOrder
from app.domain.events import Event, OrderPlaced
from app.write.ports import IdempotencyRace, OrderRepository, OrderTransaction, StoredResponse


@dataclass(frozen=True)
class CommandContext:
    """Who asked, and under which keys; stored in each event's metadata."""

    correlation_id: str
    idempotency_key: str | None = None
    request_hash: str | None = None
    actor: str | None = None
    expected_version: int | None = None
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    @property
    def record_key(self) -> str | None:
        """The idempotency record's key: the client's key within its caller's (API key's)
        namespace, so another caller sending the same key is simply another key."""
        if self.idempotency_key is None:
            return None
        return f"{self.actor or ''}:{self.idempotency_key}"  # actor names hold no ':'

    def metadata(self) -> dict[str, Any]:
        return {"correlation_id": self.correlation_id, "causation_id": self.correlation_id,
                "idempotency_key": self.idempotency_key, "actor": self.actor}


Decision = Callable[[OrderTransaction], Awaitable[StoredResponse]]


async def _run(store: OrderRepository, ctx: CommandContext, decide: Decision) -> StoredResponse:
    # Two tries: the second only after a concurrent twin with our key committed first.
    for _ in range(2):
        try:
            async with store.transaction() as tx:
                key = ctx.record_key
                if key is not None:
                    found = await tx.recall(key)
                    if found is not None:
                        request_hash, response = found
                        if request_hash != ctx.request_hash:
                            raise errors.IdempotencyKeyReused(
                                "this Idempotency-Key was used with a different request",
                                {"idempotency_key": ctx.idempotency_key})
                        return response
                response = await decide(tx)
                if key is not None and ctx.request_hash is not None:
                    await tx.remember(key, ctx.request_hash, response)
                return response
        except IdempotencyRace:
            continue
    raise errors.VersionConflict("a concurrent request with the same key is in flight")


def _check_version(current: order.Order, ctx: CommandContext) -> None:
    if ctx.expected_version is not None and ctx.expected_version != current.version:
        raise errors.VersionConflict(
            f"order is at version {current.version}, not {ctx.expected_version}",
            {"expected": ctx.expected_version, "actual": current.version})


async def place_order(store: OrderRepository, cmd: PlaceOrder, ctx: CommandContext,
                      order_id: UUID | None = None) -> StoredResponse:
    """Place a new order; 201 with its id, version and log position."""
    new_id = order_id or uuid4()

    def placed(event: OrderPlaced, position: int) -> StoredResponse:
        return StoredResponse(201, {
            "order_id": str(new_id), "status": "placed", "version": 1, "position": position,
            "total": str(event.total), "item_count": len(event.items)})

    if ctx.record_key is None:  # no answer to recall or keep: the placement is the transaction
        event = order.place(cmd, new_id, ctx.now())
        return placed(event, await store.place(event, ctx.metadata()))

    async def decide(tx: OrderTransaction) -> StoredResponse:
        event = order.place(cmd, new_id, ctx.now())
        return placed(event, await tx.place(event, ctx.metadata()))

    return await _run(store, ctx, decide)


Transition = Callable[[order.Order, datetime], Event]


async def _change(store: OrderRepository, ctx: CommandContext, order_id: UUID,
                  transition: Transition) -> StoredResponse:
    """Load and lock the order, check `If-Match`, decide, append and apply one event."""

    async def decide(tx: OrderTransaction) -> StoredResponse:
        current = await tx.load(order_id, lock=True)
        _check_version(current, ctx)
        event = transition(current, ctx.now())
        version = current.version + 1
        position = await tx.append(event, version, ctx.metadata())
        await tx.apply(event, version)
        status = order.evolve(current, event).status.value
        return StoredResponse(200, {"order_id": str(order_id), "status": status,
                                    "version": version, "position": position})

    return await _run(store, ctx, decide)


async def cancel_order(store: OrderRepository, cmd: CancelOrder,
                       ctx: CommandContext) -> StoredResponse:
    """Cancel a placed order."""
    return await _change(store, ctx, cmd.order_id,
                         lambda current, now: order.cancel(current, cmd, now))


async def ship_order(store: OrderRepository, cmd: ShipOrder, ctx: CommandContext) -> StoredResponse:
    """Ship a placed order."""
    return await _change(store, ctx, cmd.order_id,
                         lambda current, now: order.ship(current, cmd, now))

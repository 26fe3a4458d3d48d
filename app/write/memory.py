"""An in-memory `OrderRepository`, for testing handler logic in milliseconds.

It keeps the same contract as the PostgreSQL store (`tests/contract/event_store_contract.py`
runs one suite against both): an exception leaving a transaction rolls back everything done
in it, a stream version can be appended once, an idempotency key keeps one answer. One
transaction runs at a time, so it is serializable by construction.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from app.domain import errors
from app.domain.events import Event, OrderPlaced
from app.domain.order import Order, evolve
from app.write.ports import IdempotencyRace, StoredResponse


@dataclass(frozen=True)
class RecordedEvent:
    """One appended event, as the log would hold it."""

    position: int
    stream_id: UUID
    version: int
    event: Event
    metadata: dict[str, Any]


@dataclass
class _State:
    orders: dict[UUID, Order] = field(default_factory=dict)
    events: list[RecordedEvent] = field(default_factory=list)
    responses: dict[str, tuple[str, StoredResponse]] = field(default_factory=dict)

    def copy(self) -> _State:
        return _State(dict(self.orders), list(self.events), dict(self.responses))


class MemoryTransaction:
    """Works on a copy of the store's state; the copy replaces the state on commit."""

    def __init__(self, state: _State) -> None:
        self.state = state

    async def load(self, order_id: UUID, *, lock: bool) -> Order:
        found = self.state.orders.get(order_id)
        if found is None:
            raise errors.OrderNotFound(f"order {order_id} does not exist",
                                       {"order_id": str(order_id)})
        return found

    async def append(self, event: Event, version: int, metadata: dict[str, Any]) -> int:
        if any(e.stream_id == event.order_id and e.version == version
               for e in self.state.events):
            raise errors.VersionConflict(
                f"order {event.order_id} changed concurrently; reload and retry",
                {"order_id": str(event.order_id), "version": version})
        position = len(self.state.events) + 1
        self.state.events.append(RecordedEvent(position, event.order_id, version, event,
                                               dict(metadata)))
        return position

    async def place(self, event: OrderPlaced, metadata: dict[str, Any]) -> int:
        position = await self.append(event, 1, metadata)
        await self.apply(event, 1)
        return position

    async def apply(self, event: Event, version: int) -> None:
        self.state.orders[event.order_id] = evolve(self.state.orders.get(event.order_id), event)

    async def recall(self, key: str) -> tuple[str, StoredResponse] | None:
        return self.state.responses.get(key)

    async def remember(self, key: str, request_hash: str, response: StoredResponse) -> None:
        if key in self.state.responses:
            raise IdempotencyRace(key)
        self.state.responses[key] = (request_hash, response)


class MemoryOrderStore:
    """The write model and event log in a dict and a list."""

    def __init__(self) -> None:
        self._state = _State()
        self._one_at_a_time = asyncio.Lock()

    @property
    def events(self) -> list[RecordedEvent]:
        """Every committed event, in position order."""
        return list(self._state.events)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[MemoryTransaction]:
        async with self._one_at_a_time:
            tx = MemoryTransaction(self._state.copy())
            yield tx
            self._state = tx.state  # reached only when the block raised nothing

    async def place(self, event: OrderPlaced, metadata: dict[str, Any]) -> int:
        async with self.transaction() as tx:
            return await tx.place(event, metadata)

    async def get(self, order_id: UUID) -> Order:
        async with self.transaction() as tx:
            return await tx.load(order_id, lock=False)

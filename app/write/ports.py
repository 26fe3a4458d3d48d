"""The write side's port: what the command handlers need from a store, and nothing more.

`OrderStore` (PostgreSQL, `app.write.store`) and `MemoryOrderStore` (`app.write.memory`)
both keep it; one contract suite (`tests/contract/event_store_contract.py`) proves that they
answer alike, so handler logic can be tested in milliseconds on the in-memory one.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from app.domain.events import Event, OrderPlaced
from app.domain.order import Order


@dataclass(frozen=True)
class StoredResponse:
    """A command's answer, as kept under its idempotency key."""

    status: int
    body: dict[str, Any]


class IdempotencyRace(Exception):
    """Another request with the same key committed first; look it up again."""


class OrderTransaction(Protocol):
    """One command's transaction: everything done through it commits together or not at all."""

    async def load(self, order_id: UUID, *, lock: bool) -> Order:
        """The order's current state (`OrderNotFound` if none); `lock` holds it to commit."""

    async def append(self, event: Event, version: int, metadata: dict[str, Any]) -> int:
        """Append `event` to its stream at `version` (`VersionConflict` if taken); return
        its global position."""

    async def place(self, event: OrderPlaced, metadata: dict[str, Any]) -> int:
        """`append` and `apply` of a new order's first event (version 1), at once."""

    async def apply(self, event: Event, version: int) -> None:
        """Bring the write model in line with the event just appended."""

    async def recall(self, key: str) -> tuple[str, StoredResponse] | None:
        """The request hash and answer kept under an idempotency key, if any."""

    async def remember(self, key: str, request_hash: str, response: StoredResponse) -> None:
        """Keep the answer under the key; `IdempotencyRace` if a twin kept one first."""


class OrderRepository(Protocol):
    """Opens write transactions and reads an order as the write model holds it."""

    def transaction(self) -> AbstractAsyncContextManager[OrderTransaction]:
        """One write transaction (an exception leaving the block rolls everything back)."""

    async def place(self, event: OrderPlaced, metadata: dict[str, Any]) -> int:
        """`OrderTransaction.place` as a whole transaction of its own."""

    async def get(self, order_id: UUID) -> Order:
        """The order now (`OrderNotFound` if none)."""

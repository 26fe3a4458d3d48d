"""The event store and normalized write model on PostgreSQL, changed in ONE transaction.

`OrderStore.transaction()` yields a `WriteTx`: the handlers load and lock the order row,
decide with the pure domain, then append the event, update `orders`/`order_lines`, record
the idempotency key and notify the projector; all of it commits or none of it does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from uuid import UUID

import asyncpg

from app.domain import errors
from app.domain.events import Event, OrderCancelled, OrderPlaced, OrderShipped, PlacedLine
from app.domain.order import Order, Status
from app.kernel import locks
from app.kernel.positions import NOTIFY_CHANNEL
from app.kernel.unavailable import POSTGRES_DOWN, unavailable_on_failure
from app.write.ports import IdempotencyRace, StoredResponse

Conn: TypeAlias = "asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any]"

SELECT_ORDER = """
SELECT order_id, customer_id, customer_name, status, total, version, placed_at,
       cancelled_at, cancel_reason, shipped_at, tracking_number
FROM orders WHERE order_id = $1"""
SELECT_LINES = """
SELECT sku, name, quantity, unit_price FROM order_lines WHERE order_id = $1 ORDER BY line_no"""
INSERT_EVENT = """
INSERT INTO events (stream_id, version, type, schema_version, data, metadata)
VALUES ($1, $2, $3, $4, $5, $6) RETURNING position"""
# The append and the projector's wake-up in one round trip (NOTIFY is sent at commit). The
# notice names the transaction and the stream's hash, so only the partition holding the
# stream wakes at once (projectors/log.py, `Waiter`).
APPEND_AND_NOTIFY = f"""
WITH appended AS ({INSERT_EVENT.strip()}, transaction_id, stream_hash)
SELECT position, pg_notify($7, position::text || ':' || transaction_id::text || ':'
                               || stream_hash::text) FROM appended"""
# A new order in one round trip instead of three: its first event with the projector's
# wake-up, its `orders` row and its lines. The lines' foreign key is checked when the whole
# statement ends (an after trigger), when the row is there.
PLACE_AND_NOTIFY = f"""
WITH appended AS ({INSERT_EVENT.strip()}, transaction_id, stream_hash),
placed AS (
  INSERT INTO orders (order_id, customer_id, customer_name, status, total, item_count, version,
                      placed_at)
  VALUES ($1, $8, $9, 'placed', $10, $11, 1, $12)),
lines AS (
  INSERT INTO order_lines (order_id, line_no, sku, name, quantity, unit_price)
  SELECT $1, line.line_no, line.sku, line.name, line.quantity, line.unit_price
  FROM unnest($13::text[], $14::text[], $15::integer[], $16::numeric[]) WITH ORDINALITY
       AS line (sku, name, quantity, unit_price, line_no))
SELECT position, pg_notify($7, position::text || ':' || transaction_id::text || ':'
                               || stream_hash::text) FROM appended"""
INSERT_ORDER = """
INSERT INTO orders (order_id, customer_id, customer_name, status, total, item_count, version,
                    placed_at)
VALUES ($1, $2, $3, 'placed', $4, $5, 1, $6)"""
INSERT_LINES = """
INSERT INTO order_lines (order_id, line_no, sku, name, quantity, unit_price)
VALUES ($1, $2, $3, $4, $5, $6)"""
UPDATE_CANCELLED = """
UPDATE orders SET status = 'cancelled', cancelled_at = $3, cancel_reason = $4, version = $2,
       updated_at = now()
WHERE order_id = $1"""
UPDATE_SHIPPED = """
UPDATE orders SET status = 'shipped', shipped_at = $3, tracking_number = $4, version = $2,
       updated_at = now()
WHERE order_id = $1"""
SELECT_IDEMPOTENCY = """
SELECT request_hash, response_status, response_body FROM idempotency_keys WHERE key = $1"""
# A twin that kept its answer first leaves this inserting nothing (no error, so no savepoint
# round trips are needed to keep the transaction usable).
INSERT_IDEMPOTENCY = """
INSERT INTO idempotency_keys (key, request_hash, response_status, response_body)
VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING"""


def placed_rows(e: OrderPlaced) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    """A new order's `orders` row and its `order_lines` rows (the parameters of
    `INSERT_ORDER` and `INSERT_LINES`; `PLACE_AND_NOTIFY` takes the same, as columns)."""
    order = (e.order_id, e.customer_id, e.customer_name, e.total, len(e.items), e.placed_at)
    lines = [(e.order_id, n, li.sku, li.name, li.quantity, li.unit_price)
             for n, li in enumerate(e.items, start=1)]
    return order, lines


@dataclass
class WriteModelRows:
    """The write-model rows a run of events produces, gathered per statement: the one
    mapping from events to `orders`/`order_lines` rows, for single commands and bulk loads."""

    orders: list[tuple[Any, ...]] = field(default_factory=list)
    lines: list[tuple[Any, ...]] = field(default_factory=list)
    cancels: list[tuple[Any, ...]] = field(default_factory=list)
    ships: list[tuple[Any, ...]] = field(default_factory=list)

    def add(self, e: Event, version: int) -> None:
        if isinstance(e, OrderPlaced):
            order, lines = placed_rows(e)
            self.orders.append(order)
            self.lines += lines
        elif isinstance(e, OrderCancelled):
            self.cancels.append((e.order_id, version, e.cancelled_at, e.reason))
        elif isinstance(e, OrderShipped):
            self.ships.append((e.order_id, version, e.shipped_at, e.tracking_number))

    async def write(self, conn: Conn) -> None:
        """Run each statement that has rows (in this order: lines need their order)."""
        for statement, rows in ((INSERT_ORDER, self.orders), (INSERT_LINES, self.lines),
                                (UPDATE_CANCELLED, self.cancels), (UPDATE_SHIPPED, self.ships)):
            if len(rows) == 1:
                await conn.execute(statement, *rows[0])
            elif rows:
                await conn.executemany(statement, rows)


def _taken(order_id: UUID, version: int) -> errors.VersionConflict:
    """The stream already has `version`: another command got there first."""
    return errors.VersionConflict(f"order {order_id} changed concurrently; reload and retry",
                                  {"order_id": str(order_id), "version": version})


def _order_from_rows(row: asyncpg.Record, lines: list[asyncpg.Record]) -> Order:
    return Order(
        order_id=row["order_id"], customer_id=row["customer_id"],
        customer_name=row["customer_name"],
        items=tuple(PlacedLine(sku=li["sku"], name=li["name"], quantity=li["quantity"],
                               unit_price=li["unit_price"]) for li in lines),
        total=row["total"], status=Status(row["status"]), version=row["version"],
        placed_at=row["placed_at"], cancelled_at=row["cancelled_at"],
        cancel_reason=row["cancel_reason"], shipped_at=row["shipped_at"],
        tracking_number=row["tracking_number"])


class WriteTx:
    """One command's transaction on PostgreSQL (an `OrderTransaction`)."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    @property
    def connection(self) -> Conn:
        """The transaction's connection, for bulk statements (app/write/bulk.py)."""
        return self._conn

    async def load(self, order_id: UUID, *, lock: bool) -> Order:
        """The order's current state; with lock, the row stays locked until commit."""
        query = SELECT_ORDER + (" FOR UPDATE" if lock else "")
        row = await self._conn.fetchrow(query, order_id)
        if row is None:
            raise errors.OrderNotFound(f"order {order_id} does not exist",
                                       {"order_id": str(order_id)})
        return _order_from_rows(row, await self._conn.fetch(SELECT_LINES, order_id))

    async def append(self, event: Event, version: int, metadata: dict[str, Any]) -> int:
        """Append one event to its stream at `version`; return its global position."""
        try:
            position: int = await self._conn.fetchval(
                APPEND_AND_NOTIFY, event.order_id, version, event.type, event.schema_version,
                event.payload(), metadata, NOTIFY_CHANNEL)
        except asyncpg.UniqueViolationError:
            raise _taken(event.order_id, version) from None
        return position

    async def place(self, event: OrderPlaced, metadata: dict[str, Any]) -> int:
        """Append a new order's first event and write its rows, in one statement."""
        order, lines = placed_rows(event)
        # the lines as columns, without the order id and number (the statement adds them);
        # an order has at least one line (the domain refuses none)
        _, _, skus, names, quantities, prices = (list(c) for c in zip(*lines, strict=True))
        try:
            position: int = await self._conn.fetchval(
                PLACE_AND_NOTIFY, event.order_id, 1, event.type, event.schema_version,
                event.payload(), metadata, NOTIFY_CHANNEL, *order[1:], skus, names,
                quantities, prices)
        except asyncpg.UniqueViolationError:  # its stream (and row) exist: placed before
            raise _taken(event.order_id, 1) from None
        return position

    async def apply(self, event: Event, version: int) -> None:
        """Bring the normalized tables in line with the event just appended."""
        rows = WriteModelRows()
        rows.add(event, version)
        await rows.write(self._conn)

    async def recall(self, key: str) -> tuple[str, StoredResponse] | None:
        """The request hash and response stored under an idempotency key, if any.

        Locks the key until this transaction ends first, so a twin in flight waits and then
        finds the first one's answer (a separate statement: it must see what committed while
        it waited).
        """
        # twins with one key queue here until the first one's transaction ends
        await self._conn.execute(locks.LOCK_IDEMPOTENCY_KEY, locks.IDEMPOTENCY_KEY_CLASS, key)
        row = await self._conn.fetchrow(SELECT_IDEMPOTENCY, key)
        if row is None:
            return None
        return row["request_hash"], StoredResponse(row["response_status"], row["response_body"])

    async def remember(self, key: str, request_hash: str, response: StoredResponse) -> None:
        """Store the response under the key; a concurrent twin makes this raise."""
        status = await self._conn.execute(INSERT_IDEMPOTENCY, key, request_hash,
                                          response.status, response.body)
        if status == "INSERT 0 0":  # the key was there: a twin committed it first
            raise IdempotencyRace(key)


class OrderStore:
    """Opens write transactions on the pool (an `OrderRepository`)."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Conn]:
        """A pooled connection; PostgreSQL being down (also while a transaction opens or
        commits) surfaces as `ServiceUnavailable`, never as a driver error."""
        with unavailable_on_failure():
            async with self._pool.acquire() as conn:
                try:
                    yield conn
                except POSTGRES_DOWN:
                    conn.terminate()  # its protocol state is unknown: never hand it out again
                    raise

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[WriteTx]:
        """One write transaction."""
        async with self._connection() as conn, conn.transaction():
            yield WriteTx(conn)

    async def place(self, event: OrderPlaced, metadata: dict[str, Any]) -> int:
        """A new order with nothing else to keep: `PLACE_AND_NOTIFY` alone, which PostgreSQL
        runs as one transaction, without the BEGIN and COMMIT round trips."""
        async with self._connection() as conn:
            return await WriteTx(conn).place(event, metadata)

    async def get(self, order_id: UUID) -> Order:
        """The order as the write model holds it now (no lock)."""
        async with self.transaction() as tx:
            return await tx.load(order_id, lock=False)

"""The write store on real PostgreSQL: atomicity, concurrency, idempotency, migrations."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any, TypeAlias
from uuid import UUID, uuid4

import asyncpg
import pytest

from app.domain import errors
from app.domain.commands import CancelOrder, OrderLine, PlaceOrder, ShipOrder
from app.domain.events import OrderShipped
from app.write import handlers
from app.write.handlers import CommandContext
from app.write.store import OrderStore
from infra.migrate import migrate

Pool: TypeAlias = "asyncpg.Pool[Any]"


def ctx(**kw: Any) -> CommandContext:
    return CommandContext(correlation_id=str(uuid4()), **kw)


def order_cmd(customer: str = "c1", lines: int = 2) -> PlaceOrder:
    return PlaceOrder(customer, tuple(OrderLine(f"SKU-{i}", f"Item {i}", i + 1, Decimal("2.50"))
                                      for i in range(lines)), "Ada")


async def counts(pool: Pool) -> tuple[int, int, int]:
    row = await pool.fetchrow("SELECT (SELECT count(*) FROM events) e, "
                              "(SELECT count(*) FROM orders) o, "
                              "(SELECT count(*) FROM order_lines) l")
    assert row is not None
    return row["e"], row["o"], row["l"]


async def test_place_writes_event_order_and_lines_together(clean_db: Pool) -> None:
    store = OrderStore(clean_db)
    result = await handlers.place_order(store, order_cmd(lines=3), ctx())
    assert result.status == 201
    assert await counts(clean_db) == (1, 1, 3)
    row = await clean_db.fetchrow("SELECT stream_id, version, type, data, metadata, "
                                  "transaction_id::text::bigint > 0 AS has_xid FROM events")
    assert row is not None
    assert (str(row["stream_id"]), row["version"], row["type"]) == (
        result.body["order_id"], 1, "OrderPlaced")
    assert row["data"]["total"] == "15.00" and row["has_xid"]
    assert row["metadata"]["correlation_id"]


async def test_failure_midway_leaves_neither_event_nor_rows(clean_db: Pool) -> None:
    store = OrderStore(clean_db)
    placed = await handlers.place_order(store, order_cmd(), ctx())
    order_id = placed.body["order_id"]

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with store.transaction() as tx:
            current = await tx.load(UUID(order_id), lock=True)
            event = OrderShipped(order_id=current.order_id, tracking_number="T",
                                 shipped_at=current.placed_at)
            await tx.append(event, 2, {})
            await tx.apply(event, 2)
            raise Boom
    assert await counts(clean_db) == (1, 1, 2)
    status = await clean_db.fetchval("SELECT status FROM orders")
    assert status == "placed"


async def test_append_at_taken_version_is_a_version_conflict(clean_db: Pool) -> None:
    store = OrderStore(clean_db)
    placed = await handlers.place_order(store, order_cmd(), ctx())
    current = await store.get(UUID(placed.body["order_id"]))
    event = OrderShipped(order_id=current.order_id, tracking_number="T",
                         shipped_at=current.placed_at)
    with pytest.raises(errors.VersionConflict):
        async with store.transaction() as tx:
            await tx.append(event, 1, {})  # version 1 is taken by OrderPlaced


async def test_twenty_concurrent_cancels_have_exactly_one_winner(clean_db: Pool) -> None:
    store = OrderStore(clean_db)
    placed = await handlers.place_order(store, order_cmd(), ctx())
    order_id = UUID(placed.body["order_id"])

    async def attempt(i: int) -> str:
        try:
            await handlers.cancel_order(store, CancelOrder(order_id, f"r{i}"), ctx())
        except errors.DomainError as exc:
            return exc.code
        return "ok"

    outcomes = await asyncio.gather(*(attempt(i) for i in range(20)))
    assert outcomes.count("ok") == 1
    assert set(outcomes) - {"ok"} <= {"AlreadyCancelled", "VersionConflict"}
    assert await clean_db.fetchval("SELECT count(*) FROM events WHERE type='OrderCancelled'") == 1


async def test_concurrent_ship_and_cancel_never_both_succeed(clean_db: Pool) -> None:
    store = OrderStore(clean_db)
    for _ in range(10):
        placed = await handlers.place_order(store, order_cmd(), ctx())
        order_id = UUID(placed.body["order_id"])
        results = await asyncio.gather(
            handlers.cancel_order(store, CancelOrder(order_id, "r"), ctx()),
            handlers.ship_order(store, ShipOrder(order_id, "T"), ctx()),
            return_exceptions=True)
        assert sum(not isinstance(r, Exception) for r in results) == 1
        assert all(isinstance(r, errors.Conflict | errors.VersionConflict)
                   for r in results if isinstance(r, Exception))


async def test_idempotent_replay_appends_nothing(clean_db: Pool) -> None:
    store = OrderStore(clean_db)
    first = await handlers.place_order(store, order_cmd(), ctx(idempotency_key="k1",
                                                             request_hash="h1"))
    again = await handlers.place_order(store, order_cmd(), ctx(idempotency_key="k1",
                                                             request_hash="h1"))
    assert again == first
    assert await counts(clean_db) == (1, 1, 2)
    with pytest.raises(errors.IdempotencyKeyReused):
        await handlers.place_order(store, order_cmd(), ctx(idempotency_key="k1",
                                                         request_hash="other"))


async def test_concurrent_twins_with_one_key_append_once(clean_db: Pool) -> None:
    store = OrderStore(clean_db)
    results = await asyncio.gather(*(
        handlers.place_order(store, order_cmd(), ctx(idempotency_key="twin", request_hash="h"))
        for _ in range(8)))
    assert len({r.body["order_id"] for r in results}) == 1
    assert (await counts(clean_db))[0] == 1


async def test_migrations_run_twice_are_a_no_op(database_url: str, clean_db: Pool) -> None:
    assert await migrate(database_url) == []
    applied = await clean_db.fetchval("SELECT count(*) FROM schema_migrations")
    assert applied >= 1


async def test_migrate_builds_the_partition_index_for_the_deployments_partition_count(
        database_url: str, clean_db: Pool) -> None:
    # the projectors' role may not create indexes: a P other than the default's is prepared
    await clean_db.execute("DROP INDEX IF EXISTS events_partition_16")
    assert await migrate(database_url, partitions=16) == []
    assert await clean_db.fetchval("SELECT to_regclass('events_partition_16') IS NOT NULL")

"""The PostgreSQL role of each kind of process: what it may do, and what it is refused.

Each process's pool is opened the way the process opens it (`bootstrap.open_pool`), so the
test sees the role that process really runs as. Without configured passwords (a trusting
local server) the same grants are checked through `SET ROLE` on the admin connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from uuid import uuid4

import asyncpg
import pytest

from app.kernel import bootstrap
from app.kernel.credentials import PG_ROLES, CredentialsRefused, with_userinfo
from app.kernel.positions import Checkpoint, PostgresCheckpoints
from app.kernel.settings import Settings
from app.write import handlers
from app.write.handlers import CommandContext
from app.write.store import OrderStore
from tests.integration.test_write_store import order_cmd

Conn = asyncpg.Connection  # type: ignore[type-arg]
KIND_ROLES = {("api", "read"): "orders_reader", ("api", "write"): "orders_writer",
              ("projector", "all"): "orders_projector", ("rebuild", "all"): "orders_rebuild"}


@asynccontextmanager
async def connected_as(settings: Settings, kind: str, role: str) -> AsyncIterator[Conn]:
    """A connection as the role this kind of process uses."""
    configured = settings.model_copy(update={"role": role if kind == "api" else "all"})
    dsn = bootstrap.database_url(configured, kind)  # type: ignore[arg-type]
    conn = await asyncpg.connect(dsn)
    try:
        if dsn == settings.database_url:  # no password configured: the admin takes the role
            await conn.execute(f"SET ROLE {KIND_ROLES[(kind, role)]}")
        yield conn
    finally:
        await conn.close()


async def refused(work: Awaitable[Any]) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await work


async def placed_order(pool: asyncpg.Pool[Any]) -> str:
    result = await handlers.place_order(OrderStore(pool), order_cmd(),
                                        CommandContext(correlation_id=str(uuid4())))
    return str(result.body["order_id"])


async def test_read_process_reads_positions_and_cannot_append_an_event(
        settings: Settings, clean_db: asyncpg.Pool[Any]) -> None:
    await placed_order(clean_db)
    async with connected_as(settings, "api", "read") as conn:
        assert await conn.fetchval("SELECT max(position) FROM events") == 1
        assert await conn.fetchval("SELECT count(*) FROM projection_checkpoints") == 0
        await refused(conn.execute(
            "INSERT INTO events (stream_id, version, type, data) "
            "VALUES ($1, 1, 'OrderPlaced', '{}')", uuid4()))
        await refused(conn.fetchval("SELECT data::text FROM events LIMIT 1"))
        await refused(conn.fetchval("SELECT customer_id FROM orders LIMIT 1"))
        await refused(conn.execute("DELETE FROM projection_checkpoints"))


async def test_write_process_appends_and_cannot_rewrite_the_log_or_checkpoints(
        settings: Settings, clean_db: asyncpg.Pool[Any]) -> None:
    async with connected_as(settings, "api", "write") as conn:
        position = await conn.fetchval(
            "INSERT INTO events (stream_id, version, type, data) "
            "VALUES ($1, 1, 'OrderPlaced', '{}') RETURNING position", uuid4())
        assert position == 1
        await refused(conn.execute("UPDATE events SET type = 'OrderCancelled'"))
        await refused(conn.execute("DELETE FROM events"))
        await refused(conn.execute("TRUNCATE events"))
        await refused(conn.execute(
            "INSERT INTO projection_checkpoints (name, transaction_id, position) "
            "VALUES ('search:x', '1', 1)"))
        await refused(conn.execute("DROP TABLE orders"))


async def test_projector_reads_the_log_writes_checkpoints_and_cannot_change_an_order(
        settings: Settings, clean_db: asyncpg.Pool[Any]) -> None:
    order_id = await placed_order(clean_db)
    async with connected_as(settings, "projector", "all") as conn:
        assert await conn.fetchval("SELECT count(*) FROM events") == 1
        await conn.execute("INSERT INTO projection_checkpoints (name, transaction_id, position) "
                           "VALUES ('search:x', '1', 1)")
        await conn.execute("INSERT INTO dead_letters (projection, position, error) "
                           "VALUES ('search', 1, 'rejected')")
        await refused(conn.execute("UPDATE orders SET status = 'shipped' WHERE order_id = $1",
                                   order_id))
        await refused(conn.fetchval("SELECT status FROM orders LIMIT 1"))
        await refused(conn.execute(
            "INSERT INTO events (stream_id, version, type, data) "
            "VALUES ($1, 2, 'OrderShipped', '{}')", order_id))
        await refused(conn.execute("DELETE FROM events"))


async def test_rebuild_queues_jobs_and_cannot_touch_the_write_model(
        settings: Settings, clean_db: asyncpg.Pool[Any]) -> None:
    async with connected_as(settings, "rebuild", "all") as conn:
        await conn.execute("INSERT INTO reindex_jobs (id, target, state) "
                           "VALUES ($1, 'search', 'queued')", uuid4())
        await conn.execute("UPDATE reindex_jobs SET state = 'abandoned'")
        await refused(conn.execute("DELETE FROM idempotency_keys"))
        await refused(conn.execute("UPDATE orders SET total = 0"))


async def test_process_pools_do_their_own_work(settings: Settings,
                                               clean_db: asyncpg.Pool[Any]) -> None:
    """The real pools: the write API places an order, the projector saves a checkpoint."""
    if settings.pg_writer_password is None or settings.pg_projector_password is None:
        pytest.skip("no process passwords configured (ORDERS_PG_*_PASSWORD)")
    writer = await bootstrap.open_pool(settings.model_copy(update={"role": "write"}), "api")
    projector = await bootstrap.open_pool(settings, "projector")
    try:
        await placed_order(writer)
        await PostgresCheckpoints(projector).save("search:x", Checkpoint(1, 1), "log")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await placed_order(projector)
    finally:
        await writer.close()
        await projector.close()
    assert await clean_db.fetchval("SELECT count(*) FROM orders") == 1


async def test_no_process_role_is_privileged(clean_db: asyncpg.Pool[Any]) -> None:
    rows = await clean_db.fetch(
        "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles "
        "WHERE rolname = ANY($1::text[])", list(PG_ROLES.values()))
    assert {r["rolname"] for r in rows} == set(PG_ROLES.values())
    assert not any(r["rolsuper"] or r["rolcreaterole"] or r["rolcreatedb"] or r["rolbypassrls"]
                   for r in rows)


async def test_a_wrong_password_is_one_sentence_naming_postgres(settings: Settings) -> None:
    if settings.pg_writer_password is None:
        pytest.skip("no process passwords configured (ORDERS_PG_*_PASSWORD)")
    wrong = settings.model_copy(update={"role": "write", "pg_writer_password": None})
    probe: Callable[[], Awaitable[Conn]] = lambda: asyncpg.connect(  # noqa: E731
        with_userinfo(settings.database_url, "orders_writer", "not-the-password"))
    try:
        await (await probe()).close()
        pytest.skip("this server trusts every local connection (no password is checked)")
    except asyncpg.InvalidPasswordError:
        pass
    from pydantic import SecretStr

    wrong.pg_writer_password = SecretStr("not-the-password")
    with pytest.raises(CredentialsRefused) as caught:
        await bootstrap.open_pool(wrong, "api")
    message = str(caught.value)
    assert message.startswith("PostgreSQL refused user 'orders_writer'")
    assert "ORDERS_PG_WRITER_PASSWORD" in message and "not-the-password" not in message

"""Apply the SQL files in infra/migrations in name order, each once, in its own transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import asyncpg

from app.kernel import locks
from app.kernel.credentials import PG_ROLES, scram_verifier
from app.kernel.partitions import DEFAULT_PARTITIONS, partition_index_sql
from app.kernel.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"
# The process roles and their grants, applied after the migrations on every run.
ROLES = Path(__file__).parent / "roles.sql"

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


# The log restored into another cluster: its rows carry the old cluster's transaction ids,
# which new transactions here may sort below (so the projector would skip them). Rebase:
# every stored event gets one transaction id below any to come (their order is then their
# position, which keeps each order's events in stream order), and a new epoch, so every read
# model's checkpoint is recognised as foreign and the read model is rebuilt from the log.
REBASE = [
    "LOCK TABLE events IN EXCLUSIVE MODE",
    "UPDATE events SET transaction_id = '1'::xid8 WHERE transaction_id <> '1'::xid8",
    """UPDATE log_identity SET cluster = (SELECT system_identifier::text FROM pg_control_system()),
           epoch = gen_random_uuid(), since = now()""",
    "DELETE FROM projection_checkpoints",
    """UPDATE reindex_jobs SET state = 'abandoned', finished_at = now(), updated_at = now(),
           error = 'the log was rebased onto another cluster'
       WHERE state IN ('queued', 'loading', 'catching_up', 'swapping')""",
]
MOVED = """
SELECT l.cluster <> c.system_identifier::text FROM log_identity l, pg_control_system() c"""


# Only the verifier travels: the password never appears in a statement the server may log.
SET_PASSWORD = "SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', $1::text, $2::text)"


def role_passwords(settings: Settings) -> dict[str, str]:
    """The configured password of each process role (roles without one are left alone)."""
    found = {role: getattr(settings, field) for field, role in PG_ROLES.items()}
    return {role: secret.get_secret_value() for role, secret in found.items() if secret}


async def set_passwords(conn: asyncpg.Connection[Any], passwords: Mapping[str, str]) -> None:
    """Give each role LOGIN and its password (stored as a SCRAM verifier)."""
    for role, password in passwords.items():
        statement = await conn.fetchval(SET_PASSWORD, role, scram_verifier(password))
        for attempt in range(5):
            try:
                await conn.execute(statement)
                break
            except asyncpg.InternalServerError as exc:
                # Roles are cluster-wide: a migration of another database may be setting
                # the same role's password at this instant ("tuple concurrently updated").
                if "concurrently" not in str(exc) or attempt == 4:
                    raise
                await asyncio.sleep(0.1 * (attempt + 1))


async def _apply_roles(conn: asyncpg.Connection[Any], passwords: Mapping[str, str]) -> None:
    async with conn.transaction():
        await conn.execute(ROLES.read_text())
    await set_passwords(conn, passwords)


async def apply_roles(dsn: str, passwords: Mapping[str, str]) -> None:
    """Only the roles step of `migrate` (roles.sql and passwords). Roles live in the cluster,
    not in a database: a database dump restored into another cluster arrives without them."""
    conn = await asyncpg.connect(dsn)
    try:
        await _apply_roles(conn, passwords)
    finally:
        await conn.close()


async def migrate(dsn: str, passwords: Mapping[str, str] | None = None,
                  partitions: int = DEFAULT_PARTITIONS) -> list[str]:
    """Apply pending migrations; return the names applied now (empty when up to date).

    A log that now lives on another PostgreSQL cluster is rebased (see REBASE); that is
    reported as the step `rebase-log`. Then, on every run, the process roles and their
    grants (`roles.sql`), and each role in `passwords` gets LOGIN and its password
    (`role_passwords(settings)`), so a changed secret takes. Last, the index a partition's
    read uses for `partitions` (ORDERS_PARTITIONS), built without blocking appends: the
    projectors' role may not create indexes, so a deployment's P is prepared here.
    """
    conn = await asyncpg.connect(dsn)
    applied: list[str] = []
    try:
        await conn.execute(locks.LOCK, locks.MIGRATIONS)
        await conn.execute(CREATE_TABLE)
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        for path in sorted(MIGRATIONS.glob("*.sql")):
            if path.name in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", path.name)
            applied.append(path.name)
        if await conn.fetchval(MOVED):
            async with conn.transaction():
                for statement in REBASE:
                    await conn.execute(statement)
            applied.append("rebase-log")
        await _apply_roles(conn, passwords or {})
        if partitions > 1:
            await conn.execute(partition_index_sql(partitions))  # IF NOT EXISTS
    finally:
        await conn.execute(locks.UNLOCK, locks.MIGRATIONS)
        await conn.close()
    return applied

"""Apply the SQL files in infra/migrations in name order, each once, in its own transaction."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from app.kernel import locks

MIGRATIONS = Path(__file__).parent / "migrations"

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


async def migrate(dsn: str) -> list[str]:
    """Apply pending migrations; return the names applied now (empty when up to date).

    A log that now lives on another PostgreSQL cluster is rebased (see REBASE); that is
    reported as the step `rebase-log`.
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
    finally:
        await conn.execute(locks.UNLOCK, locks.MIGRATIONS)
        await conn.close()
    return applied

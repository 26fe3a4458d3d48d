"""Where each projection stands: checkpoint, log head, lag in events and seconds, state."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis

from app.kernel.positions import Checkpoint, LogPositions, PostgresCheckpoints
from app.kernel.readmodels import dashboard_checkpoint, search_checkpoint

SELECT_STATUS = """
SELECT s.name, s.state, s.detail, s.owner, s.updated_at,
       (SELECT count(*) FROM dead_letters d WHERE d.projection = s.name) AS dead_letters
FROM projection_status s"""


async def _entry(log: LogPositions, name: str, checkpoint: Checkpoint | None, head: int,
                 row: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name, "state": row["state"] if row else "never_ran", "head": head,
        "dead_letters": row["dead_letters"] if row else 0,
        "owner": row["owner"] if row else None,
        "updated_at": row["updated_at"].isoformat() if row else None,
        "detail": row["detail"] if row else {},
    }
    if checkpoint is None:  # the read model's store did not answer
        entry.update(state="sink_down", position=None, lag_events=None, lag_seconds=None)
        return entry
    pending = await log.pending(checkpoint)
    lag_s = 0.0
    if pending.oldest is not None:
        lag_s = max(0.0, (datetime.now(UTC) - pending.oldest).total_seconds())
    entry.update(position=checkpoint.position, transaction_id=checkpoint.tx,
                 lag_events=pending.events, lag_seconds=round(lag_s, 3))
    return entry


async def projection_status(pool: asyncpg.Pool[Any], es: AsyncElasticsearch, redis: Redis,
                            alias: str, namespace: str) -> list[dict[str, Any]]:
    """One entry per projection (search, dashboard)."""
    log = LogPositions(pool)
    rows = {r["name"]: r for r in await pool.fetch(SELECT_STATUS)}
    head = await log.head()
    checkpoints: dict[str, Checkpoint | None] = {}
    try:
        checkpoints["search"] = await search_checkpoint(es, PostgresCheckpoints(pool), alias)
    except Exception:
        checkpoints["search"] = None
    try:
        checkpoints["dashboard"] = await dashboard_checkpoint(redis, namespace)
    except Exception:
        checkpoints["dashboard"] = None
    return [await _entry(log, name, cp, head, rows.get(name)) for name, cp in checkpoints.items()]

"""Where each projection stands: checkpoint, log head, lag in events and seconds, state.

A partitioned projection reports its watermark (every partition is complete through it) as
its position, one state for all partitions (the first that is not running, if any), and
each partition's own state and owner under `partitions`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis

from app.kernel.partitions import DEFAULT_PARTITIONS
from app.kernel.positions import Checkpoint, LogPositions, PostgresCheckpoints
from app.kernel.readmodels import dashboard_checkpoint, search_checkpoint
from app.kernel.status import SELECT_ALL


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


def _merged(name: str, rows: dict[str, Any]) -> Any:
    """The status row of `name`, or one row standing for all its partitions' rows."""
    parts = sorted((key, row) for key, row in rows.items() if key.startswith(f"{name}:p"))
    if not parts:
        return rows.get(name)
    states = [row["state"] for _, row in parts]
    worst = next((state for state in states if state not in ("running", "catching_up")),
                 states[0])
    # The worst partition's own detail (what stalls it, by whom) stands for the projection.
    shown = next(row for _, row in parts if row["state"] == worst)
    detail = {**{k: v for k, v in shown["detail"].items() if k != "position"},
              "partitions": {key.split(":", 1)[1]: {"state": row["state"], "owner": row["owner"],
                                                    "position": row["detail"].get("position")}
                             for key, row in parts}}
    return {"state": worst, "detail": detail, "owner": None,
            "updated_at": max(row["updated_at"] for _, row in parts),
            "dead_letters": max(row["dead_letters"] for _, row in parts)}


async def projection_status(pool: asyncpg.Pool[Any], es: AsyncElasticsearch, redis: Redis,
                            alias: str, namespace: str,
                            partitions: int = DEFAULT_PARTITIONS) -> list[dict[str, Any]]:
    """One entry per projection (search, dashboard)."""
    log = LogPositions(pool)
    every = {r["name"]: r for r in await pool.fetch(SELECT_ALL)}
    rows = {name: _merged(name, every) for name in ("search", "dashboard")}
    head = await log.head()
    checkpoints: dict[str, Checkpoint | None] = {}
    try:
        checkpoints["search"] = await search_checkpoint(es, PostgresCheckpoints(pool), alias,
                                                        partitions)
    except Exception:
        checkpoints["search"] = None
    try:
        checkpoints["dashboard"] = await dashboard_checkpoint(redis, namespace, partitions)
    except Exception:
        checkpoints["dashboard"] = None
    return [await _entry(log, name, cp, head, rows.get(name)) for name, cp in checkpoints.items()]

"""Rebuild jobs as rows: queued by the API or the CLI, run by a projector process.

States: queued -> loading -> catching_up -> swapping -> done; or failed / abandoned.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

import asyncpg

from app.domain.errors import Conflict

Target = Literal["search", "dashboard"]
ACTIVE = ("queued", "loading", "catching_up", "swapping")
COLUMNS = """id, target, state, new_target, old_target, start_tx::text AS start_tx,
    start_position, resume_after, events_total, events_read, docs_written, keep_old, error,
    created_at, updated_at, finished_at"""


class RebuildRunning(Conflict):
    code = "RebuildRunning"


async def queue(pool: asyncpg.Pool[Any], target: Target, keep_old: bool = False) -> uuid.UUID:
    """Queue a rebuild; refused while another of the same target is unfinished."""
    job_id = uuid.uuid4()
    try:
        await pool.execute("INSERT INTO reindex_jobs (id, target, state, keep_old) "
                           "VALUES ($1, $2, 'queued', $3)", job_id, target, keep_old)
    except asyncpg.UniqueViolationError:
        running = await active(pool, target)
        raise RebuildRunning(f"a {target} rebuild is already running",
                             {"job_id": str(running["id"]) if running else None}) from None
    return job_id


async def get(pool: asyncpg.Pool[Any], job_id: uuid.UUID) -> dict[str, Any] | None:
    row = await pool.fetchrow(f"SELECT {COLUMNS} FROM reindex_jobs WHERE id = $1", job_id)
    return dict(row) if row else None


async def active(pool: asyncpg.Pool[Any], target: Target) -> dict[str, Any] | None:
    """The unfinished job of `target`, if any."""
    row = await pool.fetchrow(f"SELECT {COLUMNS} FROM reindex_jobs WHERE target = $1 "
                              "AND state = ANY($2::text[])", target, list(ACTIVE))
    return dict(row) if row else None


async def next_queued(pool: asyncpg.Pool[Any]) -> dict[str, Any] | None:
    row = await pool.fetchrow(f"SELECT {COLUMNS} FROM reindex_jobs WHERE state = 'queued' "
                              "ORDER BY created_at LIMIT 1")
    return dict(row) if row else None


async def update(pool: asyncpg.Pool[Any], job_id: uuid.UUID, **fields: Any) -> None:
    """Set columns of a job (names are ours, never from input)."""
    names = list(fields)
    assignments = ", ".join(
        f"{name} = ${n}" + ("::text::xid8" if name == "start_tx" else "")
        for n, name in enumerate(names, start=2))
    finished = ", finished_at = now()" if fields.get("state") in ("done", "failed",
                                                                 "abandoned") else ""
    await pool.execute(f"UPDATE reindex_jobs SET {assignments}, updated_at = now(){finished} "
                       "WHERE id = $1", job_id, *fields.values())


def public(job: dict[str, Any]) -> dict[str, Any]:
    """The job as the API shows it."""
    total = job["events_total"] or 0
    return {
        "job_id": str(job["id"]), "target": job["target"], "state": job["state"],
        "new_target": job["new_target"], "old_target": job["old_target"],
        "events_read": job["events_read"], "events_total": total,
        "docs_written": job["docs_written"],
        "progress": round(min(1.0, job["events_read"] / total), 4) if total else None,
        "error": job["error"],
        "created_at": job["created_at"].isoformat(),
        "updated_at": job["updated_at"].isoformat(),
        "finished_at": job["finished_at"].isoformat() if job["finished_at"] else None,
    }

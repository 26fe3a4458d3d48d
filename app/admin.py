"""Operations: `/admin/projections` (where each projection stands) and `/metrics`."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Gauge, generate_latest
from pydantic import BaseModel, ConfigDict, StrictBool

from app.auth import Authenticator, require
from app.deps import ServicesDep
from app.kernel import reindex_jobs
from app.openapi import errors
from app.read.projections import projection_status

# Every call here: scope checks (401/403) and PostgreSQL (503 when it is down).
router = APIRouter(tags=["operations"], responses=errors(401, 403, 503))

LAG_EVENTS = Gauge("orders_api_projection_lag_events", "Events a projection has not applied",
                   ["projection"])
LAG_SECONDS = Gauge("orders_api_projection_lag_seconds", "Age of its oldest unapplied event",
                    ["projection"])


async def _status(services: ServicesDep) -> list[dict[str, Any]]:
    s = services.settings
    return await projection_status(services.pool, services.es, services.redis,
                                   s.search_alias, s.dashboard_namespace, s.partitions)


ReadScope = Annotated[None, Depends(require("read"))]


def _without_sql(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry without another session's SQL text (it can hold secrets, e.g. a password)."""
    stalled_by = entry.get("detail", {}).get("stalled_by")
    if not isinstance(stalled_by, dict) or "query" not in stalled_by:
        return entry
    shown = {k: v for k, v in stalled_by.items() if k != "query"}
    return {**entry, "detail": {**entry["detail"], "stalled_by": shown}}


@router.get("/admin/projections")
async def projections(request: Request, services: ServicesDep,
                      _: ReadScope) -> dict[str, Any]:
    """Per projection: position, log head, lag in events and seconds, state, dead letters.

    When stalled, the session holding the log back (pid, age, state); its SQL text only
    with the admin scope.
    """
    status = await _status(services)
    auth: Authenticator = request.app.state.auth
    if not auth.allows(request.headers.get("authorization"), "admin"):
        status = [_without_sql(entry) for entry in status]
    return {"projections": status}


@router.get("/metrics", response_class=Response, responses={200: {
    "description": "Prometheus text exposition format",
    "content": {"text/plain": {"schema": {"type": "string"}}}}})
async def metrics(services: ServicesDep, _: ReadScope) -> Response:
    """Prometheus text: request-independent gauges of projection lag, refreshed on scrape."""
    for entry in await _status(services):
        if entry["lag_events"] is not None:
            LAG_EVENTS.labels(entry["name"]).set(entry["lag_events"])
            LAG_SECONDS.labels(entry["name"]).set(entry["lag_seconds"])
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


async def require_admin(request: Request) -> None:
    """Admin calls need an admin-scoped API key or `ORDERS_ADMIN_TOKEN` (see app/auth.py)."""
    auth: Authenticator = request.app.state.auth
    request.state.actor = auth.check(request.headers.get("authorization"), "admin")


AdminDep = Annotated[None, Depends(require_admin)]


class ReindexIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: Literal["search", "dashboard"]
    keep_old: StrictBool = False


@router.post("/admin/reindex", status_code=202, responses=errors(
    409, 413, 422, s409="`RebuildRunning`: a rebuild of that target is unfinished"))
async def start_reindex(body: ReindexIn, services: ServicesDep,
                        _: AdminDep) -> dict[str, Any]:
    """Queue a zero-downtime rebuild; a running projector process picks it up."""
    job_id = await reindex_jobs.queue(services.pool, body.target, body.keep_old)
    return {"job_id": str(job_id), "status_url": f"/admin/reindex/{job_id}"}


@router.get("/admin/reindex/{job_id}", responses=errors(
    404, 422, s404="`not_found`: no such rebuild job"))
async def reindex_status(job_id: uuid.UUID, services: ServicesDep,
                         _: AdminDep) -> dict[str, Any]:
    """A rebuild's state and progress."""
    job = await reindex_jobs.get(services.pool, job_id)
    if job is None:
        raise HTTPException(404, f"no rebuild job {job_id}")
    return reindex_jobs.public(job)

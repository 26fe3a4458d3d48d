"""Operations: `/admin/projections` (where each projection stands) and `/metrics`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Gauge, generate_latest

from app.deps import ServicesDep
from app.read.projections import projection_status

router = APIRouter(tags=["operations"])

LAG_EVENTS = Gauge("orders_api_projection_lag_events", "Events a projection has not applied",
                   ["projection"])
LAG_SECONDS = Gauge("orders_api_projection_lag_seconds", "Age of its oldest unapplied event",
                    ["projection"])


async def _status(services: ServicesDep) -> list[dict[str, Any]]:
    s = services.settings
    return await projection_status(services.pool, services.es, services.redis,
                                   s.search_alias, s.dashboard_namespace)


@router.get("/admin/projections")
async def projections(services: ServicesDep) -> dict[str, Any]:
    """Per projection: position, log head, lag in events and seconds, state, dead letters."""
    return {"projections": await _status(services)}


@router.get("/metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    """Prometheus text: request-independent gauges of projection lag, refreshed on scrape."""
    for entry in await _status(services):
        if entry["lag_events"] is not None:
            LAG_EVENTS.labels(entry["name"]).set(entry["lag_events"])
            LAG_SECONDS.labels(entry["name"]).set(entry["lag_seconds"])
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

"""`GET /health`: whether each backing service answers, within a short bound."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.deps import ServicesDep

router = APIRouter(tags=["operations"])
PROBE_TIMEOUT_S = 2.0


async def _probe(check: Awaitable[Any]) -> dict[str, Any]:
    try:
        await asyncio.wait_for(check, PROBE_TIMEOUT_S)
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True}


@router.get("/health")
async def health(services: ServicesDep) -> JSONResponse:
    """200 when every backing service answers, else 503; each service reported apart."""
    results = await asyncio.gather(
        _probe(services.pool.fetchval("SELECT 1")),
        _probe(services.redis.ping()),
        _probe(services.es.cluster.health()),
    )
    checks = dict(zip(("postgres", "redis", "elasticsearch"), results, strict=True))
    ok = all(c["ok"] for c in checks.values())
    return JSONResponse({"status": "ok" if ok else "degraded", "services": checks},
                        status_code=200 if ok else 503)

"""`create_app(role=...)`: the lifespan opens pools and clients, then routers are mounted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from elasticsearch import AsyncElasticsearch
from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from redis.asyncio import Redis

from app import admin, errors, health, web
from app.auth import Authenticator, parse_keys, require
from app.deps import Services
from app.middleware import BodyLimit, CorrelationId
from app.read import router as read_router
from app.read.wiring import ReadSide
from app.settings import Role, Settings, load_settings
from app.write import router as write_router
from app.write.pool import create_pool
from app.write.store import OrderStore


def create_app(settings: Settings | None = None, role: Role | None = None) -> FastAPI:
    """Build the API; `role` picks the routers (`write`, `read` or `all`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        config = settings or load_settings()
        pool = await create_pool(config.database_url, min_size=config.pool_min_size,
                                 max_size=config.pool_max_size,
                                 command_timeout=config.command_timeout_s,
                                 session_state=False)  # the API leaves none behind
        es = AsyncElasticsearch(config.elasticsearch_hosts, request_timeout=10)
        redis = Redis.from_url(config.redis_url, socket_timeout=5, socket_connect_timeout=2)
        app.state.services = Services(config, pool, es, redis, OrderStore(pool))
        app.state.auth = Authenticator(parse_keys(config.api_keys), config.admin_token)
        read = ReadSide.open(config, pool, es, redis) if chosen in ("all", "read") else None
        app.state.read = read
        try:
            yield
        finally:
            if read is not None:
                await read.close()
            await pool.close()
            await es.close()
            await redis.aclose()

    app = FastAPI(
        title="Orders CQRS platform",
        version="1.0.0",
        description="Commands go to PostgreSQL (write model + event log in one transaction); "
                    "reads come from Elasticsearch and Redis projections.",
        lifespan=lifespan,
    )
    errors.install(app)
    chosen = role or (settings.role if settings else "all")
    if chosen in ("all", "write"):
        app.include_router(write_router.router, dependencies=[Depends(require("write"))])
    if chosen in ("all", "read"):
        app.include_router(read_router.router, dependencies=[Depends(require("read"))])
        app.include_router(web.router)
        app.mount("/static", StaticFiles(directory=web.STATIC), name="static")
    app.include_router(health.router)
    app.include_router(admin.router)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes if settings else 1 << 20)
    app.add_middleware(CorrelationId)
    return app

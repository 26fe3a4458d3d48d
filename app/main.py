"""`create_app(role=...)`: the lifespan opens pools and clients, then routers are mounted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from app import admin, errors, health, web
from app.auth import Authenticator, parse_keys, require
from app.deps import Services
from app.kernel.bootstrap import connect
from app.kernel.settings import Role, Settings, load_settings
from app.middleware import BodyLimit, CorrelationId
from app.read import router as read_router
from app.read.fast import ReadFastPath
from app.read.wiring import ReadSide
from app.write import router as write_router
from app.write.store import OrderStore


def create_app(settings: Settings | None = None, role: Role | None = None) -> FastAPI:
    """Build the API; `role` picks the routers (`write`, `read` or `all`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        config = settings or load_settings()
        opened = await connect(config, "api")
        pool, es, redis = opened.pool, opened.es, opened.redis
        app.state.services = Services(config, pool, es, redis, OrderStore(pool))
        app.state.auth = Authenticator(parse_keys(config.api_keys), config.admin_token)
        read = ReadSide.open(config, pool, es, redis) if chosen in ("all", "read") else None
        app.state.read = read
        try:
            yield
        finally:
            if read is not None:
                await read.close()
            await opened.close()

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
    if chosen in ("all", "read"):
        app.add_middleware(ReadFastPath)  # innermost: inside the body guard and the log
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes if settings else 1 << 20)
    app.add_middleware(CorrelationId)
    return app

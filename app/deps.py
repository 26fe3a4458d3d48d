"""Dependencies the routers ask for; the lifespan puts the real ones on `app.state`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
from elasticsearch import AsyncElasticsearch
from fastapi import Depends, Request
from redis.asyncio import Redis

from app.kernel.settings import Settings
from app.write.store import OrderStore


@dataclass
class Services:
    """Everything a process holds open; built once in the lifespan."""

    settings: Settings
    pool: asyncpg.Pool[Any]
    es: AsyncElasticsearch
    redis: Redis
    store: OrderStore


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_store(request: Request) -> OrderStore:
    return (await get_services(request)).store


ServicesDep = Annotated[Services, Depends(get_services)]
StoreDep = Annotated[OrderStore, Depends(get_store)]

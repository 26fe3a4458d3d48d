"""One way to open the clients a process needs, for every kind of process.

The API, the projector, a rebuild, the CLI and the benchmarks all open PostgreSQL,
Elasticsearch and Redis here, from one `Settings`. What differs between them (pool size,
how long a call may take) is one row of `PROFILES`, not numbers picked at each call site.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, cast

import asyncpg
from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from app.kernel.pool import create_pool
from app.kernel.settings import Settings

Kind = Literal["api", "projector", "rebuild", "cli", "bench"]


@dataclass(frozen=True)
class Profile:
    """Pool size and client timeouts (seconds) of one kind of process."""

    pool_min: int
    pool_max: int
    sql_timeout: float
    search_timeout: float
    redis_timeout: float
    # False only where no caller leaves session state (LISTEN, SET, session locks) behind.
    session_state: bool = True


PROFILES: dict[Kind, Profile] = {
    # The API's pool and SQL timeout come from Settings (see `profile`); these are defaults.
    "api": Profile(2, 20, 5.0, 10.0, 5.0, session_state=False),
    # One connection or so per partition loop at a time, plus claims, status and LISTEN.
    "projector": Profile(2, 16, 30.0, 30.0, 10.0),
    "rebuild": Profile(2, 8, 120.0, 120.0, 30.0),
    "cli": Profile(1, 8, 120.0, 5.0, 5.0),
    "bench": Profile(2, 40, 300.0, 120.0, 30.0),
}


def profile(settings: Settings, kind: Kind) -> Profile:
    """The profile of `kind`; the API's pool and SQL timeout are the operator's settings."""
    base = PROFILES[kind]
    if kind != "api":
        return base
    return Profile(settings.pool_min_size, settings.pool_max_size, settings.command_timeout_s,
                   base.search_timeout, base.redis_timeout, base.session_state)


async def open_pool(settings: Settings, kind: Kind, dsn: str | None = None) -> asyncpg.Pool[Any]:
    """The PostgreSQL pool of a process of `kind` (on `dsn` when given, else the settings')."""
    p = profile(settings, kind)
    return await create_pool(dsn or settings.database_url, min_size=p.pool_min,
                             max_size=p.pool_max, command_timeout=p.sql_timeout,
                             session_state=p.session_state)


def open_elasticsearch(settings: Settings, kind: Kind) -> AsyncElasticsearch:
    """The Elasticsearch client of a process of `kind` (no request is sent yet)."""
    return AsyncElasticsearch(settings.elasticsearch_hosts,
                              request_timeout=profile(settings, kind).search_timeout)


def open_redis(settings: Settings, kind: Kind) -> Redis:
    """The Redis client of a process of `kind` (it connects on first use): redis-py's
    cluster client when the settings name a Redis Cluster's nodes."""
    timeout = profile(settings, kind).redis_timeout
    if settings.redis_cluster_nodes:
        nodes = [ClusterNode(host, int(port)) for host, _, port in
                 (node.strip().rpartition(":") for node in
                  settings.redis_cluster_nodes.split(",") if node.strip())]
        cluster = RedisCluster(startup_nodes=nodes, socket_timeout=timeout,
                               socket_connect_timeout=min(timeout, 3.0))
        # Every call this project makes touches one partition's keys (one hash tag, one
        # slot), so the cluster client answers each like a single Redis.
        return cast(Redis, cluster)
    return Redis.from_url(settings.redis_url, socket_timeout=timeout,
                          socket_connect_timeout=min(timeout, 3.0))


@dataclass
class Clients:
    """The three clients of one process, closed together."""

    pool: asyncpg.Pool[Any]
    es: AsyncElasticsearch
    redis: Redis

    async def close(self) -> None:
        await self.pool.close()
        await self.es.close()
        await self.redis.aclose()


async def connect(settings: Settings, kind: Kind, dsn: str | None = None) -> Clients:
    """Open all three clients of a process of `kind`; the caller closes them."""
    pool = await open_pool(settings, kind, dsn)
    return Clients(pool, open_elasticsearch(settings, kind), open_redis(settings, kind))


@contextlib.asynccontextmanager
async def clients(settings: Settings, kind: Kind) -> AsyncIterator[Clients]:
    """`connect`, closed on exit."""
    opened = await connect(settings, kind)
    try:
        yield opened
    finally:
        await opened.close()

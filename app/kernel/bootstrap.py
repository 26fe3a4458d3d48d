"""One way to open the clients a process needs, for every kind of process.

The API, the projector, a rebuild, the CLI and the benchmarks all open PostgreSQL,
Elasticsearch and Redis here, from one `Settings`. What differs between them (pool size,
how long a call may take) is one row of `PROFILES`, not numbers picked at each call site.
Who each kind connects as is `app.kernel.credentials`; a refused credential is
`CredentialsRefused`, one sentence naming the service, raised before any work starts.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.parse import unquote, urlsplit

import asyncpg
import orjson
import redis.exceptions
from elasticsearch import AsyncElasticsearch, AuthenticationException
from elasticsearch.serializer import NdjsonSerializer, OrjsonSerializer, Serializer
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from app.kernel.credentials import (
    CredentialsRefused,
    Service,
    credential,
    with_userinfo,
    without_userinfo,
)
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
    # Their session locks go through `locks.session_lock`; LISTEN has its own connection.
    "projector": Profile(2, 16, 30.0, 30.0, 10.0, session_state=False),
    "rebuild": Profile(2, 8, 120.0, 120.0, 30.0, session_state=False),
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


def database_url(settings: Settings, kind: Kind, dsn: str | None = None) -> str:
    """The PostgreSQL URL a process of `kind` connects with: its role's, on the host and
    database of `dsn` (or the settings'); the URL as given when no role is configured."""
    url = dsn or settings.database_url
    cred = credential(settings, kind, "postgres")
    return url if cred is None else with_userinfo(url, cred.user, cred.password)


def _refused(settings: Settings, kind: Kind, service: Service, exc: Exception) -> Exception:
    cred = credential(settings, kind, service)
    return CredentialsRefused(service, cred.user if cred else None,
                              cred.setting if cred else None, str(exc).split("\n")[0])


async def open_pool(settings: Settings, kind: Kind, dsn: str | None = None) -> asyncpg.Pool[Any]:
    """The PostgreSQL pool of a process of `kind` (on `dsn` when given, else the settings')."""
    p = profile(settings, kind)
    try:
        return await create_pool(database_url(settings, kind, dsn), min_size=p.pool_min,
                                 max_size=p.pool_max, command_timeout=p.sql_timeout,
                                 session_state=p.session_state)
    except (asyncpg.InvalidPasswordError,
            asyncpg.InvalidAuthorizationSpecificationError) as exc:
        raise _refused(settings, kind, "postgres", exc) from None


def open_elasticsearch(settings: Settings, kind: Kind) -> AsyncElasticsearch:
    """The Elasticsearch client of a process of `kind` (no request is sent yet)."""
    timeout = profile(settings, kind).search_timeout
    cred = credential(settings, kind, "elasticsearch")
    if cred is None:
        return AsyncElasticsearch(settings.elasticsearch_hosts, request_timeout=timeout,
                                  serializers=JSON_SERIALIZERS)
    return AsyncElasticsearch([without_userinfo(host) for host in settings.elasticsearch_hosts],
                              basic_auth=(cred.user, cred.password), request_timeout=timeout,
                              serializers=JSON_SERIALIZERS)


class _OrjsonNdjson(NdjsonSerializer):
    """Bulk and multi-search bodies, a JSON text per line, written and read by orjson."""

    def json_dumps(self, data: Any) -> bytes:
        return orjson.dumps(data, default=self.default)

    def json_loads(self, data: bytes) -> Any:
        return orjson.loads(data)


# JSON in and out of Elasticsearch through orjson: with the standard library's codec it was
# about a sixth of the read API's CPU per search. The client uses these for its
# compatibility-mode media types too.
JSON_SERIALIZERS: dict[str, Serializer] = {"application/json": OrjsonSerializer(),
                                           "application/x-ndjson": _OrjsonNdjson()}


def open_redis(settings: Settings, kind: Kind) -> Redis:
    """The Redis client of a process of `kind` (it connects on first use): redis-py's
    cluster client when the settings name a Redis Cluster's nodes."""
    timeout = profile(settings, kind).redis_timeout
    cred = credential(settings, kind, "redis")
    username, password = (cred.user, cred.password) if cred else (None, None)
    if settings.redis_cluster_nodes:
        if cred is None:  # the cluster's nodes know the same users as REDIS_URL's Redis
            parts = urlsplit(settings.redis_url)
            username = unquote(parts.username) if parts.username else None
            password = unquote(parts.password) if parts.password else None
        nodes = [ClusterNode(host, int(port)) for host, _, port in
                 (node.strip().rpartition(":") for node in
                  settings.redis_cluster_nodes.split(",") if node.strip())]
        cluster = RedisCluster(startup_nodes=nodes, socket_timeout=timeout,
                               socket_connect_timeout=min(timeout, 3.0),
                               username=username, password=password)
        # Every call this project makes touches one partition's keys (one hash tag, one
        # slot), so the cluster client answers each like a single Redis.
        return cast(Redis, cluster)
    # The URL's own user:password would win over keyword arguments: strip it first.
    url = settings.redis_url if cred is None else without_userinfo(settings.redis_url)
    return Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=min(timeout, 3.0),
                          username=username, password=password)


async def check_access(settings: Settings, kind: Kind, es: AsyncElasticsearch,
                       client: Redis) -> None:
    """Raise `CredentialsRefused` when Elasticsearch or Redis refuses this process's user.

    A service that does not answer is not an error here: processes start during outages
    and wait for the service (the fault model), but a wrong password never heals.
    """
    try:
        # Short and once: a hung node must not hold a starting process for long.
        await es.options(request_timeout=3, max_retries=0).security.authenticate()
    except AuthenticationException as exc:
        raise _refused(settings, kind, "elasticsearch", exc) from None
    except Exception:  # down, or security off (nothing to authenticate against)
        pass
    try:
        await client.ping()
    except redis.exceptions.AuthenticationError as exc:
        raise _refused(settings, kind, "redis", exc) from None
    except redis.exceptions.ResponseError as exc:
        if "WRONGPASS" in str(exc) or "NOAUTH" in str(exc) or "NOPERM" in str(exc):
            raise _refused(settings, kind, "redis", exc) from None
    except Exception:  # down: the caller's own retries take over
        pass


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
    """Open all three clients of a process of `kind` and check that each service accepts
    its credential (`CredentialsRefused` otherwise); the caller closes them."""
    pool = await open_pool(settings, kind, dsn)
    opened = Clients(pool, open_elasticsearch(settings, kind), open_redis(settings, kind))
    try:
        await check_access(settings, kind, opened.es, opened.redis)
    except CredentialsRefused:
        await opened.close()
        raise
    return opened


@contextlib.asynccontextmanager
async def clients(settings: Settings, kind: Kind) -> AsyncIterator[Clients]:
    """`connect`, closed on exit."""
    opened = await connect(settings, kind)
    try:
        yield opened
    finally:
        await opened.close()

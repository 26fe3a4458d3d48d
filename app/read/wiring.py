"""The read side of one API process: readers, checkpoints and progress listeners."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis

from app.kernel.bootstrap import database_url
from app.kernel.positions import (
    CHECKPOINT_CHANNEL,
    Frontier,
    LogPositions,
    PostgresCheckpoints,
)
from app.kernel.readmodels import IndexRef, dashboard_channel, resolve_index, search_frontier
from app.kernel.settings import Settings
from app.read.dashboard import DashboardCache, DashboardReader
from app.read.progress import Broadcast, listen_postgres, listen_redis
from app.read.search import SearchReader
from app.read.streams import DashboardStreams


@dataclass(frozen=True)
class SearchTarget:
    index: str
    frontier: Frontier

    @property
    def checkpoint(self) -> Frontier:
        """The frontier; its `position` is the watermark `X-Projection-Position` reports."""
        return self.frontier


class SearchCheckpoint:
    """The concrete index behind the alias and its checkpoint; the alias is re-resolved at
    most every `ttl_s`. Reads then run on that concrete index, so the checkpoint a read was
    checked against is the checkpoint of the index that answers it, even across a swap.
    """

    def __init__(self, es: AsyncElasticsearch, pool: asyncpg.Pool[Any], alias: str,
                 ttl_s: float = 1.0, partitions: int = 1) -> None:
        self._es = es
        self._partitions = partitions
        self._checkpoints = PostgresCheckpoints(pool)
        self._alias = alias
        self._ttl_s = ttl_s
        self._ref: IndexRef | None = None
        self._resolved_at = float("-inf")
        self._recent: tuple[float, SearchTarget] = (
            float("-inf"), SearchTarget(alias, Frontier.start(partitions)))
        self._refreshing: asyncio.Future[SearchTarget] | None = None

    def forget(self) -> None:
        """Resolve the alias again on the next call (the index answered 404); the recent
        target named that index too, so it goes as well."""
        self._resolved_at = float("-inf")
        self._recent = (float("-inf"), self._recent[1])
        self._refreshing = None  # a refresh under way may still name that index

    async def target(self) -> SearchTarget:
        """The index to query and where each of its partitions stands."""
        if time.monotonic() - self._resolved_at > self._ttl_s:
            self._ref = await resolve_index(self._es, self._alias)
            self._resolved_at = time.monotonic()
        ref = self._ref
        if ref is None:
            return SearchTarget(self._alias, Frontier.start(self._partitions))  # not built
        current = SearchTarget(ref.name, await search_frontier(self._checkpoints, ref,
                                                               self._partitions))
        self._recent = (time.monotonic(), current)
        return current

    async def __call__(self) -> Frontier:
        return (await self.target()).frontier

    async def recent(self, max_age_s: float = 0.25) -> SearchTarget:
        """A target read at most `max_age_s` ago (for reads that asked for no position).

        Concurrent readers that find it stale share one refresh: under load every
        in-flight search would otherwise read the checkpoints from PostgreSQL at once."""
        read_at, current = self._recent
        if time.monotonic() - read_at <= max_age_s:
            return current
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self.target())
            # its failure reaches every reader waiting; with none left, nobody must log it
            self._refreshing.add_done_callback(lambda done: done.cancelled() or done.exception())
        return await asyncio.shield(self._refreshing)  # a reader that leaves cancels nothing


@dataclass
class ReadSide:
    search: SearchReader
    dashboard: DashboardReader
    search_checkpoint: SearchCheckpoint
    log: LogPositions
    search_progress: Broadcast = field(default_factory=Broadcast)
    dashboard_progress: Broadcast = field(default_factory=Broadcast)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    dashboard_cache: DashboardCache = field(init=False)
    dashboard_streams: DashboardStreams = field(init=False)

    def __post_init__(self) -> None:
        self.dashboard_cache = DashboardCache(self.dashboard, self.dashboard_progress)
        self.dashboard_streams = DashboardStreams(self.dashboard_cache, self.dashboard_progress)

    @classmethod
    def open(cls, settings: Settings, pool: asyncpg.Pool[Any], es: AsyncElasticsearch,
             redis: Redis) -> ReadSide:
        """Build the readers and start the progress listeners."""
        side = cls(SearchReader(es, settings.search_alias),
                   DashboardReader(redis, settings.dashboard_namespace, settings.partitions),
                   SearchCheckpoint(es, pool, settings.search_alias,
                                    partitions=settings.partitions), LogPositions(pool))
        side.tasks = [  # the Redis listener last: it ends on the `stop` flag (see close)
            asyncio.create_task(side.dashboard_streams.run()),
            asyncio.create_task(listen_postgres(database_url(settings, "api"),
                                                CHECKPOINT_CHANNEL, side.search_progress)),
            asyncio.create_task(listen_redis(redis, dashboard_channel(
                settings.dashboard_namespace), side.dashboard_progress, side.stop)),
        ]
        return side

    async def close(self) -> None:
        self.stop.set()
        _, pending = await asyncio.wait(self.tasks, timeout=0.1)
        for task in pending:
            if task is not self.tasks[-1]:  # the Redis listener ends on the flag
                task.cancel()
        await asyncio.wait(self.tasks, timeout=3)
        for task in self.tasks:
            if not task.done():
                task.cancel()

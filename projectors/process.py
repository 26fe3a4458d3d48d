"""The projector process (`orders project`): every projection of this deployment, wired.

The only place that picks the concrete adapters of the read side's write path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis

from app.kernel import reindex_jobs
from app.kernel.bootstrap import Kind, connect, database_url
from app.kernel.partitions import all_partitions
from app.kernel.positions import PostgresCheckpoints
from app.kernel.readmodels import SearchIndexOptions
from app.kernel.reindex_jobs import Target
from app.kernel.runtime import tune_gc
from app.kernel.settings import Settings
from projectors.claims import Coordinator
from projectors.dashboard_sink import DashboardSink
from projectors.log import LogNotifier
from projectors.reindex import Rebuild
from projectors.runner import Projection, ProjectionConfig
from projectors.search_sink import SearchIndexSink
from projectors.sinks import Sink

log = logging.getLogger("orders.projector")


@dataclass
class Projector:
    """Open clients and the projections that use them."""

    pool: asyncpg.Pool[Any]
    es: AsyncElasticsearch
    redis: Redis
    notifier: LogNotifier
    coordinator: Coordinator | None = None
    projections: list[Projection] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        """Run every projection partition until `stop` is set (each applies while this
        process holds its claim); keep the claims and the LISTEN connection alive."""

        listening = asyncio.create_task(self.notifier.run())  # waiters poll when it is down
        claims = [self.coordinator.run(stop)] if self.coordinator is not None else []
        try:
            await asyncio.gather(*claims, *(p.run(stop) for p in self.projections))
        finally:
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening


@contextlib.asynccontextmanager
async def open_projector(settings: Settings, config: ProjectionConfig | None = None,
                         only: set[str] | None = None,
                         kind: Kind = "projector") -> AsyncIterator[Projector]:
    """Open the clients, build the search and dashboard projections (one per partition of
    the log, each under a claim of the coordinator), close on exit."""
    config = config or ProjectionConfig()
    opened = await connect(settings, kind)
    pool, es, redis = opened.pool, opened.es, opened.redis
    notifier = LogNotifier(database_url(settings, kind))
    projector = Projector(pool, es, redis, notifier)
    names = [name for name in ("search", "dashboard") if only is None or name in only]
    if names:
        projector.coordinator = Coordinator(pool, names, settings.partitions, config.lease_s,
                                            config.heartbeat_s)
    for partition in all_partitions(settings.partitions):
        sinks: list[Sink] = [
            SearchIndexSink(es, PostgresCheckpoints(pool), alias=settings.search_alias,
                            options=SearchIndexOptions.of(settings), partition=partition),
            DashboardSink(redis, namespace=settings.dashboard_namespace, partition=partition)]
        for sink in sinks:
            if sink.name in names and projector.coordinator is not None:
                claim = projector.coordinator.claim(sink.name, partition)
                projector.projections.append(Projection(sink, pool, notifier, config,
                                                        claim=claim))
    try:
        yield projector
    finally:
        await opened.close()


async def serve(settings: Settings, config: ProjectionConfig,
                metrics_port: int | None) -> None:
    """Run the projector until SIGTERM or SIGINT; the current batch finishes or is dropped
    without moving its checkpoint."""
    tune_gc()
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with open_projector(settings, config) as projector:
        log.info("projecting %s", ", ".join(p.name for p in projector.projections))
        await asyncio.gather(projector.run(stop),
                             run_queued_rebuilds(projector, settings, stop))


async def run_rebuild(settings: Settings, target: Target, *, restart: bool = False,
                      keep_old: bool = False, job_id: uuid.UUID | None = None,
                      progress: Callable[[Any, int], None] | None = None) -> dict[str, Any]:
    """Run one rebuild to the end; `progress(p, total)` hears every step (the CLI's bar)."""
    async with open_projector(settings, only=set(), kind="rebuild") as projector:
        rebuild = Rebuild(projector.pool, projector.es, projector.redis,
                          settings.search_alias, settings.dashboard_namespace,
                          settings.partitions, options=SearchIndexOptions.of(settings))
        if progress is not None:
            total: int = await projector.pool.fetchval("SELECT count(*) FROM events")
            rebuild.progress.listeners.append(lambda p: progress(p, total))
        return await rebuild.run(target, restart=restart, keep_old=keep_old, job_id=job_id)


async def run_queued_rebuilds(projector: Projector, settings: Settings,
                              stop: asyncio.Event) -> None:
    """Run rebuilds queued through `POST /admin/reindex`, one at a time, until `stop`."""
    rebuild = Rebuild(projector.pool, projector.es, projector.redis, settings.search_alias,
                      settings.dashboard_namespace, settings.partitions,
                      options=SearchIndexOptions.of(settings))
    while not stop.is_set():
        try:
            job = await reindex_jobs.next_queued(projector.pool)
            if job is not None:
                rebuild.progress = type(rebuild.progress)()
                await rebuild.run(job["target"], keep_old=job["keep_old"], job_id=job["id"])
        except Exception as exc:  # the job row records the failure; keep serving
            log.warning("queued rebuild failed: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 2.0)

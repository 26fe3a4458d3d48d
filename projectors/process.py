"""The projector process (`orders project`): every projection of this deployment, wired.

The only place that picks the concrete adapters of the read side's write path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis

from app import reindex_jobs
from app.positions import PostgresCheckpoints
from app.readmodels import SearchIndexOptions
from app.reindex_jobs import Target
from app.runtime import tune_gc
from app.settings import Settings
from app.write.pool import create_pool
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
    projections: list[Projection] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        """Run every projection until `stop` is set; keep the LISTEN connection alive."""

        async def keep_listening() -> None:
            while not stop.is_set():
                with contextlib.suppress(Exception):  # waiters poll meanwhile
                    await self.notifier.ensure_listening()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 2.0)

        await asyncio.gather(keep_listening(), *(p.run(stop) for p in self.projections))


@contextlib.asynccontextmanager
async def open_projector(settings: Settings, config: ProjectionConfig | None = None,
                         only: set[str] | None = None) -> AsyncIterator[Projector]:
    """Open the clients, build the search and dashboard projections, close on exit."""
    pool = await create_pool(settings.database_url, min_size=2, max_size=8,
                             command_timeout=30)
    es = AsyncElasticsearch(settings.elasticsearch_hosts, request_timeout=30)
    redis = Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=3)
    notifier = LogNotifier(settings.database_url)
    projector = Projector(pool, es, redis, notifier)
    sinks: list[Sink] = [
        SearchIndexSink(es, PostgresCheckpoints(pool), alias=settings.search_alias,
                        options=SearchIndexOptions.of(settings)),
        DashboardSink(redis, namespace=settings.dashboard_namespace)]
    for sink in sinks:
        if only is None or sink.name in only:
            projector.projections.append(Projection(sink, pool, notifier.waiter(), config))
    try:
        yield projector
    finally:
        await notifier.close()
        await pool.close()
        await es.close()
        await redis.aclose()


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
                      keep_old: bool = False, show_progress: bool = False,
                      job_id: uuid.UUID | None = None) -> dict[str, Any]:
    """Run one rebuild to the end (the CLI shows a progress bar)."""
    async with open_projector(settings, only=set()) as projector:
        rebuild = Rebuild(projector.pool, projector.es, projector.redis,
                          settings.search_alias, settings.dashboard_namespace,
                          options=SearchIndexOptions.of(settings))
        if not show_progress:
            return await rebuild.run(target, restart=restart, keep_old=keep_old, job_id=job_id)
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        total: int = await projector.pool.fetchval("SELECT count(*) FROM events")
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]:>8,.0f} ev/s docs {task.fields[docs]:,}"),
                   TimeRemainingColumn())
        with Progress(*columns) as bar:
            task = bar.add_task(f"rebuild {target}", total=total, rate=0.0, docs=0)
            started = time.monotonic()

            def show(p: Any) -> None:
                rate = p.events_read / max(time.monotonic() - started, 1e-6)
                bar.update(task, completed=p.events_read, docs=p.docs_written, rate=rate)

            rebuild.progress.listeners.append(show)
            return await rebuild.run(target, restart=restart, keep_old=keep_old, job_id=job_id)


async def run_queued_rebuilds(projector: Projector, settings: Settings,
                              stop: asyncio.Event) -> None:
    """Run rebuilds queued through `POST /admin/reindex`, one at a time, until `stop`."""
    rebuild = Rebuild(projector.pool, projector.es, projector.redis, settings.search_alias,
                      settings.dashboard_namespace, options=SearchIndexOptions.of(settings))
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

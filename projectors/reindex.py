"""Zero-downtime rebuilds of a read model from the log, resumable, one per target at a time.

Search (blue/green): create `orders-v{N+1}` with loading settings; note the log horizon H;
stream the log by order (`stream_id, version`), fold each order in memory and bulk-index
final documents (several requests in flight); checkpoint the new index at H; catch up with
the live projector's own logic; swap the alias in ONE `_aliases` call. The live projection
follows the alias on its next batch and resumes from the new index's checkpoint, so nothing
is lost or applied twice in effect. The old index goes only after the live side moved.

Dashboard: fill a fresh key generation with the live projector's logic from the start of the
log (its checkpoint lives with its keys, so a killed rebuild resumes), then repoint.

Both are built for every partition of the log: each partition is caught up and checked
against the live one on its own (a search swap waits until every partition of the new index
is at least as far as the live one's; a dashboard partition is repointed by its own script,
in its own hash slot).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis

from app.kernel import locks, reindex_jobs, status
from app.kernel.partitions import DEFAULT_PARTITIONS, Partition, all_partitions
from app.kernel.positions import Checkpoint, LogPositions, PostgresCheckpoints, log_identity
from app.kernel.readmodels import (
    SearchIndexOptions,
    dashboard_channel,
    dashboard_keys,
    generation_counter,
    live_generation,
    live_index,
    load_search_checkpoint,
    next_index_name,
    parse_checkpoint,
    resolve_index,
)
from app.kernel.reindex_jobs import RebuildRunning, Target
from projectors.bulk_load import load_search_index
from projectors.dashboard_sink import CLAIM_SCRIPT, DashboardSink
from projectors.documents import index_body
from projectors.runner import Projection, ProjectionConfig
from projectors.search_sink import SearchIndexSink

log = logging.getLogger("orders.reindex")
HORIZON = """
SELECT transaction_id::text AS tx, position FROM events
WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY transaction_id DESC, position DESC LIMIT 1"""
CATCH_UP = ProjectionConfig(batch_size=5000, poll_interval_s=0.1, skip_poison=True)
HANDOVER_LAG = 100  # catch up in batches until this close, then swap when at least as far
HANDOVER_WAIT_S = 15.0
REPLICAS_WAIT_S = 120
# Rounds of catching up the partitions behind the live index's before the swap. Under steady
# writes some live partition may always have moved on meanwhile; swapping then is still exact
# for causal reads (each read checks the frontier of the concrete index that answers it), it
# can only show an instant of an older state to reads that asked for no position.
SWAP_ROUNDS = 10
# Repoint only when the new generation is at least as far as the live one, in one step.
SWAP_DASHBOARD = """
local function key(tx, pos) return string.format('%030s%030s', tx or '0', pos or '0') end
local old = redis.call('HMGET', KEYS[2], 'tx', 'position')
local new = redis.call('HMGET', KEYS[3], 'tx', 'position')
if redis.call('GET', KEYS[1]) and key(old[1], old[2]) > key(new[1], new[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], new[2] or '0')
return 1"""


def _names(generations: list[str]) -> str:
    """One generation name per partition, as stored on the job: the name alone when all
    partitions share it, else comma-separated in partition order."""
    return generations[0] if len(set(generations)) == 1 else ",".join(generations)


def _name_of(generations: str, partition: Partition) -> str:
    """The partition's generation in a job's `_names` form."""
    names = generations.split(",")
    return names[partition.index] if len(names) == partition.count else names[0]


@dataclass
class Progress:
    """Counters shown by the progress bar and stored on the job row (throttled)."""

    events_read: int = 0
    docs_written: int = 0
    listeners: list[Callable[[Progress], None]] = field(default_factory=list)

    def add(self, events: int = 0, docs: int = 0) -> None:
        self.events_read += events
        self.docs_written += docs
        for listener in self.listeners:
            listener(self)


@dataclass
class Rebuild:
    pool: asyncpg.Pool[Any]
    es: AsyncElasticsearch
    redis: Redis
    alias: str
    namespace: str
    partitions: int = DEFAULT_PARTITIONS
    progress: Progress = field(default_factory=Progress)
    options: SearchIndexOptions = field(default_factory=SearchIndexOptions)

    @property
    def _parts(self) -> list[Partition]:
        return all_partitions(self.partitions)

    async def _drop_generation(self, generations: str | None) -> None:
        """Delete one generation of every partition (`generations`: one name, or one per
        partition, comma-separated)."""
        if not generations:
            return
        for part in self._parts:
            name = _name_of(generations, part)
            if name:
                await self.redis.delete(*dashboard_keys(self.namespace, name, part).values())

    async def run(self, target: Target, *, restart: bool = False, keep_old: bool = False,
                  job_id: uuid.UUID | None = None) -> dict[str, Any]:
        """Run (or resume) the rebuild of `target` to the end; return the finished job."""
        async with self._exclusive(target):
            job = await self._job(target, restart, keep_old, job_id)
            self.progress.events_read = job["events_read"]
            self.progress.docs_written = job["docs_written"]
            saver = asyncio.create_task(self._save_progress(job["id"]))
            try:
                if target == "search":
                    await self._search(job)
                else:
                    await self._dashboard(job)
            except Exception as exc:
                await reindex_jobs.update(self.pool, job["id"], state="failed",
                                          error=str(exc)[:2000])
                raise
            finally:
                saver.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await saver
            await reindex_jobs.update(self.pool, job["id"], state="done",
                                      events_read=self.progress.events_read,
                                      docs_written=self.progress.docs_written)
            done = await reindex_jobs.get(self.pool, job["id"])
            assert done is not None
            return done

    @contextlib.asynccontextmanager
    async def _exclusive(self, target: Target) -> AsyncIterator[None]:
        """One rebuild per target: a session-level advisory lock held for the whole job."""
        async with self.pool.acquire() as conn, \
                locks.session_lock(conn, locks.rebuild(target), wait=False) as taken:
            if not taken:
                raise RebuildRunning(f"a {target} rebuild is already running elsewhere")
            yield

    async def _job(self, target: Target, restart: bool, keep_old: bool,
                   job_id: uuid.UUID | None) -> dict[str, Any]:
        job = await reindex_jobs.active(self.pool, target)
        if job is not None and restart and job["state"] != "queued":
            await self._abandon(job)
            job = None
        if job is None:
            await reindex_jobs.queue(self.pool, target, keep_old)
            job = await reindex_jobs.active(self.pool, target)
        assert job is not None
        if job_id is not None and job["id"] != job_id:
            raise RebuildRunning(f"another {target} rebuild ({job['id']}) must finish first")
        return job

    async def _abandon(self, job: dict[str, Any]) -> None:
        """Drop a half-built target of an unfinished job and mark it abandoned; a job whose
        target readers already use (killed after its swap) is finished instead."""
        new = job["new_target"]
        if new and await self._is_live(job["target"], new):
            await self._retire(job["target"], job["old_target"], new, job["keep_old"])
            await reindex_jobs.update(self.pool, job["id"], state="done")
            return
        if new:
            if job["target"] == "search":
                ref = await resolve_index(self.es, new)
                await self.es.indices.delete(index=new, ignore_unavailable=True)
                if ref is not None:
                    await PostgresCheckpoints(self.pool).delete(ref.checkpoint_name)
            else:
                await self._drop_generation(new)
        await reindex_jobs.update(self.pool, job["id"], state="abandoned")

    async def _is_live(self, target: Target, name: str) -> bool:
        if target == "search":
            return await live_index(self.es, self.alias) == name
        return all([await live_generation(self.redis, self.namespace, part)
                    == _name_of(name, part) for part in self._parts])

    async def _retire(self, target: Target, old: str | None, new: str, keep_old: bool) -> None:
        """Remove the replaced target once the live projection writes to the new one."""
        if not old or old == new or keep_old:
            return
        await self._await_live_moved(target, new)
        if target == "search":
            await self.es.indices.delete(index=old, ignore_unavailable=True)
        else:
            await self._drop_generation(",".join(
                "" if _name_of(old, p) == _name_of(new, p) else _name_of(old, p)
                for p in self._parts))

    async def _save_progress(self, job_id: uuid.UUID) -> None:
        while True:
            await asyncio.sleep(1.0)
            await reindex_jobs.update(self.pool, job_id, events_read=self.progress.events_read,
                                      docs_written=self.progress.docs_written)

    async def _horizon(self) -> Checkpoint:
        row = await self.pool.fetchrow(HORIZON)
        return Checkpoint(int(row["tx"]), row["position"]) if row else Checkpoint.start()

    # ------------------------------------------------------------------ search

    async def _search(self, job: dict[str, Any]) -> None:
        job_id = job["id"]
        if job["state"] == "queued":
            old = await live_index(self.es, self.alias)
            new = await next_index_name(self.es, self.alias)
            horizon = await self._horizon()
            body = index_body(self.options)
            # Replicas come once loaded: copying the finished segments beats indexing twice.
            loading = {**body["settings"], "number_of_replicas": 0, "refresh_interval": "-1"}
            await self.es.indices.create(index=new, settings=loading,
                                         mappings=body["mappings"])
            total: int = await self.pool.fetchval("SELECT count(*) FROM events")
            await reindex_jobs.update(self.pool, job_id, state="loading", new_target=new,
                                      old_target=old, start_tx=str(horizon.tx),
                                      start_position=horizon.position, events_total=total)
            job = await reindex_jobs.get(self.pool, job_id) or job
        new_index = job["new_target"]
        if job["state"] == "loading":
            await load_search_index(self.pool, self.es, new_index, job["resume_after"],
                                    self.progress,
                                    lambda stream: reindex_jobs.update(
                                        self.pool, job_id, resume_after=stream))
            ref = await resolve_index(self.es, new_index)
            if ref is None:
                raise RuntimeError(f"index {new_index} vanished while it was being loaded")
            identity = (await log_identity(self.pool)).key
            for part in self._parts:  # the load covered every partition up to the horizon
                await PostgresCheckpoints(self.pool).save(
                    ref.partition_checkpoint(part),
                    Checkpoint(int(job["start_tx"]), job["start_position"]), identity)
            await self._serving_settings(new_index)
            await reindex_jobs.update(self.pool, job_id, state="catching_up")
        sinks = []
        for part in self._parts:
            sink = SearchIndexSink(self.es, PostgresCheckpoints(self.pool), self.alias,
                                   new_index, options=self.options, partition=part)
            sink.name = f"reindex:{new_index}"
            sink.batch_interval_s = 0.0  # chasing the live side: no pause between batches
            sink.shared_refresh = False  # nor a wait for the scheduled refresh
            sinks.append(sink)
        if job["state"] != "swapping":
            projections = [await self._catch_up(sink, count_events=True) for sink in sinks]
            await reindex_jobs.update(self.pool, job_id, state="swapping")
            for _ in range(SWAP_ROUNDS):
                if not (behind := await self._behind(sinks)):
                    break
                await asyncio.gather(*(self._catch_up(sinks[i], projections[i], until=goal)
                                       for i, goal in behind.items()))
            await self._swap_search(sinks)
        await self._retire("search", job["old_target"], new_index, job["keep_old"])

    async def _serving_settings(self, index: str) -> None:
        """Give a loaded index its replicas and refresh interval, and wait (bounded) for the
        replicas to be copied; a node down meanwhile only delays them, so the rebuild goes on
        and Elasticsearch completes them when it can."""
        serving = index_body(self.options)["settings"]
        await self.es.indices.put_settings(index=index, settings={
            "refresh_interval": serving["refresh_interval"],
            "number_of_replicas": serving["number_of_replicas"]})
        await self.es.indices.refresh(index=index)
        health = await self.es.cluster.health(index=index, wait_for_status="green",
                                              timeout=f"{REPLICAS_WAIT_S}s")
        if health["timed_out"]:
            log.warning("index %s is %s after %ss: its replicas are still being allocated",
                        index, health["status"], REPLICAS_WAIT_S)

    async def _behind(self, sinks: list[SearchIndexSink]) -> dict[int, Checkpoint]:
        """The partitions of the new index behind the live index's, with where those are."""
        old = await resolve_index(self.es, self.alias)
        behind: dict[int, Checkpoint] = {}
        if old is None or old.name == sinks[0].index:
            return behind
        for index, sink in enumerate(sinks):
            live = (await load_search_checkpoint(PostgresCheckpoints(self.pool), old,
                                                 sink.partition))[0]
            if live > await sink.checkpoint():
                behind[index] = live
        return behind

    async def _swap_search(self, sinks: list[SearchIndexSink]) -> None:
        """Swap the alias in ONE `_aliases` call (after `_behind` found every partition of
        the new index at least as far as the live one's, or SWAP_ROUNDS of catching up)."""
        old = await resolve_index(self.es, self.alias)
        new = sinks[0].index
        actions: list[dict[str, Any]] = [{"add": {"index": new, "alias": self.alias}}]
        if old is not None and old.name != new:
            actions.insert(0, {"remove": {"index": old.name, "alias": self.alias}})
        await self.es.indices.update_aliases(actions=actions)

    # --------------------------------------------------------------- dashboard

    async def _dashboard(self, job: dict[str, Any]) -> None:
        job_id = job["id"]
        if job["state"] == "queued":
            olds = [await live_generation(self.redis, self.namespace, part) or ""
                    for part in self._parts]
            claim = self.redis.register_script(CLAIM_SCRIPT)
            # A number from each partition's counter, never pointer + 1: a live sink that is
            # building its first generation right now must never share (and lose) its keys.
            numbers = [await claim(keys=[generation_counter(self.namespace, part)],
                                   args=[int(o[1:]) if o[1:].isdigit() else 0])
                       for part, o in zip(self._parts, olds, strict=True)]
            new = _names([f"v{int(n)}" for n in numbers])
            await self._drop_generation(new)
            total: int = await self.pool.fetchval("SELECT count(*) FROM events")
            await reindex_jobs.update(self.pool, job_id, state="loading", new_target=new,
                                      old_target=_names(olds) if any(olds) else None,
                                      events_total=total)
            job = await reindex_jobs.get(self.pool, job_id) or job
        generation = job["new_target"]
        sinks = [DashboardSink(self.redis, self.namespace, _name_of(generation, part), part)
                 for part in self._parts]
        for sink in sinks:
            sink.name = f"reindex:dashboard:{generation}"
        if job["state"] != "swapping":
            # resumes from the keys' checkpoints
            projections = [await self._catch_up(sink, count_events=True) for sink in sinks]
            await reindex_jobs.update(self.pool, job_id, state="swapping")
            for sink, projection in zip(sinks, projections, strict=True):
                while (behind := await self._swap_dashboard(sink)) is not None:
                    await self._catch_up(sink, projection, count_events=True, until=behind)
        await self._retire("dashboard", job["old_target"], generation, job["keep_old"])

    async def _swap_dashboard(self, sink: DashboardSink) -> Checkpoint | None:
        """Repoint readers of one partition in one script, only when its new generation is
        at least as far as the live one; else return where the live one is."""
        part = sink.partition
        live = await live_generation(self.redis, self.namespace, part) or sink.generation
        live_checkpoint = dashboard_keys(self.namespace, live, part)["checkpoint"]
        swap = self.redis.register_script(SWAP_DASHBOARD)
        swapped = await swap(keys=[sink.pointer, live_checkpoint, sink.keys["checkpoint"]],
                             args=[sink.generation, dashboard_channel(self.namespace)])
        if swapped:
            return None
        tx, position = await self.redis.hmget(live_checkpoint, ["tx", "position"])
        return parse_checkpoint(tx, position)

    # ------------------------------------------------------------------ shared

    async def _catch_up(self, sink: Any, projection: Projection | None = None,
                        count_events: bool = False,
                        until: Checkpoint | None = None) -> Projection:
        """Apply the log to `sink` with the live logic until it is at `until` (where the
        live target stood), or else within HANDOVER_LAG events of the log's end. Both are
        fixed goals, so this ends while writes keep coming; the swap then checks again."""
        if projection is None:
            projection = Projection(sink, self.pool, None, CATCH_UP)
        checkpoint = await projection.start()
        positions = LogPositions(self.pool)
        while True:
            if until is not None and checkpoint >= until:
                return projection
            if until is None and (await positions.pending(checkpoint)).events < HANDOVER_LAG:
                return projection
            before = checkpoint
            checkpoint = await projection.step(checkpoint)
            if count_events and checkpoint != before:
                self.progress.add(events=projection.last_batch_size,
                                  docs=projection.last_batch_size)
            if projection.last_batch_size == 0:  # nothing readable yet: the swap decides
                return projection

    async def _await_live_moved(self, projection: str, target: str) -> None:
        """Wait (bounded) until the live projection reports writing to the new target."""
        deadline = time.monotonic() + HANDOVER_WAIT_S
        while time.monotonic() < deadline:
            rows = await self.pool.fetch(status.RECENT_TARGETS, projection)
            if all(row["target"] == target for row in rows):
                return
            await asyncio.sleep(0.5)
        log.warning("live %s projection did not report the new target; removing old anyway",
                    projection)

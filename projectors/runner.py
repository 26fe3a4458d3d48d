"""One projection partition's loop: read the log after its checkpoint, fold, apply,
checkpoint, repeat.

Each read model runs its own loop per partition of the log with its own checkpoint, so a
broken Elasticsearch never stops the dashboard and the other way round. A loop applies only
while this process holds the partition's claim (projectors/claims.py), and every write
carries the claim's fencing token. The loop never skips an event silently: a
sink outage is retried with capped, jittered exponential back-off; a poison event goes to
the dead-letter table and stops the projection (or is skipped when so configured, and the
dead letter says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg

from app.kernel.partitions import Fenced
from app.kernel.positions import Checkpoint, log_identity
from projectors import metrics
from projectors.changes import Change, load_changes
from projectors.claims import Claim
from projectors.log import SOURCE_ERRORS, LoggedEvent, LogNotifier, LogReader, Waiter
from projectors.sinks import (
    PoisonEvent,
    Sink,
    SinkGone,
    SinkMoved,
    SinkRewound,
    SinkUnavailable,
)
from projectors.status import StatusBoard

log = logging.getLogger("orders.projector")
T = TypeVar("T")
# Outages of either side: retried with capped back-off until they pass or we stop.
RETRYABLE: tuple[type[Exception], ...] = (SinkUnavailable, *SOURCE_ERRORS)

DEAD_LETTER = """
INSERT INTO dead_letters (projection, position, error) VALUES ($1, $2, $3)
ON CONFLICT (projection, position) DO UPDATE SET error = EXCLUDED.error"""


@dataclass(frozen=True)
class ProjectionConfig:
    batch_size: int = 1000
    poll_interval_s: float = 1.0
    stall_after_s: float = 10.0
    skip_poison: bool = False
    backoff_base_s: float = 0.2
    backoff_max_s: float = 10.0
    standby_poll_s: float = 1.0
    # How often the active instance re-checks its claim and the log's identity.
    recheck_s: float = 1.0
    # Claims: a lease not renewed for lease_s is free for others; renewed every heartbeat_s.
    lease_s: float = 3.0
    heartbeat_s: float = 1.0
    # A caught-up partition moves its checkpoint to the log's horizon at most this often
    # (None: as often as its sink's `horizon_every_s`).
    advance_every_s: float | None = None
    # A caught-up partition counts its pending events (lag metrics, stall detection) at most
    # this often: it also wakes to follow the horizon and for held-back events of its own,
    # and most of those wakes find nothing.
    idle_check_s: float = 1.0


class Stopped(Exception):
    """The projection was asked to stop, or stopped itself on a poison event."""


class LostLeadership(Exception):
    """This process no longer holds the partition's claim: another process may apply it."""


class Projection:
    """Drives one sink (one partition of a read model) from the log; run it with `run(stop)`.

    With a `claim`, it applies only while the claim is held; without one (a rebuild's own
    catch-up, protected by the rebuild lock), always.
    """

    def __init__(self, sink: Sink, pool: asyncpg.Pool[Any], notifier: LogNotifier | None,
                 config: ProjectionConfig | None = None,
                 stop: asyncio.Event | None = None, claim: Claim | None = None) -> None:
        self.sink = sink
        self.name = sink.name
        self.partition = sink.partition
        self.claim = claim
        self._pool = pool
        self._reader = LogReader(pool)
        self.config = config or ProjectionConfig()
        status_name = self.name if self.partition.whole else f"{self.name}:{self.partition.label}"
        self.status = StatusBoard(pool, status_name)
        self._stop = stop or asyncio.Event()
        self.last_batch_size = 0
        self._held_back_since: float | None = None
        self.active = False  # True while this instance holds the partition's claim
        self._partial_batch_at: float | None = None  # when the last short batch started
        self._token: int | None = None  # the claim token this loop writes under
        self._rechecked_at = 0.0
        self._advanced_at = 0.0
        self.advance_every_s: float = sink.horizon_every_s \
            if self.config.advance_every_s is None else self.config.advance_every_s
        # woken by the process's notices, or (no notifier: a rebuild's catch-up) polling;
        # other partitions' commits wake it as often as it advances
        self._waiter = notifier.waiter(self.partition, self.advance_every_s) if notifier \
            else Waiter(self.partition, self.advance_every_s)
        self._advance_due: float | None = None  # seconds until a deferred advance may run
        self._idle_checked_at = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; only the holder of the partition's claim applies.

        Never exits on a failure: an outage is retried where it happens, a lost claim sends
        this instance back to standby, anything unforeseen restarts the loop after a pause.
        """
        self._stop = stop
        failures = 0
        with contextlib.suppress(Stopped):
            while not stop.is_set():
                try:
                    async with self._claimed():
                        checkpoint = await self.start()
                        while not stop.is_set():
                            checkpoint = await self.step(checkpoint)
                            failures = 0
                except (LostLeadership, Fenced) as lost:
                    log.warning("%s %s: lost the claim (%s); standing by", self.name,
                                self.partition.label, lost)
                except (Stopped, asyncio.CancelledError):
                    raise
                except Exception as exc:  # last resort: log it, pause, start over
                    failures += 1
                    log.exception("%s: unexpected failure; restarting the loop", self.name)
                    await self.status.report("error", error=f"{type(exc).__name__}: {exc}"[:500])
                    await self._sleep(self._backoff(failures))
        if self.status.state != "stopped_on_poison":  # what stopped it stays on record
            await self.status.report("stopped")

    async def start(self) -> Checkpoint:
        """Bind the sink to the log's identity, find its target, and load where it stands."""
        await self._bind_log()
        await self._retry(self.sink.prepare)
        while True:
            try:
                checkpoint = await self._retry(self.sink.checkpoint)
            except SinkGone as gone:
                await self._rebuild(gone)  # then the fresh target's (empty) checkpoint
                continue
            if self.sink.building:
                await self.status.report("rebuilding", position=checkpoint.position,
                                         target=self.sink.target)
            return checkpoint

    async def step(self, checkpoint: Checkpoint) -> Checkpoint:
        """Apply one batch (or idle until the log grows); return the new checkpoint."""
        try:
            await self._recheck()
            await self._retry(lambda: self.sink.verify(checkpoint))
            await self._pace()
            batch = await self._retry(lambda: self._reader.read_partition(
                checkpoint, self.config.batch_size, self.partition))
            self.last_batch_size = len(batch)
            if not batch.events:
                checkpoint = await self._advance(checkpoint, batch.mark)
                if self.sink.building:  # caught up: let readers see it (when it may)
                    await self._retry(self.sink.publish)
                    if not self.sink.building:
                        log.info("%s: rebuilt %s published at %d", self.name,
                                 self.sink.target, checkpoint.position)
                await self._idle(checkpoint)
                # an empty read: every event of this partition up to the mark is applied
                await self._waiter.wait(min(self.config.poll_interval_s,
                                            self._advance_due or self.config.poll_interval_s),
                                        max(checkpoint, batch.mark or checkpoint))
                return checkpoint
            self._held_back_since = None
            started = time.perf_counter()
            full = len(batch) == self.config.batch_size
            self._partial_batch_at = None if full else time.monotonic()
            # A short batch is all this partition has up to the mark: complete through it.
            checkpoint = await self._apply_batch(batch.events, checkpoint,
                                                 None if full else batch.mark)
        except SinkMoved:
            log.info("%s: readers moved to %s; following it", self.name, self.sink.target)
            try:
                checkpoint = await self._retry(self.sink.checkpoint)
            except SinkGone as gone:
                return await self._rebuild(gone)
            await self.status.report("running", position=checkpoint.position,
                                     transaction_id=checkpoint.tx, target=self.sink.target)
            return checkpoint
        except SinkRewound as rewound:
            return await self._rewind(rewound)
        except SinkGone as gone:
            return await self._rebuild(gone)
        metrics.BATCH_SIZE.labels(self.name).observe(len(batch))
        metrics.BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        state = "catching_up" if len(batch) == self.config.batch_size else "running"
        if self.sink.building:
            state = "rebuilding"
        await self.status.report(state, position=checkpoint.position,
                                 transaction_id=checkpoint.tx, target=self.sink.target)
        return checkpoint

    async def _rewind(self, rewound: SinkRewound) -> Checkpoint:
        """The store came back older: re-apply from what it really holds."""
        metrics.REWINDS.labels(self.name).inc()
        log.warning("%s: %s holds less than applied (%s); re-applying from %d", self.name,
                    self.sink.target, rewound, rewound.stored.position)
        rewinds = int(self.status.detail.get("rewinds", 0)) + 1
        await self.status.report("rewound", position=rewound.stored.position,
                                 transaction_id=rewound.stored.tx, target=self.sink.target,
                                 rewinds=rewinds, last_rewind={
                                     "from": rewound.expected.position,
                                     "to": rewound.stored.position,
                                     "at": time.time()})
        return rewound.stored

    async def _rebuild(self, gone: SinkGone) -> Checkpoint:
        """The read model is gone: build a fresh target from the start of the log."""
        reason = str(gone)
        metrics.REBUILDS.labels(self.name).inc()
        log.warning("%s: %s; rebuilding it from the log", self.name, reason)
        await self._retry(lambda: self.sink.rebuild(gone.unpublish))
        rebuilds = int(self.status.detail.get("rebuilds", 0)) + 1
        await self.status.report("rebuilding", position=0, transaction_id=0,
                                 target=self.sink.target, rebuilds=rebuilds,
                                 rebuild_reason=reason[:300])
        return Checkpoint.start()

    async def _bind_log(self) -> None:
        """Give the sink the log's identity; wait (reporting why) while the database runs on
        another cluster than its log was written on, until `orders migrate` rebased it."""
        while True:
            identity = await self._retry(lambda: log_identity(self._pool))
            if not identity.moved:
                self.sink.log_identity = identity.key
                return
            message = (f"the database now runs on cluster {identity.live_cluster}, its log was "
                       f"written on {identity.cluster} (restored into another cluster?): run "
                       "`orders migrate` to rebase the log; the read models then rebuild")
            log.error("%s: %s", self.name, message)
            await self.status.report("source_moved", error=message)
            await self._sleep(max(self.config.poll_interval_s, 1.0))

    async def _recheck(self) -> None:
        """Every batch: the claim is still ours; at most every `recheck_s`: the log is the
        same."""
        if self.claim is not None and self.claim.token != self._token:
            raise LostLeadership(f"claim token now {self.claim.token}, ours {self._token}")
        now = time.monotonic()
        if now - self._rechecked_at < self.config.recheck_s:
            return
        before = self.sink.log_identity
        await self._bind_log()
        self._rechecked_at = now
        if before and self.sink.log_identity != before:
            raise SinkGone("the log was rebased onto another cluster", unpublish=True)

    async def _pace(self) -> None:
        """After a short batch, let events gather until the sink's batch interval is up
        (never while catching up: full batches go back to back)."""
        if self._partial_batch_at is None or self.sink.batch_interval_s <= 0:
            return
        remaining = self.sink.batch_interval_s - (time.monotonic() - self._partial_batch_at)
        if remaining > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), remaining)

    async def _advance(self, checkpoint: Checkpoint, mark: Checkpoint | None) -> Checkpoint:
        """Caught up: move the checkpoint to the log's horizon mark (no event of this
        partition lies between), at most every `advance_every_s`, so the watermark of all
        partitions follows the log instead of waiting on idle ones. One held back by that
        limit is due when it ends (`_advance_due`), not at the next poll."""
        self._advance_due = None
        if mark is None or mark <= checkpoint:
            return checkpoint
        now = time.monotonic()
        wait = self.advance_every_s - (now - self._advanced_at)
        if wait > 0:
            self._advance_due = wait
            return checkpoint
        self._advanced_at = now
        await self._apply([], checkpoint, mark)
        return mark

    async def _apply_batch(self, batch: list[LoggedEvent], start: Checkpoint,
                           mark: Checkpoint | None = None) -> Checkpoint:
        changes, poison = await self._retry(lambda: load_changes(self._pool, batch))
        upto = changes[-1].logged.checkpoint if changes else None
        if poison is None and upto is not None and mark is not None and mark > upto:
            upto = mark
        if changes and upto is not None:
            await self._apply(changes, start, upto)
            start = upto
        if poison is None:
            assert upto is not None
            return upto
        await self._poisoned(poison.logged.position, poison.error)
        await self._apply([], start, poison.logged.checkpoint)  # skip mode: move past, recorded
        return poison.logged.checkpoint

    async def _apply(self, changes: list[Change], start: Checkpoint, upto: Checkpoint) -> None:
        attempt = 0
        while True:
            try:
                result = await self.sink.apply(changes, start, upto)
            except RETRYABLE as exc:
                attempt += 1
                metrics.RETRIES.labels(self.name).inc()
                state = "sink_down" if isinstance(exc, SinkUnavailable) else "source_down"
                await self.status.report(state, error=str(exc)[:500], retries=attempt)
                log.warning("%s: %s (attempt %d): %s", self.name, state, attempt, exc)
                await self._sleep(self._backoff(attempt))
                continue
            except PoisonEvent as exc:
                await self._poisoned(exc.position, exc.error)
                changes = [c for c in changes if c.logged.position != exc.position]
                continue
            metrics.EVENTS_APPLIED.labels(self.name).inc(result.applied)
            metrics.EVENTS_STALE.labels(self.name).inc(result.stale)
            self.status.detail.pop("error", None)
            return

    async def _poisoned(self, position: int, error: str) -> None:
        """Record a dead letter; stop unless configured to skip (and say so)."""
        await self._retry(lambda: self._pool.execute(DEAD_LETTER, self.name, position, error))
        metrics.DEAD_LETTERS.labels(self.name).inc()
        log.error("%s: event %d is poison: %s", self.name, position, error)
        if not self.config.skip_poison:
            await self.status.report("stopped_on_poison", poison_position=position,
                                     error=error[:500])
            await self._stop.wait()
            raise Stopped
        await self.status.report("running", skipped_poison_position=position)

    async def _idle(self, checkpoint: Checkpoint) -> None:
        """Report the lag; when the snapshot horizon holds events back too long, say who."""
        now = time.monotonic()
        if now - self._idle_checked_at < self.config.idle_check_s:
            return
        self._idle_checked_at = now
        pending = await self._retry(lambda: self._reader.pending(checkpoint, self.partition))
        metrics.LAG_EVENTS.labels(self.name).set(pending.events)
        if pending.events == 0:
            self._held_back_since = None
            metrics.LAG_SECONDS.labels(self.name).set(0)
            await self.status.report("running", position=checkpoint.position, stalled_by=None,
                                     target=self.sink.target)
            return
        self._held_back_since = self._held_back_since or now
        if now - self._held_back_since < self.config.stall_after_s:
            return
        blocker = await self._retry(self._reader.oldest_writer)
        log.warning("%s: %d committed events held back by an open transaction: %s",
                    self.name, pending.events, blocker)
        await self.status.report("stalled", stalled_by=blocker, held_back=pending.events)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.config.backoff_max_s, self.config.backoff_base_s * 2 ** attempt)
        return random.uniform(ceiling / 2, ceiling)  # jitter: restarts do not stampede

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
        if self._stop.is_set():
            raise Stopped

    async def _retry(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run a PostgreSQL or sink call, retrying outages until it succeeds or we stop."""
        attempt = 0
        while True:
            try:
                return await call()
            except RETRYABLE as exc:
                attempt += 1
                state = "sink_down" if isinstance(exc, SinkUnavailable) else "source_down"
                if attempt == 1:
                    log.warning("%s: %s: %s", self.name, state, exc)
                await self.status.report(state, error=str(exc)[:500])
                await self._sleep(self._backoff(attempt))

    @contextlib.asynccontextmanager
    async def _claimed(self) -> Any:
        """Wait as a hot standby until this process holds the partition's claim; write
        under its token while held."""
        while self.claim is not None and self.claim.token is None:
            await self._sleep(self.config.standby_poll_s)
        self._token = self.claim.token if self.claim is not None else None
        self.sink.fence(self._token)
        self.active = True
        self._rechecked_at = time.monotonic()
        try:
            await self.status.report("running", claim_token=self._token)
            yield
        finally:
            self.active = False

"""The search read model: one whole document per order in Elasticsearch.

Writes go through the bulk API with `version_type=external` and the order's stream version,
so a replayed or late event can never regress a document: Elasticsearch answers 409 and we
count it as stale. The checkpoint (in PostgreSQL) moves only after the bulk succeeded and the
index was refreshed, so a checkpointed event is durable and searchable.

A live batch does not force a refresh: its bulk request waits (`refresh=wait_for`) for the
index's next scheduled one (`ORDERS_SEARCH_REFRESH_INTERVAL`, 250 ms), which every partition
and every projector process writing meanwhile shares. Refreshes are most of what indexing
costs Elasticsearch here (each writes a segment of prefix and completion terms), and one
forced per partition per batch had it refresh up to forty times a second.

Partitions share one index, each with its own checkpoint. An index built from nothing is
found by every partition under the build alias `<alias>-building` (created once, under an
advisory lock) and published by whichever partition sees every partition near the log's end.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, TransportError

from app.kernel import locks
from app.kernel.partitions import Fence, Partition
from app.kernel.positions import Checkpoint, LogPositions, PostgresCheckpoints
from app.kernel.readmodels import (
    IndexRef,
    SearchIndexOptions,
    load_search_checkpoint,
    next_index_name,
    resolve_index,
    search_frontier,
)
from projectors.changes import Change
from projectors.documents import index_body, order_document
from projectors.sinks import (
    ApplyResult,
    PoisonEvent,
    SinkGone,
    SinkMoved,
    SinkRewound,
    SinkUnavailable,
)

log = logging.getLogger("orders.projector")
VERIFY_EVERY_S = 1.0
# Statuses that mean "try again later", not "this document is bad".
TRANSIENT = {408, 429, 500, 502, 503, 504}
# A partitioned index built from nothing is published once every partition is this close.
PUBLISH_LAG = 100
# A batch of at least this many documents (catching up) forces its own refresh rather than
# wait for the scheduled one: the wait would idle a projector that has work queued.
FORCED_REFRESH_DOCS = 200


class SearchIndexSink:
    """Feeds one physical index (`orders-vN`); the alias points readers at the live one.

    The checkpoint is bound to the index's identity (name and uuid): an index deleted and
    created again, even under its old name, starts from nothing instead of inheriting it.
    """

    name = "search"
    # No pause: a live batch already waits for the index's scheduled refresh (see above).
    batch_interval_s = 0.0
    horizon_every_s = 0.5  # a PostgreSQL commit per move; search is fresh within a second
    # False: every batch forces its own refresh (a rebuild chasing the log: no reader shares
    # its refreshes, and each wait would hold up the swap).
    shared_refresh = True

    def __init__(self, es: AsyncElasticsearch, checkpoints: PostgresCheckpoints,
                 alias: str = "orders", index: str | None = None,
                 options: SearchIndexOptions | None = None,
                 partition: Partition | None = None) -> None:
        self.es = es
        self.options = options or SearchIndexOptions()
        self.alias = alias
        self.partition = partition or Partition()
        self.fencing_token: int | None = None
        self.index = index or ""
        self.ref: IndexRef | None = None
        # A live sink follows the alias; a rebuild's sink stays on the index it builds.
        self.follows_alias = index is None
        self._checkpoints = checkpoints
        self._building = False
        self._verified_at = 0.0
        self.log_identity = ""

    @property
    def target(self) -> str:
        return self.index

    @property
    def building(self) -> bool:
        return self._building

    @property
    def checkpoint_name(self) -> str:
        assert self.ref is not None, "prepare() first"
        return self.ref.partition_checkpoint(self.partition)

    @property
    def building_alias(self) -> str:
        return f"{self.alias}-building"

    def fence(self, token: int | None) -> None:
        """Save checkpoints under this claim token from now on."""
        self.fencing_token = token
        self._verified_at = 0.0

    def _fence(self) -> Fence | None:
        if self.fencing_token is None:
            return None
        return Fence(self.name, self.partition, self.fencing_token)

    async def prepare(self) -> None:
        """Resolve the live index behind the alias; with none, start building one."""
        async with _unavailable():
            ref = await resolve_index(self.es, self.index or self.alias)
        if ref is not None and (self.follows_alias or ref.name == self.index):
            if self.follows_alias and ref.refresh_interval != self.options.refresh_interval:
                ref = await self._configure_refresh(ref)
            self.ref, self.index, self._building = ref, ref.name, False
            return
        if not self.follows_alias:
            raise SinkGone(f"index {self.index} does not exist")
        await self.rebuild()

    async def _configure_refresh(self, ref: IndexRef) -> IndexRef:
        """Give the live index the configured refresh interval: one made before
        `ORDERS_SEARCH_REFRESH_INTERVAL` changed takes the new value when the projector
        starts, without a rebuild (the setting, not the index, is the source of truth)."""
        interval = self.options.refresh_interval
        async with _unavailable():
            await self.es.indices.put_settings(
                index=ref.name, settings={"index": {"refresh_interval": interval}})
        log.info("search: %s refreshes every %s (was %s)", ref.name, interval,
                 ref.refresh_interval or "the default")
        return replace(ref, refresh_interval=interval)

    async def rebuild(self, unpublish: bool = False) -> None:
        """Create a fresh index under a new name; readers see it once it is published."""
        if not self.partition.whole and self.follows_alias:
            await self._join_build(unpublish)
            return
        async with _unavailable():
            if unpublish and self.ref is not None:  # describes another log: withdraw it
                await self.es.indices.delete(index=self.ref.name, ignore_unavailable=True)
            await self._drop_junk(keep=None)
            name = await next_index_name(self.es, self.alias)
            await self.es.indices.create(
                index=name, wait_for_active_shards=self.options.wait_for_active_shards,
                **index_body(self.options))
            self.ref = await resolve_index(self.es, name)
        if self.ref is None:
            raise SinkUnavailable(f"index {name} vanished right after it was created")
        self.index = name
        self._building = self.follows_alias

    async def _join_build(self, unpublish: bool) -> None:
        """Every partition builds into the one index under the build alias; the first to
        arrive (under an advisory lock) creates it."""
        pool = self._checkpoints.pool
        async with pool.acquire() as conn, locks.session_lock(conn, locks.build(self.alias)):
            async with _unavailable():
                if unpublish and self.ref is not None:
                    await self.es.indices.delete(index=self.ref.name,
                                                 ignore_unavailable=True)
                ref = await resolve_index(self.es, self.building_alias)
                await self._drop_junk(keep=ref)
                if ref is None or (self.ref is not None and ref.uuid == self.ref.uuid):
                    name = await next_index_name(self.es, self.alias)
                    await self.es.indices.create(  # the deployment's shards/replicas
                        index=name, wait_for_active_shards=self.options.wait_for_active_shards,
                        **index_body(self.options))
                    await self.es.indices.put_alias(index=name, name=self.building_alias)
                    ref = await resolve_index(self.es, name)
        if ref is None:
            raise SinkUnavailable("the index being built vanished right after it was created")
        self.ref, self.index, self._building = ref, ref.name, True

    async def _drop_junk(self, keep: IndexRef | None) -> None:
        """A bulk into our deleted index re-created it under its old name with guessed
        mappings: delete that, unless it is what readers or the build now use. Every
        partition that wrote into it passes here afterwards, so the last one removes it."""
        if self.ref is None:
            return
        junk = await resolve_index(self.es, self.ref.name)
        if junk is None or junk.uuid == self.ref.uuid or (keep and junk.uuid == keep.uuid):
            return
        live = await resolve_index(self.es, self.alias)
        if live is None or live.uuid != junk.uuid:
            await self.es.indices.delete(index=junk.name, ignore_unavailable=True)

    async def _all_near_end(self) -> bool:
        """Every partition of the index being built is within PUBLISH_LAG of the log's end."""
        frontier = await search_frontier(self._checkpoints, self.ref, self.partition.count)
        pending = await LogPositions(self._checkpoints.pool).pending(frontier.watermark)
        return pending.events < PUBLISH_LAG

    async def publish(self) -> None:
        """Point the alias at the built index, unless another index was published since."""
        if not self.partition.whole and self.follows_alias:
            async with _unavailable():
                live = await resolve_index(self.es, self.alias)
            if live is None and not await self._all_near_end():
                return  # other partitions are still building: stay unseen
            if live is None:
                async with _unavailable():
                    await self.es.indices.update_aliases(actions=[
                        {"add": {"index": self.index, "alias": self.alias}},
                        {"remove": {"index": self.index, "alias": self.building_alias,
                                    "must_exist": False}}])
        async with _unavailable():
            live = await resolve_index(self.es, self.alias)
            if live is None:
                await self.es.indices.update_aliases(
                    actions=[{"add": {"index": self.index, "alias": self.alias}}])
        self._building = False
        if live is not None and self.ref is not None and live.uuid != self.ref.uuid:
            built = self.index
            self.ref, self.index = live, live.name
            async with _unavailable():
                await self.es.indices.delete(index=built, ignore_unavailable=True)
            raise SinkMoved(live.name)

    async def checkpoint(self) -> Checkpoint:
        assert self.ref is not None, "prepare() first"
        stored, identity = await load_search_checkpoint(self._checkpoints, self.ref,
                                                        self.partition)
        if identity is None:  # saved before checkpoints named the index uuid and the log
            stored, identity = await self._checkpoints.load_bound(f"search:{self.index}")
            if identity is not None:
                await self._checkpoints.save(self.checkpoint_name, stored, self.log_identity,
                                             self._fence())
                identity = self.log_identity
        if identity and identity != self.log_identity:
            raise SinkGone("the search checkpoint belongs to another log", unpublish=True)
        return stored

    async def verify(self, expected: Checkpoint) -> None:
        """The alias still names our index (same uuid) and its checkpoint is `expected`."""
        now = time.monotonic()
        if now - self._verified_at < VERIFY_EVERY_S:
            return
        async with _unavailable():
            live = await resolve_index(self.es, self.alias)
            own = live if live is not None and live.name == self.index else \
                await resolve_index(self.es, self.index)
        if own is None or self.ref is None or own.uuid != self.ref.uuid:
            raise SinkGone(f"index {self.index} is gone or was replaced")
        self.ref = own  # the same index, with its refresh interval as set now
        if self.follows_alias and not self._building:
            if live is None:  # the alias alone was removed: our index is intact, put it back
                async with _unavailable():
                    await self.es.indices.put_alias(index=self.index, name=self.alias)
            elif live.uuid != own.uuid:
                self.ref, self.index = live, live.name
                raise SinkMoved(live.name)
        stored = await self.checkpoint()
        if stored < expected:
            raise SinkRewound(stored, expected)
        self._verified_at = now

    async def apply(self, changes: list[Change], start: Checkpoint,
                    upto: Checkpoint) -> ApplyResult:
        await self.verify(start)  # alias and index identity, at most every second
        stored = await self.checkpoint()  # the checkpoint itself on every batch: one PK read
        if stored < start:
            raise SinkRewound(stored, start)
        latest: dict[str, Change] = {}
        for change in changes:  # the newest state of each order is the only one worth sending
            latest[str(change.after.order_id)] = change
        result = ApplyResult()
        if latest:
            result = await self._bulk(list(latest.values()))
            async with _unavailable():
                if result.stale:  # replayed: the first write may never have been refreshed
                    _refreshed(await self.es.indices.refresh(index=self.index), self.index)
                written = await resolve_index(self.es, self.index)
            # A bulk into a deleted index creates a new one: never checkpoint that.
            if written is None or self.ref is None or written.uuid != self.ref.uuid:
                raise SinkGone(f"index {self.index} was replaced while a batch was written")
        # Fenced: refused (raises) once another process claimed this partition.
        await self._checkpoints.save(self.checkpoint_name, upto, self.log_identity,
                                     self._fence())
        return result

    async def _bulk(self, changes: list[Change]) -> ApplyResult:
        operations: list[dict[str, Any]] = []
        for change in changes:
            operations.append({"index": {"_index": self.index, "_id": str(change.after.order_id),
                                         "version": change.after.version,
                                         "version_type": "external"}})
            operations.append(order_document(change.after))
        async with _unavailable():
            response = await self.es.bulk(
                operations=operations, refresh=self._refresh_policy(len(changes)),
                wait_for_active_shards=self.options.wait_for_active_shards)
        result = ApplyResult()
        for change, item in zip(changes, response["items"], strict=True):
            outcome = item["index"]
            status = outcome.get("status", 500)
            if status < 300:
                _refreshed(outcome, self.index)
                result.applied += 1
            elif status == 409:
                result.stale += 1
            else:
                raise item_failure(change.logged.position, status, outcome.get("error"))
        return result

    def _refresh_policy(self, documents: int) -> str:
        """`wait_for` the scheduled refresh when the index has one and the batch is small;
        otherwise the bulk forces a refresh of its own (`true`)."""
        scheduled = self.ref is not None and self.ref.refresh_interval not in (None, "-1")
        shared = self.shared_refresh and scheduled and documents < FORCED_REFRESH_DOCS
        return "wait_for" if shared else "true"


def _refreshed(answer: Any, index: str) -> None:
    """A copy that failed to write or refresh (its node dying) may be the one promoted
    next: such a batch is not searchable everywhere, so it is not checkpointed."""
    failed = answer.get("_shards", {}).get("failed", 0)
    if failed:
        raise SinkUnavailable(f"a write or refresh of {index} failed on {failed} shard copies")


def item_failure(position: int, status: int, error: Any) -> Exception:
    """What a failed bulk item means. Only the document's own fault is poison: a missing
    index (deleted under us) means the read model is gone, and a refused or blocked index
    (credentials, a disk-full read-only block, a closed index) is an outage of the sink."""
    kind = error.get("type", "") if isinstance(error, dict) else ""
    message = f"bulk item {status}: {error}"
    if kind == "index_not_found_exception":
        return SinkGone(f"index deleted under a batch ({message})")
    if status in TRANSIENT or status in (401, 403) or kind in (
            "cluster_block_exception", "index_closed_exception"):
        return SinkUnavailable(message)
    return PoisonEvent(position, f"{status}: {error}")


@contextlib.asynccontextmanager
async def _unavailable() -> AsyncIterator[None]:
    """Elasticsearch errors as the runner's SinkUnavailable (retried with back-off)."""
    try:
        yield
    except (ApiError, TransportError) as exc:
        raise SinkUnavailable(f"elasticsearch: {exc}") from None

"""The search read model: one whole document per order in Elasticsearch.

Writes go through the bulk API with `version_type=external` and the order's stream version,
so a replayed or late event can never regress a document: Elasticsearch answers 409 and we
count it as stale. The checkpoint (in PostgreSQL) moves only after the bulk succeeded and the
index was refreshed, so a checkpointed event is durable and searchable.
"""

from __future__ import annotations

import time
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, TransportError

from app.positions import Checkpoint, PostgresCheckpoints
from app.readmodels import live_index, search_checkpoint_name
from projectors.changes import Change
from projectors.documents import index_body, order_document
from projectors.sinks import ApplyResult, PoisonEvent, SinkMoved, SinkUnavailable

ALIAS_RECHECK_S = 1.0
# Statuses that mean "try again later", not "this document is bad".
TRANSIENT = {408, 429, 500, 502, 503, 504}


class SearchIndexSink:
    """Feeds one physical index (`orders-vN`); the alias points readers at the live one."""

    name = "search"
    batch_interval_s = 0.1  # every batch ends in a refresh: at most ten a second when live

    def __init__(self, es: AsyncElasticsearch, checkpoints: PostgresCheckpoints,
                 alias: str = "orders", index: str | None = None) -> None:
        self.es = es
        self.alias = alias
        self.index = index or ""
        # A live sink follows the alias; a rebuild's sink stays on the index it builds.
        self.follows_alias = index is None
        self._checkpoints = checkpoints
        self._alias_checked = 0.0

    @property
    def target(self) -> str:
        return self.index

    @property
    def checkpoint_name(self) -> str:
        return search_checkpoint_name(self.index)

    async def prepare(self) -> None:
        """Resolve the live index behind the alias, or create `<alias>-v1` and the alias."""
        try:
            if not self.index:
                self.index = await live_index(self.es, self.alias) or f"{self.alias}-v1"
            if not await self.es.indices.exists(index=self.index):
                await self.es.indices.create(index=self.index, **index_body())
            if not await self.es.indices.exists_alias(name=self.alias):
                await self.es.indices.put_alias(index=self.index, name=self.alias)
        except ApiError as exc:
            if exc.status_code == 400 and "already_exists" in str(exc):
                return
            raise SinkUnavailable(str(exc)) from None
        except TransportError as exc:
            raise SinkUnavailable(str(exc)) from None

    async def checkpoint(self) -> Checkpoint:
        return await self._checkpoints.load(self.checkpoint_name)

    async def follow(self) -> None:
        await self._follow_alias()

    async def _follow_alias(self) -> None:
        """Switch to the index the alias names now, if a rebuild swapped it (checked <= 1/s)."""
        now = time.monotonic()
        if not self.follows_alias or now - self._alias_checked < ALIAS_RECHECK_S:
            return
        try:
            current = await live_index(self.es, self.alias)
        except (ApiError, TransportError) as exc:
            raise SinkUnavailable(str(exc)) from None
        self._alias_checked = now
        if current and current != self.index:
            self.index = current
            raise SinkMoved(current)

    async def apply(self, changes: list[Change], upto: Checkpoint) -> ApplyResult:
        await self._follow_alias()
        latest: dict[str, Change] = {}
        for change in changes:  # the newest state of each order is the only one worth sending
            latest[str(change.after.order_id)] = change
        result = ApplyResult()
        if latest:
            result = await self._bulk(list(latest.values()))
            try:
                await self.es.indices.refresh(index=self.index)
            except (ApiError, TransportError) as exc:
                raise SinkUnavailable(f"refresh failed: {exc}") from None
        await self._checkpoints.save(self.checkpoint_name, upto)
        return result

    async def _bulk(self, changes: list[Change]) -> ApplyResult:
        operations: list[dict[str, Any]] = []
        for change in changes:
            operations.append({"index": {"_index": self.index, "_id": str(change.after.order_id),
                                         "version": change.after.version,
                                         "version_type": "external"}})
            operations.append(order_document(change.after))
        try:
            response = await self.es.bulk(operations=operations)
        except (ApiError, TransportError) as exc:
            raise SinkUnavailable(f"bulk failed: {exc}") from None
        result = ApplyResult()
        for change, item in zip(changes, response["items"], strict=True):
            outcome = item["index"]
            status = outcome.get("status", 500)
            if status < 300:
                result.applied += 1
            elif status == 409:
                result.stale += 1
            elif status in TRANSIENT:
                raise SinkUnavailable(f"bulk item {status}: {outcome.get('error')}")
            else:
                raise PoisonEvent(change.logged.position, f"{status}: {outcome.get('error')}")
        return result

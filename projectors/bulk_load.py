"""Load a fresh search index from the whole log, fast and in flat memory.

The log is streamed by order (`stream_id, version`, the unique index), each order is folded
in memory with the domain's `evolve`, and its final document is indexed; bulk requests of
CHUNK documents go out with up to IN_FLIGHT at once. Every DRAIN_EVERY chunks all requests
are awaited and the last finished order is recorded, so a killed load resumes from there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from uuid import UUID

import asyncpg
from elasticsearch import AsyncElasticsearch

from app.domain.events import load_event_json
from app.domain.order import Order, evolve
from projectors.documents import order_document

STREAM_EVENTS = """
SELECT stream_id, type, schema_version, data::text AS data FROM events
WHERE stream_id > $1 ORDER BY stream_id, version"""
CHUNK = 2000
IN_FLIGHT = 3
DRAIN_EVERY = 4
PROGRESS_EVERY = 1000


class Counter(Protocol):
    def add(self, events: int = 0, docs: int = 0) -> None: ...


class BulkLoadError(RuntimeError):
    """Elasticsearch refused documents of the rebuild."""


async def _bulk(es: AsyncElasticsearch, operations: list[dict[str, Any]],
                progress: Counter) -> None:
    response = await es.bulk(operations=operations, refresh=False)
    if response["errors"]:
        failed = [item["index"] for item in response["items"]
                  if item["index"].get("status", 500) >= 300
                  and item["index"].get("status") != 409]  # 409: already there, newer
        if failed:
            raise BulkLoadError(f"{len(failed)} documents refused, e.g. {failed[0]}")
    progress.add(docs=len(operations) // 2)


def _operations(index: str, order: Order) -> list[dict[str, Any]]:
    return [{"index": {"_index": index, "_id": str(order.order_id), "version": order.version,
                       "version_type": "external"}}, order_document(order)]


async def load_search_index(pool: asyncpg.Pool[Any], es: AsyncElasticsearch, index: str,
                            resume_after: UUID | None, progress: Counter,
                            save_resume: Callable[[UUID], Awaitable[None]]) -> None:
    """Index the final document of every order after `resume_after` into `index`."""
    inflight: set[asyncio.Task[None]] = set()
    operations: list[dict[str, Any]] = []
    chunks = 0
    last_emitted: UUID | None = None
    current: UUID | None = None
    state: Order | None = None
    unreported = 0

    async def ship() -> None:
        nonlocal operations, chunks
        if len(inflight) >= IN_FLIGHT:
            done, _ = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
            inflight.difference_update(done)
            for task in done:
                task.result()
        inflight.add(asyncio.create_task(_bulk(es, operations, progress)))
        operations, chunks = [], chunks + 1
        if chunks % DRAIN_EVERY == 0:
            await drain()

    async def drain() -> None:
        if inflight:
            await asyncio.gather(*inflight)
            inflight.clear()
        if last_emitted is not None:
            await save_resume(last_emitted)

    async def emit() -> None:
        nonlocal last_emitted
        if state is not None and current is not None:
            operations.extend(_operations(index, state))
            last_emitted = current
            if len(operations) >= CHUNK * 2:
                await ship()

    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                        readonly=True):
        async for row in conn.cursor(STREAM_EVENTS, resume_after or UUID(int=0),
                                     prefetch=1000):
            if row["stream_id"] != current:
                await emit()
                current, state = row["stream_id"], None
            state = evolve(state, load_event_json(row["type"], row["schema_version"],
                                                  row["data"]))
            unreported += 1
            if unreported >= PROGRESS_EVERY:
                progress.add(events=unreported)
                unreported = 0
    await emit()
    progress.add(events=unreported)
    if operations:
        await ship()
    await drain()

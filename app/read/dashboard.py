"""The dashboard from Redis: each partition's live counters in one script call (all its keys
share one hash tag), summed; the answer's frontier is each partition's checkpoint."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from app.domain.money import from_cents
from app.kernel.partitions import DEFAULT_PARTITIONS, all_partitions
from app.kernel.positions import Checkpoint, Frontier
from app.kernel.readmodels import (
    GENERATION_SLOT,
    dashboard_frontier,
    dashboard_pointer,
    dashboard_templates,
    parse_checkpoint,
)
from app.kernel.unavailable import unavailable_on_failure
from app.read.progress import Broadcast

SCRIPT = (Path(__file__).parent / "dashboard_read.lua").read_text()
COUNTERS = ("placed", "cancelled", "shipped", "open")
DAY_FIELDS = ("placed", "cancelled", "shipped", "revenue_cents")


class DashboardNotBuilt(Exception):
    """No dashboard generation is published: never built yet, or being rebuilt after the
    store lost it. Answered with 503 rather than zeros that would look like real figures."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(flat: list[Any]) -> dict[str, str]:
    return {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}


def _by_day(fields: dict[str, str], days: int) -> list[dict[str, Any]]:
    buckets: dict[str, dict[str, int]] = {}
    for name, value in fields.items():
        day, _, metric = name.partition(":")
        buckets.setdefault(day, dict.fromkeys(DAY_FIELDS, 0))[metric] = int(value)
    recent = sorted(buckets)[-days:] if days > 0 else []
    return [{"day": day, "placed": buckets[day]["placed"],
             "cancelled": buckets[day]["cancelled"], "shipped": buckets[day]["shipped"],
             "revenue": from_cents(buckets[day]["revenue_cents"])} for day in recent]


def _add(total: dict[str, int], fields: dict[str, str]) -> None:
    for name, value in fields.items():
        total[name] = total.get(name, 0) + int(float(value))


def dashboard_body(raws: list[list[Any]], days: int,
                   top: int = 10) -> tuple[dict[str, Any], Frontier]:
    """The API's dashboard JSON (the partitions summed) and the frontier it reflects, from
    each partition's script answer."""
    counters: dict[str, int] = {}
    by_day: dict[str, int] = {}
    skus: dict[str, int] = {}
    checkpoints: list[Checkpoint] = []
    for raw in raws:
        _add(counters, _pairs(raw[1]))
        _add(by_day, _pairs(raw[2]))
        _add(skus, _pairs(raw[3]))
        checkpoints.append(parse_checkpoint(raw[4][0], raw[4][1]))
    # as ZREVRANGE orders one sorted set: by quantity, then by SKU, both descending
    ranked = sorted(skus.items(), key=lambda item: (item[1], item[0]), reverse=True)[:top]
    frontier = Frontier(tuple(checkpoints))
    body = {
        "orders": {name: counters.get(name, 0) for name in COUNTERS},
        "revenue": {"gross": from_cents(counters.get("gross_cents", 0)),
                    "net": from_cents(counters.get("net_cents", 0))},
        "by_day": _by_day({k: str(v) for k, v in by_day.items()}, days),
        "top_skus": [{"sku": sku, "quantity": quantity} for sku, quantity in ranked],
        "position": frontier.position,
    }
    return body, frontier


class DashboardReader:
    """Reads the live generation of every dashboard partition and sums them."""

    def __init__(self, redis: Redis, namespace: str,
                 partitions: int = DEFAULT_PARTITIONS) -> None:
        self._redis = redis
        self._namespace = namespace
        self._partitions = all_partitions(partitions)
        self._script = redis.register_script(SCRIPT)

    async def read(self, days: int = 30, top: int = 10) -> tuple[dict[str, Any], Frontier]:
        with unavailable_on_failure("redis"):
            raws = await asyncio.gather(*(
                self._script(keys=[dashboard_pointer(self._namespace, part)],
                             args=[*dashboard_templates(self._namespace, part),
                                   GENERATION_SLOT])
                for part in self._partitions))
        if any(not raw or raw[0] is None for raw in raws):
            raise DashboardNotBuilt("the dashboard is being built from the event log")
        return dashboard_body([list(raw) for raw in raws], days, top)

    async def checkpoint(self) -> Frontier:
        with unavailable_on_failure("redis"):
            return await dashboard_frontier(self._redis, self._namespace,
                                            len(self._partitions))


class DashboardCache:
    """The rendered dashboard, shared by every reader until the projection moves.

    An answer is reused only while no change notice has arrived since its read began and it
    is younger than `max_age_s` (the safety net for a lost notice); concurrent misses share
    one Redis read. A reader needing a later checkpoint (`at_least`) never gets an older one.
    """

    def __init__(self, reader: DashboardReader, notices: Broadcast,
                 max_age_s: float = 0.5) -> None:
        self._reader = reader
        self._notices = notices
        self._max_age_s = max_age_s
        # days -> (notices seen before the read, read at, rendered body, frontier)
        self._entries: dict[int, tuple[int, float, bytes, Frontier]] = {}
        # days -> (notices seen when it started, the read in flight)
        self._reading: dict[int, tuple[int, asyncio.Task[tuple[bytes, Frontier]]]] = {}

    async def read(self, days: int = 30,
                   at_least: Frontier | Checkpoint | None = None) -> tuple[bytes, Frontier]:
        published = self._notices.published
        entry = self._entries.get(days)
        if (entry is not None and entry[0] == published
                and time.monotonic() - entry[1] <= self._max_age_s
                and (at_least is None or _covers(entry[3], at_least))):
            return entry[2], entry[3]
        pending = self._reading.get(days)
        if pending is not None and pending[0] == published and at_least is None:
            task = pending[1]  # a read that began after the latest notice: share it
        else:
            # A task of its own: a reader that leaves does not cancel the others' read.
            task = asyncio.create_task(self._fetch(days, published))
            self._reading[days] = (published, task)
            task.add_done_callback(lambda done: self._forget(days, done))
        return await asyncio.shield(task)

    def _forget(self, days: int, task: asyncio.Task[tuple[bytes, Frontier]]) -> None:
        pending = self._reading.get(days)
        if pending is not None and pending[1] is task:
            del self._reading[days]
        if not task.cancelled():
            task.exception()  # retrieved: its readers re-raise it, nobody logs it as lost

    async def _fetch(self, days: int, seen: int) -> tuple[bytes, Frontier]:
        """One Redis read; `seen` is the notice count before it began, so a notice that
        lands during the read leaves the answer already stale."""
        body, checkpoint = await self._reader.read(days=days)
        rendered = json.dumps(body, separators=(",", ":")).encode()
        kept = self._entries.get(days)
        # Overlapping reads: the newest data stays, and of equal data the later-begun read
        # (a higher `seen` never comes with older data kept as fresh).
        if kept is None or (kept[3].watermark, kept[0]) <= (checkpoint.watermark, seen):
            self._entries[days] = (seen, time.monotonic(), rendered, checkpoint)
        return rendered, checkpoint


def _covers(answer: Frontier, needed: Frontier | Checkpoint) -> bool:
    if isinstance(needed, Checkpoint):
        return answer.watermark >= needed
    return answer.at_least(needed)

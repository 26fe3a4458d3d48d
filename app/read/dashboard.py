"""The dashboard from Redis: every counter of the live generation in one round trip."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from app.domain.money import from_cents
from app.kernel.positions import Checkpoint
from app.kernel.readmodels import dashboard_checkpoint, dashboard_pointer, parse_checkpoint
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


def dashboard_body(raw: list[Any], days: int) -> tuple[dict[str, Any], Checkpoint]:
    """The API's dashboard JSON and the checkpoint it reflects, from the script's answer."""
    counters: dict[str, str] = {}
    by_day: dict[str, str] = {}
    top_list: list[Any] = []
    checkpoint = Checkpoint.start()
    if raw and raw[0] is not None:
        counters, by_day, top_list = _pairs(raw[1]), _pairs(raw[2]), raw[3]
        checkpoint = parse_checkpoint(raw[4][0], raw[4][1])
    body = {
        "orders": {name: int(counters.get(name, 0)) for name in COUNTERS},
        "revenue": {"gross": from_cents(int(counters.get("gross_cents", 0))),
                    "net": from_cents(int(counters.get("net_cents", 0)))},
        "by_day": _by_day(by_day, days),
        "top_skus": [{"sku": _text(top_list[i]), "quantity": int(float(top_list[i + 1]))}
                     for i in range(0, len(top_list), 2)],
        "position": checkpoint.position,
    }
    return body, checkpoint


class DashboardReader:
    """Reads the live dashboard generation named by the pointer key."""

    def __init__(self, redis: Redis, namespace: str) -> None:
        self._redis = redis
        self._namespace = namespace
        self._script = redis.register_script(SCRIPT)

    async def read(self, days: int = 30, top: int = 10) -> tuple[dict[str, Any], Checkpoint]:
        raw = await self._script(keys=[dashboard_pointer(self._namespace)],
                                 args=[self._namespace, top])
        if not raw or raw[0] is None:
            raise DashboardNotBuilt("the dashboard is being built from the event log")
        return dashboard_body(list(raw), days)

    async def checkpoint(self) -> Checkpoint:
        return await dashboard_checkpoint(self._redis, self._namespace)


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
        # days -> (notices seen before the read, read at, rendered body, checkpoint)
        self._entries: dict[int, tuple[int, float, bytes, Checkpoint]] = {}
        # days -> (notices seen when it started, the read in flight)
        self._reading: dict[int, tuple[int, asyncio.Task[tuple[bytes, Checkpoint]]]] = {}

    async def read(self, days: int = 30,
                   at_least: Checkpoint | None = None) -> tuple[bytes, Checkpoint]:
        published = self._notices.published
        entry = self._entries.get(days)
        if (entry is not None and entry[0] == published
                and time.monotonic() - entry[1] <= self._max_age_s
                and (at_least is None or entry[3] >= at_least)):
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

    def _forget(self, days: int, task: asyncio.Task[tuple[bytes, Checkpoint]]) -> None:
        pending = self._reading.get(days)
        if pending is not None and pending[1] is task:
            del self._reading[days]
        if not task.cancelled():
            task.exception()  # retrieved: its readers re-raise it, nobody logs it as lost

    async def _fetch(self, days: int, seen: int) -> tuple[bytes, Checkpoint]:
        """One Redis read; `seen` is the notice count before it began, so a notice that
        lands during the read leaves the answer already stale."""
        body, checkpoint = await self._reader.read(days=days)
        rendered = json.dumps(body, separators=(",", ":")).encode()
        kept = self._entries.get(days)
        # Overlapping reads: the newest data stays, and of equal data the later-begun read
        # (a higher `seen` never comes with older data kept as fresh).
        if kept is None or (kept[3], kept[0]) <= (checkpoint, seen):
            self._entries[days] = (seen, time.monotonic(), rendered, checkpoint)
        return rendered, checkpoint

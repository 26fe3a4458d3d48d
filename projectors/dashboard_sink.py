"""The dashboard read model: counters in Redis, applied with the checkpoint by one script.

Keys live under a generation prefix `{ns}:dash:{gen}` so a rebuild can fill a fresh one
while readers use the live one named by the pointer key `{ns}:dash:active`.
Money is kept in integer cents, so sums are exact.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.domain.events import OrderCancelled, OrderPlaced, OrderShipped
from app.positions import Checkpoint
from app.readmodels import (
    dashboard_channel,
    dashboard_keys,
    dashboard_pointer,
    live_generation,
    parse_checkpoint,
)
from projectors.changes import Change
from projectors.documents import cents
from projectors.sinks import ApplyResult, SinkMoved, SinkUnavailable

SCRIPT = (Path(__file__).parent / "dashboard.lua").read_text()
POINTER_RECHECK_S = 1.0
COUNTERS, BY_DAY, TOP_SKUS = 1, 2, 3


def deltas(change: Change) -> list[list[Any]]:
    """The counter increments one event causes: [key, field, delta] triples."""
    event, order = change.event, change.after
    total = str(cents(order.total))
    minus_total = str(-cents(order.total))
    if isinstance(event, OrderPlaced):
        day = event.placed_at.date().isoformat()
        ops: list[list[Any]] = [
            [COUNTERS, "placed", "1"], [COUNTERS, "open", "1"],
            [COUNTERS, "gross_cents", total], [COUNTERS, "net_cents", total],
            [BY_DAY, f"{day}:placed", "1"], [BY_DAY, f"{day}:revenue_cents", total]]
        quantities: dict[str, int] = {}
        for line in event.items:
            quantities[line.sku] = quantities.get(line.sku, 0) + line.quantity
        ops += [[TOP_SKUS, sku, str(qty)] for sku, qty in quantities.items()]
        return ops
    if isinstance(event, OrderCancelled):
        day = event.cancelled_at.date().isoformat()
        return [[COUNTERS, "cancelled", "1"], [COUNTERS, "open", "-1"],
                [COUNTERS, "net_cents", minus_total], [BY_DAY, f"{day}:cancelled", "1"]]
    if isinstance(event, OrderShipped):
        day = event.shipped_at.date().isoformat()
        return [[COUNTERS, "shipped", "1"], [COUNTERS, "open", "-1"],
                [BY_DAY, f"{day}:shipped", "1"]]
    return []


class DashboardSink:
    """Feeds one generation of dashboard keys; its checkpoint lives beside them."""

    name = "dashboard"
    batch_interval_s = 0.0  # one Lua call per batch: cheap enough to follow every commit

    def __init__(self, redis: Redis, namespace: str = "orders",
                 generation: str | None = None) -> None:
        self.redis = redis
        self.namespace = namespace
        self.generation = generation or ""
        # A live sink follows the pointer key; a rebuild's sink stays on its generation.
        self.follows_pointer = generation is None
        self._pointer_checked = 0.0
        self.keys = dashboard_keys(namespace, self.generation)
        self._script = redis.register_script(SCRIPT)

    async def prepare(self) -> None:
        """Follow the live generation (claiming `v1` on first start) unless one was given."""
        try:
            if not self.generation:
                await self.redis.setnx(dashboard_pointer(self.namespace), "v1")
                live = await self.redis.get(dashboard_pointer(self.namespace))
                self.generation = live.decode() if isinstance(live, bytes) else str(live)
                self.keys = dashboard_keys(self.namespace, self.generation)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise SinkUnavailable(str(exc)) from None

    async def checkpoint(self) -> Checkpoint:
        try:
            tx, position = await self.redis.hmget(self.keys["checkpoint"], ["tx", "position"])
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise SinkUnavailable(str(exc)) from None
        return parse_checkpoint(tx, position)

    @property
    def target(self) -> str:
        return self.generation

    async def follow(self) -> None:
        await self._follow_pointer()

    async def _follow_pointer(self) -> None:
        """Switch to the generation the pointer names now, if a rebuild swapped it."""
        now = time.monotonic()
        if not self.follows_pointer or now - self._pointer_checked < POINTER_RECHECK_S:
            return
        try:
            live = await live_generation(self.redis, self.namespace)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise SinkUnavailable(str(exc)) from None
        self._pointer_checked = now
        if live and live != self.generation:
            self.generation = live
            self.keys = dashboard_keys(self.namespace, live)
            raise SinkMoved(live)

    async def apply(self, changes: list[Change], upto: Checkpoint) -> ApplyResult:
        await self._follow_pointer()
        batch = [[str(c.logged.checkpoint.tx), str(c.logged.position), deltas(c)]
                 for c in changes]
        # The batch's own end marker makes the checkpoint reach `upto` even when the last
        # events carried no counter change.
        if not batch or (batch[-1][0], batch[-1][1]) != (str(upto.tx), str(upto.position)):
            batch.append([str(upto.tx), str(upto.position), []])
        k = self.keys
        try:
            applied = await self._script(
                keys=[k["counters"], k["by_day"], k["top_skus"], k["checkpoint"]],
                args=[json.dumps(batch), dashboard_channel(self.namespace)])
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise SinkUnavailable(str(exc)) from None
        except RedisError as exc:
            raise SinkUnavailable(f"script failed: {exc}") from None
        counted = min(int(applied), len(changes))
        return ApplyResult(applied=counted, stale=len(changes) - counted)

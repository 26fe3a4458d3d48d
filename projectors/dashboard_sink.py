"""The dashboard read model: counters in Redis, applied with the checkpoint by one script.

Each partition of the log has its own keys (one hash tag, see app/kernel/readmodels.py):
generations of counters that a rebuild can fill while readers use the live one named by the
partition's pointer key; readers sum the partitions. Money is kept in integer cents, so
sums are exact.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.domain.events import OrderCancelled, OrderPlaced, OrderShipped
from app.kernel.partitions import Fenced, Partition
from app.kernel.positions import Checkpoint
from app.kernel.readmodels import (
    dashboard_channel,
    dashboard_keys,
    dashboard_pointer,
    generation_counter,
    live_generation,
    parse_checkpoint,
)
from projectors.changes import Change
from projectors.documents import cents
from projectors.sinks import ApplyResult, SinkGone, SinkMoved, SinkRewound, SinkUnavailable

SCRIPT = (Path(__file__).parent / "dashboard.lua").read_text()
VERIFY_EVERY_S = 1.0  # while idle or between batches; every batch checks anyway
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


PUBLISH_SCRIPT = """
local live = redis.call('GET', KEYS[1])
if live then return live end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return ARGV[1]"""
# Readers stop seeing a generation only if it is still the one they see.
WITHDRAW_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1"""
# Generation numbers only grow, also after the counter itself was lost with the data.
CLAIM_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n <= tonumber(ARGV[1]) then
  n = tonumber(ARGV[1]) + 1
  redis.call('SET', KEYS[1], n)
end
return n"""


def _number(generation: str) -> int:
    return int(generation[1:]) if generation[1:].isdigit() else 0


class DashboardSink:
    """Feeds one generation of dashboard keys; its checkpoint lives beside them."""

    name = "dashboard"
    batch_interval_s = 0.0  # one Lua call per batch: cheap enough to follow every commit
    horizon_every_s = 0.2  # the same Lua call; under load its own events move it more often

    def __init__(self, redis: Redis, namespace: str = "orders",
                 generation: str | None = None, partition: Partition | None = None) -> None:
        self.redis = redis
        self.namespace = namespace
        self.partition = partition or Partition()
        self.fencing_token: int | None = None
        self.generation = generation or ""
        # A live sink follows the pointer key; a rebuild's sink stays on its generation.
        self.follows_pointer = generation is None
        self._building = False
        self._verified_at = 0.0
        self.log_identity = ""
        self.keys = dashboard_keys(namespace, self.generation, self.partition)
        self.pointer = dashboard_pointer(namespace, self.partition)
        self._script = redis.register_script(SCRIPT)
        self._publish = redis.register_script(PUBLISH_SCRIPT)
        self._claim = redis.register_script(CLAIM_SCRIPT)
        self._withdraw = redis.register_script(WITHDRAW_SCRIPT)

    @property
    def target(self) -> str:
        return self.generation

    @property
    def building(self) -> bool:
        return self._building

    def fence(self, token: int | None) -> None:
        """Write under this claim token from now on (checked on the next batch)."""
        self.fencing_token = token
        self._verified_at = 0.0

    def _use(self, generation: str) -> None:
        self.generation = generation
        self.keys = dashboard_keys(self.namespace, generation, self.partition)

    async def prepare(self) -> None:
        """Follow the live generation; with none, start building one."""
        if not self.follows_pointer:
            return
        async with _unavailable():
            live = await live_generation(self.redis, self.namespace, self.partition)
        if live is None:
            await self.rebuild()
        else:
            self._use(live)
            self._building = False

    async def rebuild(self, unpublish: bool = False) -> None:
        """Claim a generation no one has used and fill it unseen, from the start of the log."""
        async with _unavailable():
            if unpublish and self.generation:
                await self._withdraw(keys=[self.pointer],
                                     args=[self.generation])
                await self.redis.delete(*self.keys.values())
            number = await self._claim(keys=[generation_counter(self.namespace, self.partition)],
                                       args=[_number(self.generation)])
            self._use(f"v{int(number)}")
            await self.redis.delete(*self.keys.values())
        self._building = self.follows_pointer

    async def publish(self) -> None:
        """Point readers at the generation just built, unless another was published since."""
        async with _unavailable():
            live = await self._publish(keys=[self.pointer],
                                       args=[self.generation, dashboard_channel(self.namespace),
                                             "0"])
        live = live.decode() if isinstance(live, bytes) else str(live)
        self._building = False
        if live != self.generation:
            abandoned = self.keys
            self._use(live)
            async with _unavailable():
                await self.redis.delete(*abandoned.values())
            raise SinkMoved(live)

    async def checkpoint(self) -> Checkpoint:
        async with _unavailable():
            tx, position, log = await self.redis.hmget(self.keys["checkpoint"],
                                                       ["tx", "position", "log"])
        if log is not None and _text(log) != self.log_identity:
            raise SinkGone("the dashboard's checkpoint belongs to another log", unpublish=True)
        return parse_checkpoint(tx, position)

    async def verify(self, expected: Checkpoint) -> None:
        """The apply script with an empty batch: it checks pointer, log and checkpoint."""
        now = time.monotonic()
        if now - self._verified_at < VERIFY_EVERY_S:
            return
        await self._run([], expected, expected)
        self._verified_at = now

    async def apply(self, changes: list[Change], start: Checkpoint,
                    upto: Checkpoint) -> ApplyResult:
        batch = [[str(c.logged.checkpoint.tx), str(c.logged.position), deltas(c)]
                 for c in changes]
        # The batch's own end marker makes the checkpoint reach `upto` even when the last
        # events carried no counter change.
        if not batch or (batch[-1][0], batch[-1][1]) != (str(upto.tx), str(upto.position)):
            batch.append([str(upto.tx), str(upto.position), []])
        applied = await self._run(batch, start, upto)
        self._verified_at = time.monotonic()
        counted = min(applied, len(changes))
        return ApplyResult(applied=counted, stale=len(changes) - counted)

    async def _run(self, batch: list[list[Any]], start: Checkpoint, upto: Checkpoint) -> int:
        k = self.keys
        live = "1" if self.follows_pointer and not self._building else "0"
        async with _unavailable():
            answer = await self._script(
                keys=[k["counters"], k["by_day"], k["top_skus"], k["checkpoint"], self.pointer],
                args=[json.dumps(batch), dashboard_channel(self.namespace), self.generation,
                      live, str(start.tx), str(start.position), self.log_identity,
                      "" if self.fencing_token is None else str(self.fencing_token)])
        verdict = _text(answer[0])
        if verdict == "applied":
            return int(answer[1])
        if verdict == "moved":
            self._use(_text(answer[1]))
            raise SinkMoved(self.generation)
        if verdict == "rewound":
            raise SinkRewound(parse_checkpoint(answer[1], answer[2]), start)
        if verdict == "fenced":
            raise Fenced(f"dashboard {self.partition.label}: claim token {self.fencing_token} "
                         f"is stale (now {_text(answer[1])})")
        if verdict == "gone":
            raise SinkGone("the dashboard's pointer key is gone")
        raise SinkGone("the dashboard's checkpoint belongs to another log", unpublish=True)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@contextlib.asynccontextmanager
async def _unavailable() -> AsyncIterator[None]:
    """Redis errors as the runner's SinkUnavailable (retried with back-off)."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise SinkUnavailable(str(exc)) from None
    except RedisError as exc:
        raise SinkUnavailable(f"redis: {exc}") from None

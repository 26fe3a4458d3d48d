"""The dashboard from Redis: every counter of the live generation in one round trip."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from app.positions import Checkpoint
from app.readmodels import dashboard_checkpoint, dashboard_pointer, parse_checkpoint

SCRIPT = (Path(__file__).parent / "dashboard_read.lua").read_text()
COUNTERS = ("placed", "cancelled", "shipped", "open")
DAY_FIELDS = ("placed", "cancelled", "shipped", "revenue_cents")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(flat: list[Any]) -> dict[str, str]:
    return {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}


def money(cents: int) -> str:
    """Integer cents as a two-place decimal string."""
    return str((Decimal(cents) / 100).quantize(Decimal("0.01")))


def _by_day(fields: dict[str, str], days: int) -> list[dict[str, Any]]:
    buckets: dict[str, dict[str, int]] = {}
    for name, value in fields.items():
        day, _, metric = name.partition(":")
        buckets.setdefault(day, dict.fromkeys(DAY_FIELDS, 0))[metric] = int(value)
    recent = sorted(buckets)[-days:] if days > 0 else []
    return [{"day": day, "placed": buckets[day]["placed"],
             "cancelled": buckets[day]["cancelled"], "shipped": buckets[day]["shipped"],
             "revenue": money(buckets[day]["revenue_cents"])} for day in recent]


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
        "revenue": {"gross": money(int(counters.get("gross_cents", 0))),
                    "net": money(int(counters.get("net_cents", 0)))},
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
        return dashboard_body(list(raw), days)

    async def checkpoint(self) -> Checkpoint:
        return await dashboard_checkpoint(self._redis, self._namespace)

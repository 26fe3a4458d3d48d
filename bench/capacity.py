"""Capacity, stated honestly: the highest command rate at which `POST /orders` keeps its
p99 under 100 ms with the projector running, found with an open-loop generator; then
freshness (201 to visible on each router) at 50% and 80% of that rate.

It replaces a fixed-rate freshness run: at a rate the machine cannot hold, freshness only
measures the queue in front of the API.
"""

from __future__ import annotations

import tempfile
from typing import Any

from bench import scenarios
from bench.common import Bench, free_port, orders_cli, process
from bench.openloop import _attack, _summary, _targets

P99_LIMIT_MS = 100.0


async def _holds(rate: int, seconds: float, targets: str, folder: str) -> dict[str, Any]:
    results = await _attack("commands", rate, seconds, targets, folder)
    figures = _summary(results, seconds, rate)
    figures["holds"] = (figures["failed"] == 0 and figures["p99_ms"] < P99_LIMIT_MS
                        and figures["answered_per_s"] >= 0.95 * rate)
    return figures


async def highest_rate(bench: Bench, step_s: float, start: int = 50,
                       ceiling: int = 6400) -> dict[str, Any]:
    """Double the rate until a step fails, then halve the gap three times."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    steps: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        targets = _targets(folder, base, base)["commands"]
        async with process(orders_cli("project", "--metrics-port", "0"), bench.env()), \
                process(orders_cli("api", "--role", "write", "--port", str(port)),
                        bench.env(), f"{base}/health"):
            # Unrecorded: the first seconds of fresh processes (connections, caches) are not
            # what a step measures, and one slow answer in a short step is its p99.
            await _attack("commands", start, step_s, targets, folder)
            good, bad = 0, ceiling
            rate = start
            while rate < ceiling:
                steps.append(await _holds(rate, step_s, targets, folder))
                if not steps[-1]["holds"]:
                    bad = rate
                    break
                good, rate = rate, rate * 2
            for _ in range(3):
                if bad - good <= max(10, good // 10):
                    break
                rate = (good + bad) // 2
                steps.append(await _holds(rate, step_s, targets, folder))
                good, bad = (rate, bad) if steps[-1]["holds"] else (good, rate)
    return {"highest_rate": good, "p99_limit_ms": P99_LIMIT_MS, "step_s": step_s,
            "steps": steps}


async def capacity(bench: Bench, step_s: float, fresh_s: float) -> dict[str, Any]:
    """The highest rate, then freshness at 50% and 80% of it (on an emptied log)."""
    await bench.reset()
    found = await highest_rate(bench, step_s)
    out: dict[str, Any] = {**found, "freshness": {}}
    for share in (50, 80):
        rate = max(1, found["highest_rate"] * share // 100)
        out["freshness"][f"{share}%"] = await scenarios.freshness(bench, fresh_s, rate)
    return out

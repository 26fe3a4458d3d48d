"""`python -m bench.store_direct START_AT SECONDS CONCURRENCY`: the commands' baseline.

Places the benchmark's order through the write store itself (the command handler and
`OrderStore`, no HTTP) from CONCURRENCY tasks for SECONDS, starting at the Unix time
START_AT so that several such processes share one window; prints the latencies (ms) as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from decimal import Decimal
from uuid import uuid4

from app.domain.commands import OrderLine, PlaceOrder
from app.kernel.pool import create_pool
from app.write import handlers
from app.write.store import OrderStore

# The body `bench.scenarios.commands` posts, as the command the API makes of it.
COMMAND = PlaceOrder("cust-bench", (OrderLine("SKU-1", "Espresso beans", 2, Decimal("9.95")),
                                    OrderLine("SKU-2", "Ceramic mug", 1, Decimal("12.00"))),
                     "Bench Mark")


async def place_for(start_at: float, seconds: float, concurrency: int) -> list[float]:
    """Latencies (ms) of the orders placed by `concurrency` tasks within the window."""
    pool = await create_pool(os.environ["DATABASE_URL"], min_size=concurrency,
                             max_size=concurrency)
    store = OrderStore(pool)
    latencies: list[float] = []
    try:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        until = time.perf_counter() + seconds

        async def writer() -> None:
            while (began := time.perf_counter()) < until:
                ctx = handlers.CommandContext(correlation_id=str(uuid4()))
                await handlers.place_order(store, COMMAND, ctx)
                latencies.append((time.perf_counter() - began) * 1000)

        await asyncio.gather(*(writer() for _ in range(concurrency)))
    finally:
        await pool.close()
    return latencies


def main() -> None:
    start_at, seconds, concurrency = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    print(json.dumps(asyncio.run(place_for(start_at, seconds, concurrency))))


if __name__ == "__main__":
    main()

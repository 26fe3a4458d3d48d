"""Push, not polling: fan out "a projection moved" notices to waiting requests and SSE clients.

The search projection's checkpoint lives in PostgreSQL and is announced with NOTIFY; the
dashboard's lives in Redis and is announced on a pub/sub channel. One listener per process
and source feeds a `Broadcast`; each waiter gets its own small queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from redis.asyncio import Redis

from app.kernel.listen import listen_postgres as listen

log = logging.getLogger("orders.read")


class Broadcast:
    """Latest-wins fan-out: a slow subscriber misses intermediate notices, never the last."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[str]] = set()
        self.published = 0  # notices so far: a cache keyed on it goes stale on the next one

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[str]]:
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    def publish(self, message: str) -> None:
        self.published += 1
        for queue in self._queues:
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(message)


async def listen_postgres(dsn: str, channel: str, target: Broadcast) -> None:
    """Forward NOTIFY payloads on `channel` to `target` until cancelled (app.kernel.listen)."""
    await listen(dsn, channel, target.publish)


async def listen_redis(redis: Redis, channel: str, target: Broadcast,
                       stop: asyncio.Event) -> None:
    """Forward pub/sub messages on `channel` until `stop`; resubscribe after outages.

    Stopped by a flag, not by cancellation: a pub/sub read that is cancelled mid-way can
    leave redis-py waiting on its connection.
    """
    while not stop.is_set():
        try:
            await redis.ping()  # a cluster client learns its slots here, before pub/sub
            # On Redis Cluster a PUBLISH reaches every node, so any node's notices will do.
            async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(channel)
                while not stop.is_set():
                    message = await pubsub.get_message(timeout=0.5)
                    if message is not None and message.get("type") == "message":
                        data = message["data"]
                        target.publish(data.decode() if isinstance(data, bytes) else str(data))
        except Exception as exc:
            log.info("dashboard listener: %s; retrying", type(exc).__name__)
        target.publish("reconnected")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1)

"""Where the read models live: the layout shared by the projector (writes) and the routers.

Search: an alias (`orders`) points at one physical index (`orders-vN`); each index has its
own checkpoint in PostgreSQL. Dashboard: keys under a generation prefix `{ns}:dash:{gen}`,
with the pointer key `{ns}:dash:active` naming the live generation; its checkpoint is a hash
beside the counters, written by the same script.
"""

from __future__ import annotations

from typing import Any

from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis

from app.positions import Checkpoint, PostgresCheckpoints


def search_checkpoint_name(index: str) -> str:
    """Each physical index has its own checkpoint, so a rebuilt one starts clean."""
    return f"search:{index}"


async def live_index(es: AsyncElasticsearch, alias: str) -> str | None:
    """The index the alias points at now, or None when there is no alias yet."""
    if not await es.indices.exists_alias(name=alias):
        return None
    found = await es.indices.get_alias(name=alias)
    index: str = sorted(found.body)[-1]
    return index


def dashboard_keys(namespace: str, generation: str) -> dict[str, str]:
    """The Redis keys of one dashboard generation."""
    prefix = f"{namespace}:dash:{generation}"
    return {"counters": f"{prefix}:counters", "by_day": f"{prefix}:by_day",
            "top_skus": f"{prefix}:top_skus", "checkpoint": f"{prefix}:checkpoint"}


def dashboard_pointer(namespace: str) -> str:
    """The key naming the live dashboard generation."""
    return f"{namespace}:dash:active"


def dashboard_channel(namespace: str) -> str:
    """The pub/sub channel that announces each applied dashboard batch."""
    return f"{namespace}:dash:changes"


def parse_checkpoint(tx: Any, position: Any) -> Checkpoint:
    """A checkpoint from two stored strings (bytes or str); the start when absent."""
    if tx is None or position is None:
        return Checkpoint.start()
    return Checkpoint(int(tx), int(position))


async def live_generation(redis: Redis, namespace: str) -> str | None:
    raw = await redis.get(dashboard_pointer(namespace))
    if raw is None:
        return None
    return raw.decode() if isinstance(raw, bytes) else str(raw)


async def dashboard_checkpoint(redis: Redis, namespace: str) -> Checkpoint:
    """Where the live dashboard stands in the log."""
    generation = await live_generation(redis, namespace)
    if generation is None:
        return Checkpoint.start()
    key = dashboard_keys(namespace, generation)["checkpoint"]
    tx, position = await redis.hmget(key, ["tx", "position"])
    return parse_checkpoint(tx, position)


async def search_checkpoint(es: AsyncElasticsearch, checkpoints: PostgresCheckpoints,
                            alias: str) -> Checkpoint:
    """Where the index behind the alias stands in the log."""
    index = await live_index(es, alias)
    if index is None:
        return Checkpoint.start()
    return await checkpoints.load(search_checkpoint_name(index))

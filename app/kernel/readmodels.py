"""Where the read models live: the layout shared by the projector (writes) and the routers.

Search: an alias (`orders`) points at one physical index (`orders-vN`); each index has its
own checkpoint in PostgreSQL, named after the index AND its uuid, so an index deleted and
created again under the same name never inherits the old one's checkpoint. Dashboard: keys
under a generation prefix `{ns}:dash:{gen}`, with the pointer key `{ns}:dash:active` naming
the live generation; its checkpoint is a hash beside the counters, written by the same script.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError
from redis.asyncio import Redis

from app.kernel.positions import Checkpoint, PostgresCheckpoints
from app.kernel.settings import Settings


@dataclass(frozen=True)
class SearchIndexOptions:
    """How each `orders-vN` index sits on the cluster (from Settings; the defaults are one
    shard and no replica, what a single node can hold)."""

    shards: int = 1
    replicas: int = 0
    wait_for_active_shards: str = "1"  # copies of a shard that must be up for a write

    @classmethod
    def of(cls, settings: Settings) -> SearchIndexOptions:
        return cls(settings.search_shards, settings.search_replicas,
                   settings.search_wait_for_active_shards)


@dataclass(frozen=True)
class IndexRef:
    """One concrete index, by name and identity (Elasticsearch's index uuid)."""

    name: str
    uuid: str

    @property
    def checkpoint_name(self) -> str:
        """Each physical index has its own checkpoint, so a rebuilt one starts clean."""
        return f"search:{self.name}:{self.uuid}"


async def resolve_index(es: AsyncElasticsearch, name: str) -> IndexRef | None:
    """The concrete index an alias (or index name) resolves to now; None when absent."""
    try:
        found = await es.indices.get_settings(index=name, name="index.uuid",
                                              expand_wildcards="open")
    except NotFoundError:
        return None
    if not found.body:
        return None
    index = sorted(found.body)[-1]  # two only for an instant of a non-atomic swap
    return IndexRef(index, found.body[index]["settings"]["index"]["uuid"])


async def live_index(es: AsyncElasticsearch, alias: str) -> str | None:
    """The index the alias points at now, or None when there is no alias yet."""
    ref = await resolve_index(es, alias)
    return ref.name if ref is not None and ref.name != alias else None


async def next_index_name(es: AsyncElasticsearch, alias: str) -> str:
    """`<alias>-v{N+1}`: a name no index of this alias has had yet while N exists."""
    found = await es.indices.get(index=f"{alias}-v*", allow_no_indices=True)
    versions = [int(name.rsplit("-v", 1)[1]) for name in found.body
                if name.rsplit("-v", 1)[-1].isdigit()]
    return f"{alias}-v{max(versions, default=0) + 1}"


def dashboard_keys(namespace: str, generation: str) -> dict[str, str]:
    """The Redis keys of one dashboard generation."""
    prefix = f"{namespace}:dash:{generation}"
    return {"counters": f"{prefix}:counters", "by_day": f"{prefix}:by_day",
            "top_skus": f"{prefix}:top_skus", "checkpoint": f"{prefix}:checkpoint"}


def generation_counter(namespace: str) -> str:
    """The key whose INCR hands out dashboard generation numbers, never the same twice."""
    return f"{namespace}:dash:generations"


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
    ref = await resolve_index(es, alias)
    if ref is None:
        return Checkpoint.start()
    return await checkpoints.load(ref.checkpoint_name)

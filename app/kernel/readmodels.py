"""Where the read models live: the layout shared by the projector (writes) and the routers.

Search: an alias (`orders`) points at one physical index (`orders-vN`) holding every
partition's documents; each partition of each index has its own checkpoint in PostgreSQL,
named after the index AND its uuid (and the partition), so an index deleted and created
again under the same name never inherits the old one's checkpoints.

Dashboard: counters per partition. Every key of partition i shares one hash tag,
`{ns}:dash:{ns/p<i>of<P>}:...`, so one script can touch them all, also on Redis Cluster:
the pointer `...:active` naming the partition's live generation, and per generation the
counters, by-day and top-SKU keys and the checkpoint hash, written by the same script.
This module is the ONE source of that layout: the Lua scripts get the keys (or templates
with GENERATION_SLOT) from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError
from redis.asyncio import Redis

from app.kernel.partitions import DEFAULT_PARTITIONS, Partition, all_partitions
from app.kernel.positions import Checkpoint, Frontier, PostgresCheckpoints
from app.kernel.settings import Settings

# Stands for the generation in key templates handed to the read script.
GENERATION_SLOT = "@generation@"


@dataclass(frozen=True)
class SearchIndexOptions:
    """How each `orders-vN` index sits on the cluster (from Settings; the defaults are one
    shard and no replica, what a single node can hold)."""

    shards: int = 1
    replicas: int = 0
    wait_for_active_shards: str = "1"  # copies of a shard that must be up for a write
    refresh_interval: str = "250ms"

    @classmethod
    def of(cls, settings: Settings) -> SearchIndexOptions:
        return cls(settings.search_shards, settings.search_replicas,
                   settings.search_wait_for_active_shards, settings.search_refresh_interval)


@dataclass(frozen=True)
class IndexRef:
    """One concrete index, by name and identity (Elasticsearch's index uuid)."""

    name: str
    uuid: str
    # As set on the index ("-1": never on its own; None: not set, Elasticsearch's default).
    refresh_interval: str | None = field(default=None, compare=False)

    @property
    def checkpoint_name(self) -> str:
        """Each physical index has its own checkpoint, so a rebuilt one starts clean."""
        return f"search:{self.name}:{self.uuid}"

    def partition_checkpoint(self, partition: Partition) -> str:
        """The checkpoint of one partition of this index (the whole log's for one)."""
        if partition.whole:
            return self.checkpoint_name
        return f"{self.checkpoint_name}:{partition.label}"


async def load_search_checkpoint(checkpoints: PostgresCheckpoints, ref: IndexRef,
                                 partition: Partition) -> tuple[Checkpoint, str | None]:
    """A partition's checkpoint; without one yet, the whole log's checkpoint of the index
    (an index projected whole, then in partitions: complete through it in each)."""
    found = await checkpoints.load_bound(ref.partition_checkpoint(partition))
    if found[1] is None and not partition.whole:
        return await checkpoints.load_bound(ref.checkpoint_name)
    return found


async def resolve_index(es: AsyncElasticsearch, name: str) -> IndexRef | None:
    """The concrete index an alias (or index name) resolves to now; None when absent."""
    try:
        found = await es.indices.get_settings(index=name,
                                              name="index.uuid,index.refresh_interval",
                                              expand_wildcards="open")
    except NotFoundError:
        return None
    if not found.body:
        return None
    index = sorted(found.body)[-1]  # two only for an instant of a non-atomic swap
    settings = found.body[index]["settings"]["index"]
    return IndexRef(index, settings["uuid"], settings.get("refresh_interval"))


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


def dashboard_tag(namespace: str, partition: Partition) -> str:
    """The prefix of every key of one dashboard partition; its `{...}` is the hash tag."""
    return f"{namespace}:dash:{{{namespace}/{partition.label}}}"


def dashboard_keys(namespace: str, generation: str,
                   partition: Partition | None = None) -> dict[str, str]:
    """The Redis keys of one generation of one dashboard partition."""
    prefix = f"{dashboard_tag(namespace, partition or Partition())}:{generation}"
    return {"counters": f"{prefix}:counters", "by_day": f"{prefix}:by_day",
            "top_skus": f"{prefix}:top_skus", "checkpoint": f"{prefix}:checkpoint"}


def dashboard_templates(namespace: str, partition: Partition) -> list[str]:
    """The keys of `dashboard_keys` with GENERATION_SLOT for the generation, in the order
    counters, by_day, top_skus, checkpoint (the read script fills in the live one)."""
    keys = dashboard_keys(namespace, GENERATION_SLOT, partition)
    return [keys["counters"], keys["by_day"], keys["top_skus"], keys["checkpoint"]]


def generation_counter(namespace: str, partition: Partition | None = None) -> str:
    """The key whose INCR hands out a dashboard partition's generation numbers, never the
    same twice (in the partition's slot, beside its keys)."""
    return f"{dashboard_tag(namespace, partition or Partition())}:generations"


def dashboard_pointer(namespace: str, partition: Partition | None = None) -> str:
    """The key naming the live generation of one dashboard partition."""
    return f"{dashboard_tag(namespace, partition or Partition())}:active"


def dashboard_channel(namespace: str) -> str:
    """The pub/sub channel that announces each applied dashboard batch."""
    return f"{namespace}:dash:changes"


def parse_checkpoint(tx: Any, position: Any) -> Checkpoint:
    """A checkpoint from two stored strings (bytes or str); the start when absent."""
    if tx is None or position is None:
        return Checkpoint.start()
    return Checkpoint(int(tx), int(position))


async def live_generation(redis: Redis, namespace: str,
                          partition: Partition | None = None) -> str | None:
    raw = await redis.get(dashboard_pointer(namespace, partition))
    if raw is None:
        return None
    return raw.decode() if isinstance(raw, bytes) else str(raw)


async def dashboard_frontier(redis: Redis, namespace: str,
                             partitions: int = DEFAULT_PARTITIONS) -> Frontier:
    """Where each live dashboard partition stands in the log."""
    found: list[Checkpoint] = []
    for partition in all_partitions(partitions):
        generation = await live_generation(redis, namespace, partition)
        if generation is None:
            found.append(Checkpoint.start())
            continue
        key = dashboard_keys(namespace, generation, partition)["checkpoint"]
        tx, position = await redis.hmget(key, ["tx", "position"])
        found.append(parse_checkpoint(tx, position))
    return Frontier(tuple(found))


async def dashboard_checkpoint(redis: Redis, namespace: str,
                               partitions: int = DEFAULT_PARTITIONS) -> Checkpoint:
    """Where the live dashboard is complete through (its watermark)."""
    return (await dashboard_frontier(redis, namespace, partitions)).watermark


async def search_frontier(checkpoints: PostgresCheckpoints, ref: IndexRef | None,
                          partitions: int = DEFAULT_PARTITIONS) -> Frontier:
    """Where each partition of the index stands in the log."""
    if ref is None:
        return Frontier.start(partitions)
    return Frontier(tuple([(await load_search_checkpoint(checkpoints, ref, p))[0]
                           for p in all_partitions(partitions)]))


async def search_checkpoint(es: AsyncElasticsearch, checkpoints: PostgresCheckpoints,
                            alias: str, partitions: int = DEFAULT_PARTITIONS) -> Checkpoint:
    """Where the index behind the alias is complete through (its watermark)."""
    ref = await resolve_index(es, alias)
    return (await search_frontier(checkpoints, ref, partitions)).watermark

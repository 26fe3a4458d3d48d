"""The cluster stack for the cluster suite: started (or reused) by the same code as
`orders stack up --cluster`, once per run; each test gets an alias and namespace of its own.

PostgreSQL and the dashboard's Redis are the run's usual services; search goes to the
three-node Elasticsearch cluster with three shards and one replica.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis

from app.kernel.settings import Settings, elasticsearch_hosts
from infra import es_cluster, stack
from infra.native import Layout, StackError
from tests.helpers.readside_fixtures import drop_read_models, own_tag


@pytest.fixture(scope="session")
def cluster_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The cluster stack's URLs; the suite is skipped only when it cannot be started."""
    env_file: Path = tmp_path_factory.mktemp("cluster") / "cluster.env"
    try:
        return stack.up(env_file=env_file, cluster=True)
    except (StackError, OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"the cluster stack cannot be started here: {exc}")


@pytest.fixture
def whole_cluster(cluster_env: dict[str, str]) -> dict[str, str]:
    """Every Elasticsearch node up and the cluster green (a failed test may have left one
    down); returns the cluster's URLs."""
    es_cluster.start_nodes(Layout.default())
    return cluster_env


@pytest.fixture
async def cluster_es(whole_cluster: dict[str, str]) -> AsyncIterator[AsyncElasticsearch]:
    client = AsyncElasticsearch(elasticsearch_hosts(whole_cluster["ELASTICSEARCH_URL"]),
                                request_timeout=30)
    yield client
    await client.close()


@pytest.fixture
async def cluster_settings(settings: Settings, whole_cluster: dict[str, str],
                           cluster_es: AsyncElasticsearch, redis: Redis,
                           clean_db: Any) -> AsyncIterator[Settings]:
    """Settings of a deployment on the cluster: three shards, one replica, own alias."""
    tag = own_tag("c")
    yield settings.model_copy(update={
        "elasticsearch_url": whole_cluster["ELASTICSEARCH_URL"],
        "search_shards": int(whole_cluster["ORDERS_SEARCH_SHARDS"]),
        "search_replicas": int(whole_cluster["ORDERS_SEARCH_REPLICAS"]),
        "search_alias": tag, "dashboard_namespace": tag})
    es_cluster.start_nodes(Layout.default())  # leave the cluster whole for the next test
    await drop_read_models(cluster_es, redis, tag)

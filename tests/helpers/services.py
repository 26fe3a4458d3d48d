"""Where the tests find PostgreSQL, Elasticsearch and Redis.

From DATABASE_URL / ELASTICSEARCH_URL / REDIS_URL (what `make test` exports after
`orders stack up`); with none set, testcontainers where a Docker engine answers (the official
images, or with ORDERS_TEST_IMAGES=local those `make docker-images` builds); otherwise the run
stops with the command that starts the stack.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass

import pytest

from app.kernel.settings import elasticsearch_hosts

START_HINT = ("no DATABASE_URL, ELASTICSEARCH_URL or REDIS_URL is set and no Docker engine "
              "answers: start the stack with `make stack` (or `orders stack up`) and export "
              "the URLs from .stack/env, or just run `make test`")


@dataclass(frozen=True)
class ServiceUrls:
    database: str
    elasticsearch: str  # one node's URL, or several comma-separated (a cluster)
    redis: str

    @property
    def elasticsearch_hosts(self) -> list[str]:
        return elasticsearch_hosts(self.elasticsearch)


def container_images() -> tuple[str, str, str]:
    """The PostgreSQL, Elasticsearch and Redis images testcontainers starts."""
    from infra.versions import ELASTICSEARCH_VERSION, POSTGRES_MAJOR, REDIS_MAJOR

    if os.environ.get("ORDERS_TEST_IMAGES") == "local":
        return (f"orders-local/postgres:{POSTGRES_MAJOR}",
                f"orders-local/elasticsearch:{ELASTICSEARCH_VERSION}",
                f"orders-local/redis:{REDIS_MAJOR}")
    return (f"postgres:{POSTGRES_MAJOR}",
            f"docker.elastic.co/elasticsearch/elasticsearch:{ELASTICSEARCH_VERSION}",
            f"redis:{REDIS_MAJOR}")


def _from_containers(stack: ExitStack) -> ServiceUrls:
    from testcontainers.core.wait_strategies import HttpWaitStrategy
    from testcontainers.elasticsearch import ElasticSearchContainer
    from testcontainers.postgres import PostgresContainer
    from testcontainers.redis import RedisContainer

    # The containers take no credentials: the native stack's process passwords do not apply
    # (`none` unsets them, also where `.stack/env` names them).
    from app.kernel.settings import SECRETS

    for secret in SECRETS:
        os.environ[f"ORDERS_{secret.upper()}"] = "none"
        os.environ[f"ORDERS_{secret.upper()}_FILE"] = "none"
    pg_image, es_image, redis_image = container_images()
    pg = stack.enter_context(PostgresContainer(pg_image, driver=None)
                             .with_command("postgres -c max_connections=300"))
    # Ready when the cluster health answers: the distribution zip has no `GET /` handler.
    es = stack.enter_context(ElasticSearchContainer(es_image, mem_limit="2g")
                             .waiting_for(HttpWaitStrategy(9200, "/_cluster/health"))
                             .with_env("discovery.type", "single-node")
                             .with_env("ES_JAVA_OPTS", "-Xms512m -Xmx512m")
                             .with_env("cluster.routing.allocation.disk.threshold_enabled",
                                       "false"))
    rd = stack.enter_context(RedisContainer(redis_image))
    return ServiceUrls(
        database=pg.get_connection_url(),
        elasticsearch=f"http://{es.get_container_host_ip()}:{es.get_exposed_port(9200)}",
        redis=f"redis://{rd.get_container_host_ip()}:{rd.get_exposed_port(6379)}/0")


def resolve(stack: ExitStack) -> ServiceUrls:
    """The service URLs for this test run, or a clear stop."""
    names = ("DATABASE_URL", "ELASTICSEARCH_URL", "REDIS_URL")
    values = [os.environ.get(n) for n in names]
    if all(values):
        return ServiceUrls(*values)  # type: ignore[arg-type]
    if any(values):
        missing = [n for n, v in zip(names, values, strict=True) if not v]
        pytest.exit(f"set all three service URLs; missing {missing}", returncode=2)
    from infra.stack import docker_available

    if docker_available():
        return _from_containers(stack)
    pytest.exit(START_HINT, returncode=2)

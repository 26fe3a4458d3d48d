"""Where the tests find PostgreSQL, Elasticsearch and Redis.

From DATABASE_URL / ELASTICSEARCH_URL / REDIS_URL (what `make test` exports after
`orders stack up`); with none set, testcontainers where a Docker engine answers; otherwise
the run stops with the command that starts the stack.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass

import pytest

START_HINT = ("no DATABASE_URL, ELASTICSEARCH_URL or REDIS_URL is set and no Docker engine "
              "answers: start the stack with `make stack` (or `orders stack up`) and export "
              "the URLs from .stack/env, or just run `make test`")


@dataclass(frozen=True)
class ServiceUrls:
    database: str
    elasticsearch: str
    redis: str


def _from_containers(stack: ExitStack) -> ServiceUrls:
    from testcontainers.elasticsearch import ElasticSearchContainer
    from testcontainers.postgres import PostgresContainer
    from testcontainers.redis import RedisContainer

    from infra.versions import ELASTICSEARCH_VERSION, POSTGRES_MAJOR, REDIS_MAJOR

    pg = stack.enter_context(PostgresContainer(f"postgres:{POSTGRES_MAJOR}", driver=None))
    es = stack.enter_context(ElasticSearchContainer(
        f"docker.elastic.co/elasticsearch/elasticsearch:{ELASTICSEARCH_VERSION}",
        mem_limit="2g"))
    rd = stack.enter_context(RedisContainer(f"redis:{REDIS_MAJOR}"))
    return ServiceUrls(
        database=pg.get_connection_url(),
        elasticsearch=es.get_url(),
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

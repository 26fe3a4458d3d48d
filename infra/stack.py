"""Bring the backing services up and down: native processes, or Docker Compose when asked.

Compose runs the services only with ORDERS_STACK=docker and an engine answering; otherwise
the native stack does, even where a Docker engine runs (the test suite starts one for its
Docker tests, and the native stack stays the default).

`up()` is idempotent (a second call reuses what runs), waits until each service answers,
prints the URLs and writes them to `.stack/env`, which the Makefile, the app and the tests
read. `up(cluster=True)` starts the cluster stack instead (native only): the same PostgreSQL
and Redis, plus a three-node Elasticsearch cluster and a six-node Redis Cluster, and writes
its URLs to `.stack/cluster.env`; `.stack/env` and the single-node services are untouched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from infra import es_cluster, native, redis_cluster
from infra.native import Layout, StackError

ENV_FILE = Path(".stack/env")
CLUSTER_ENV_FILE = Path(".stack/cluster.env")
SERVICES = ("postgres", "redis", "elasticsearch")
# What the cluster stack's env file sets beside the URLs: a replicated search index.
CLUSTER_SEARCH = {"ORDERS_SEARCH_SHARDS": "3", "ORDERS_SEARCH_REPLICAS": "1"}


def docker_available() -> bool:
    """True when a Docker engine answers (the client alone is not enough)."""
    if shutil.which("docker") is None:
        return False
    try:
        probe = subprocess.run(["docker", "info"], capture_output=True, timeout=10)
    except (subprocess.TimeoutExpired, OSError):
        return False
    return probe.returncode == 0


def use_compose() -> bool:
    """True when the services should run under Docker Compose (ORDERS_STACK=docker)."""
    return os.environ.get("ORDERS_STACK") == "docker" and docker_available()


def _compose_up() -> dict[str, str]:
    subprocess.run(["docker", "compose", "up", "-d", "--wait", "postgres", "redis",
                    "elasticsearch"], check=True)
    return {
        "DATABASE_URL": f"postgresql://postgres:postgres@127.0.0.1:{native.PG_PORT}/orders",
        "REDIS_URL": f"redis://127.0.0.1:{native.REDIS_PORT}/0",
        "ELASTICSEARCH_URL": f"http://127.0.0.1:{native.ES_PORT}",
    }


def _native_up(layout: Layout) -> dict[str, str]:
    native.ensure_service_user(layout)
    urls: dict[str, str] = {}
    started = time.monotonic()
    print("starting PostgreSQL ...", flush=True)
    urls["DATABASE_URL"] = native.start_postgres(layout)
    print("starting Redis ...", flush=True)
    urls["REDIS_URL"] = native.start_redis(layout)
    print("starting Elasticsearch ...", flush=True)
    urls["ELASTICSEARCH_URL"] = native.start_elasticsearch(layout)
    print(f"stack ready in {time.monotonic() - started:.1f}s (state in {layout.state})")
    return urls


def _cluster_up(layout: Layout) -> dict[str, str]:
    native.ensure_service_user(layout)
    started = time.monotonic()
    print("starting PostgreSQL and Redis (shared with the single-node stack) ...", flush=True)
    urls = {"DATABASE_URL": native.start_postgres(layout),
            "REDIS_URL": native.start_redis(layout)}
    print(f"starting {es_cluster.NODE_COUNT} Elasticsearch nodes ...", flush=True)
    es_cluster.start_nodes(layout)
    print(f"starting a Redis Cluster of {len(redis_cluster.PORTS)} nodes ...", flush=True)
    redis_cluster.start(layout)
    urls |= {"ELASTICSEARCH_URL": es_cluster.urls(),
             "REDIS_CLUSTER_NODES": redis_cluster.nodes(), **CLUSTER_SEARCH}
    print(f"cluster stack ready in {time.monotonic() - started:.1f}s "
          f"(state in {layout.state / 'cluster'})")
    return urls


def up(env_file: Path | None = None, cluster: bool = False) -> dict[str, str]:
    """Start every service (reusing running ones), write the env file, return the URLs."""
    if cluster:
        urls = _cluster_up(Layout.default())
    else:
        urls = _compose_up() if use_compose() else _native_up(Layout.default())
    env_file = env_file or (CLUSTER_ENV_FILE if cluster else ENV_FILE)
    env_file.parent.mkdir(parents=True, exist_ok=True)
    env_file.write_text("".join(f"{key}={value}\n" for key, value in urls.items()))
    for key, value in urls.items():
        print(f"  {key}={value}")
    return urls


def down(cluster: bool = False) -> None:
    """Stop every service; data stays on disk for the next `up`. With `cluster`, only the
    cluster's Elasticsearch and Redis nodes (PostgreSQL and Redis serve the single stack)."""
    if cluster:
        es_cluster.stop_nodes(Layout.default())
        redis_cluster.stop()
        return
    if use_compose():
        subprocess.run(["docker", "compose", "down"], check=True)
        return
    layout = Layout.default()
    native.stop_elasticsearch(layout)
    native.stop_redis()
    native.stop_postgres(layout)


def _compose_status() -> dict[str, bool]:
    running = subprocess.run(["docker", "compose", "ps", "--services", "--status", "running"],
                             capture_output=True, text=True, timeout=30).stdout.split()
    return {service: service in running for service in SERVICES}


def status(cluster: bool = False) -> dict[str, bool]:
    """Which services run right now: under Compose when it runs them, else native (with
    `cluster`, each node of the cluster stack)."""
    if use_compose() and not cluster:
        return _compose_status()
    layout = Layout.default()
    if cluster:
        found = {node.name: es_cluster.node_answers(node) for node in es_cluster.NODES}
        found["elasticsearch-cluster"] = es_cluster.cluster_ready()
        found |= {f"redis-{port}": redis_cluster.node_running(port)
                  for port in redis_cluster.PORTS}
        found["redis-cluster"] = redis_cluster.cluster_ready()
        return found
    return {
        "postgres": native.postgres_running(layout),
        "redis": native.redis_running(),
        "elasticsearch": native.elasticsearch_running(),
    }


def stop(service: str) -> None:
    """Stop one native service (fault-injection tests use this)."""
    layout = Layout.default()
    if service == "postgres":
        native.stop_postgres(layout)
    elif service == "redis":
        native.stop_redis()
    elif service == "elasticsearch":
        native.stop_elasticsearch(layout)
    else:
        raise ValueError(f"unknown service {service!r}; one of {SERVICES}")


def start(service: str) -> None:
    """Start one native service again."""
    layout = Layout.default()
    if service == "postgres":
        native.start_postgres(layout)
    elif service == "redis":
        native.start_redis(layout)
    elif service == "elasticsearch":
        native.start_elasticsearch(layout)
    else:
        raise ValueError(f"unknown service {service!r}; one of {SERVICES}")


__all__ = ["CLUSTER_ENV_FILE", "ENV_FILE", "SERVICES", "StackError", "down", "start", "status",
           "stop", "up"]

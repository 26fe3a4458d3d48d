"""Bring the backing services up and down: native processes, or Docker Compose when asked.

Compose runs the services only with ORDERS_STACK=docker and an engine answering; otherwise
the native stack does, even where a Docker engine runs (the test suite starts one for its
Docker tests, and the native stack stays the default).

`up()` is idempotent (a second call reuses what runs), waits until each service answers,
prints the URLs (without their passwords) and writes them to `.stack/env` (0600), which the
Makefile, the app and the tests read. The native stack is secured on every `up`: secrets are
made once in `<state>/secrets` (infra/security.py) and each service made to require them.
`up(cluster=True)` starts the cluster stack instead (native only): the same PostgreSQL
and Redis, plus a three-node Elasticsearch cluster and a six-node Redis Cluster, and writes
its URLs to `.stack/cluster.env`; `.stack/env` and the single-node services are untouched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from app.kernel.credentials import without_userinfo
from infra import es_cluster, native, redis_cluster, security
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
    found = security.ensure_secrets(layout.state)
    started = time.monotonic()
    print("starting PostgreSQL ...", flush=True)
    native.start_postgres(layout, found)
    print("starting Redis ...", flush=True)
    native.start_redis(layout, found)
    print("starting Elasticsearch ...", flush=True)
    native.start_elasticsearch(layout, found)
    print(f"stack ready in {time.monotonic() - started:.1f}s (state in {layout.state}, "
          f"secrets in {security.secrets_dir(layout.state)})")
    return security.env_entries(layout.state, found, native.PG_PORT, native.REDIS_PORT,
                                native.ES_PORT)


def _cluster_up(layout: Layout) -> dict[str, str]:
    native.ensure_service_user(layout)
    found = security.ensure_secrets(layout.state)
    started = time.monotonic()
    print("starting PostgreSQL and Redis (shared with the single-node stack) ...", flush=True)
    native.start_postgres(layout, found)
    native.start_redis(layout, found)
    print(f"starting {es_cluster.NODE_COUNT} Elasticsearch nodes ...", flush=True)
    es_cluster.start_nodes(layout)
    print(f"starting a Redis Cluster of {len(redis_cluster.PORTS)} nodes ...", flush=True)
    redis_cluster.start(layout)
    entries = security.env_entries(layout.state, found, native.PG_PORT, native.REDIS_PORT,
                                   native.ES_PORT)
    # The cluster's nodes take the same users as the single ones (the same file realm and
    # ACL), so each process keeps its own credentials there too.
    entries |= {"ELASTICSEARCH_URL": es_cluster.urls(),
                "REDIS_CLUSTER_NODES": redis_cluster.nodes(), **CLUSTER_SEARCH}
    print(f"cluster stack ready in {time.monotonic() - started:.1f}s "
          f"(state in {layout.state / 'cluster'})")
    return entries


def up(env_file: Path | None = None, cluster: bool = False) -> dict[str, str]:
    """Start every service (reusing running ones), write the env file, return the URLs."""
    if cluster:
        urls = _cluster_up(Layout.default())
    else:
        urls = _compose_up() if use_compose() else _native_up(Layout.default())
    env_file = env_file or (CLUSTER_ENV_FILE if cluster else ENV_FILE)
    env_file.parent.mkdir(parents=True, exist_ok=True)
    # Owner-only before anything is written: it holds the administrators' URLs.
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    env_file.chmod(0o600)
    with os.fdopen(fd, "w") as out:
        out.write("".join(f"{key}={value}\n" for key, value in urls.items()))
    for key, value in urls.items():
        shown = (",".join(without_userinfo(url) for url in value.split(","))
                 if key.endswith("_URL") else value)  # every node's URL, without passwords
        print(f"  {key}={shown}")
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
    found = security.ensure_secrets(layout.state)
    if service == "postgres":
        native.start_postgres(layout, found)
    elif service == "redis":
        native.start_redis(layout, found)
    elif service == "elasticsearch":
        native.start_elasticsearch(layout, found)
    else:
        raise ValueError(f"unknown service {service!r}; one of {SERVICES}")


__all__ = ["CLUSTER_ENV_FILE", "ENV_FILE", "SERVICES", "StackError", "down", "start", "status",
           "stop", "up"]

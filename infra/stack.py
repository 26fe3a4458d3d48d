"""Bring the backing services up and down: native processes, or Docker Compose when asked.

Compose runs the services only with ORDERS_STACK=docker and an engine answering; otherwise
the native stack does, even where a Docker engine runs (the test suite starts one for its
Docker tests, and the native stack stays the default).

`up()` is idempotent (a second call reuses what runs), waits until each service answers,
prints the URLs (without their passwords) and writes them to `.stack/env` (0600), which the
Makefile, the app and the tests read. The native stack is secured on every `up`: secrets are
made once in `<state>/secrets` (infra/security.py) and each service made to require them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from app.kernel.credentials import without_userinfo
from infra import native, security
from infra.native import Layout, StackError

ENV_FILE = Path(".stack/env")
SERVICES = ("postgres", "redis", "elasticsearch")


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


def up(env_file: Path = ENV_FILE) -> dict[str, str]:
    """Start every service (reusing running ones), write the env file, return its entries."""
    urls = _compose_up() if use_compose() else _native_up(Layout.default())
    env_file.parent.mkdir(parents=True, exist_ok=True)
    # Owner-only before anything is written: it holds the administrators' URLs.
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    env_file.chmod(0o600)
    with os.fdopen(fd, "w") as out:
        out.write("".join(f"{key}={value}\n" for key, value in urls.items()))
    for key, value in urls.items():
        print(f"  {key}={without_userinfo(value) if key.endswith('_URL') else value}")
    return urls


def down() -> None:
    """Stop every service; data stays on disk for the next `up`."""
    if use_compose():
        subprocess.run(["docker", "compose", "down"], check=True)
        return
    layout = Layout.default()
    native.stop_elasticsearch(layout)
    native.stop_redis()
    native.stop_postgres(layout)


def status() -> dict[str, bool]:
    """Which services answer right now."""
    layout = Layout.default()
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


__all__ = ["ENV_FILE", "SERVICES", "StackError", "down", "start", "status", "stop", "up"]

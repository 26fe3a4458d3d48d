"""Shared fixtures: real services, a fresh test database, a fresh app per test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from app.kernel.pool import create_pool
from app.kernel.settings import Settings
from app.main import create_app
from infra.migrate import migrate, role_passwords
from tests.helpers.services import ServiceUrls, resolve

# One database per test run, so parallel runs on one machine never share one.
TEST_DATABASE = f"orders_test_{os.getpid()}"
TABLES = ("events, orders, order_lines, idempotency_keys, projection_checkpoints, dead_letters, "
          "projection_status, projection_claims, projector_members")


@pytest.fixture(scope="session")
def service_urls() -> Iterator[ServiceUrls]:
    with ExitStack() as stack:
        yield resolve(stack)


def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _admin(service_urls: ServiceUrls, statement: str) -> None:
    admin = await asyncpg.connect(service_urls.database)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


@pytest.fixture(scope="session")
async def database_url(service_urls: ServiceUrls) -> AsyncIterator[str]:
    """A database made fresh for this run, with every migration applied (the process roles
    get the configured passwords); dropped after."""
    await _admin(service_urls, f"DROP DATABASE IF EXISTS {TEST_DATABASE} WITH (FORCE)")
    await _admin(service_urls, f"CREATE DATABASE {TEST_DATABASE}")
    url = _with_database(service_urls.database, TEST_DATABASE)
    await migrate(url, role_passwords(Settings(database_url=url)))
    yield url
    await _admin(service_urls, f"DROP DATABASE IF EXISTS {TEST_DATABASE} WITH (FORCE)")


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool[Any]]:
    pool = await create_pool(database_url, min_size=2, max_size=30)
    yield pool
    await pool.close()


@pytest.fixture
async def clean_db(pool: asyncpg.Pool[Any]) -> asyncpg.Pool[Any]:
    """Empty the event log, the write model, idempotency keys, checkpoints, dead letters,
    status rows and partition claims (positions restart at 1) before the test, so no row of
    an earlier test's projector is read as this one's; `log_identity` and `reindex_jobs` are
    kept."""
    await pool.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    return pool


@pytest.fixture
def settings(database_url: str, service_urls: ServiceUrls) -> Settings:
    return Settings(database_url=database_url, elasticsearch_url=service_urls.elasticsearch,
                    redis_url=service_urls.redis)


@pytest.fixture
async def client(settings: Settings, clean_db: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on a freshly built app, its lifespan running."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


# Read-side fixtures (isolated alias and namespace per test, in-process projector).
from tests.helpers.readside_fixtures import (  # noqa: E402
    es,
    read_settings,
    redis,
    run_projector,
    store,
)

__all__ = ["es", "read_settings", "redis", "run_projector", "store"]

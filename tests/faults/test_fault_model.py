"""The fault model, each fault on real services while commands keep coming.

Every test ends by comparing every search document (version and status) and every dashboard
counter with the write model, with the projector process that lived through the fault
(nothing restarts it but the test that killed it), and with no answer but 2xx, 4xx and 503
with `Retry-After`. PostgreSQL and Redis are private servers (tests/helpers/private_redis.py), so
crashing, flushing and restoring them touches nothing else; Elasticsearch is the stack's
own, each test on an alias of its own.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis

from app.kernel.partitions import all_partitions
from app.kernel.pool import create_pool
from app.kernel.readmodels import live_generation, live_index
from app.kernel.settings import Settings
from infra import native, stack
from infra.migrate import apply_roles, role_passwords
from tests.faults.harness import (
    api,
    assert_equal_to_write_model,
    mixed_writes,
    projector_log_tail,
    spawn_projector,
)
from tests.helpers.private_postgres import PrivateCluster
from tests.helpers.private_redis import PrivateRedis
from tests.helpers.services import ServiceUrls
from tests.helpers.support import eventually, migrate_for_processes

pytestmark = pytest.mark.skipif(not native.redis_running(),
                                reason="needs the native stack (orders stack up)")
FAULT_AT_S = 2.5  # writes before the fault, and again after it


@dataclass
class Deployment:
    settings: Settings
    postgres: PrivateCluster
    redis_server: PrivateRedis
    pool: asyncpg.Pool[Any]
    es: AsyncElasticsearch
    redis: Redis
    projector: subprocess.Popen[bytes] | None = None

    def start_projector(self) -> None:
        self.projector = spawn_projector(self.settings)

    async def published(self) -> None:
        """Until the projector has built and published both read models."""
        async def both() -> bool:
            try:
                return (await live_index(self.es, self.settings.search_alias) is not None
                        and all([await live_generation(self.redis,
                                                       self.settings.dashboard_namespace, part)
                                 is not None
                                 for part in all_partitions(self.settings.partitions)]))
            except Exception:
                return False
        await eventually(both, 60, "read models published")

    def assert_projector_alive(self) -> None:
        assert self.projector is not None and self.projector.poll() is None, \
            "the projector process died"


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivateCluster]:
    server = PrivateCluster()
    yield server
    server.stop()


@pytest.fixture
async def deployment(postgres: PrivateCluster,
                     service_urls: ServiceUrls) -> AsyncIterator[Deployment]:
    tag = f"orders_f{uuid.uuid4().hex[:10]}"  # a database name too: no dash
    postgres.psql(f"CREATE DATABASE {tag}")
    await migrate_for_processes(postgres.database_url(tag))
    redis_server = PrivateRedis()
    redis_server.start()
    settings = Settings(database_url=postgres.database_url(tag), redis_url=redis_server.url,
                        elasticsearch_url=service_urls.elasticsearch,
                        search_alias=tag, dashboard_namespace=tag)
    pool = await create_pool(settings.database_url, min_size=1, max_size=10)
    es = AsyncElasticsearch(service_urls.elasticsearch_hosts, request_timeout=30)
    redis = Redis.from_url(redis_server.url)
    deployment = Deployment(settings, postgres, redis_server, pool, es, redis)
    try:
        yield deployment
    finally:
        if deployment.projector is not None and deployment.projector.poll() is None:
            deployment.projector.terminate()
            deployment.projector.wait(20)
        await pool.close()
        await redis.aclose()
        redis_server.stop()
        found = await es.indices.get(index=f"{tag}*", allow_no_indices=True)
        if found.body:
            await es.indices.delete(index=",".join(found.body))
        await es.close()


async def run_fault(d: Deployment, fault: Any, settle_s: float = FAULT_AT_S) -> None:
    """Mixed writes, the fault in the middle, then the verdict."""
    d.start_projector()
    await d.published()
    async with api(d.settings) as http, mixed_writes(http) as tally:
        await asyncio.sleep(FAULT_AT_S)
        await fault()
        await asyncio.sleep(settle_s)
    d.assert_projector_alive()
    try:
        compared = await assert_equal_to_write_model(d.pool, d.es, d.redis, d.settings)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nprojector log:\n{projector_log_tail(d.projector)}") \
            from exc
    assert not tally.bad, tally.bad[:5]
    assert tally.statuses[201] > 20 and compared > 20, tally.statuses
    d.assert_projector_alive()


async def test_projector_sigkill_then_restart(deployment: Deployment) -> None:
    async def fault() -> None:
        assert deployment.projector is not None
        deployment.projector.send_signal(signal.SIGKILL)
        deployment.projector.wait(10)
        await asyncio.sleep(1)
        deployment.start_projector()  # the one restart: what a supervisor does
    await run_fault(deployment, fault)


async def test_elasticsearch_sigkill(deployment: Deployment) -> None:
    pid = int((native.Layout.default().es_home / "es.pid").read_text().strip())

    async def fault() -> None:
        os.kill(pid, signal.SIGKILL)
        await asyncio.to_thread(stack.start, "elasticsearch")
    await run_fault(deployment, fault)


async def test_redis_sigkill(deployment: Deployment) -> None:
    async def fault() -> None:
        deployment.redis_server.kill9()
        await asyncio.sleep(1)
        deployment.redis_server.start()  # back from its append-only file (<= 1 s lost)
    await run_fault(deployment, fault)


async def test_redis_loses_everything(deployment: Deployment) -> None:
    async def fault() -> None:
        await deployment.redis.flushall()
    await run_fault(deployment, fault)


async def test_redis_back_from_an_older_snapshot(deployment: Deployment) -> None:
    async def fault() -> None:
        older = deployment.redis_server.snapshot()
        await asyncio.sleep(2)  # writes the snapshot will not have
        deployment.redis_server.restore(older)
    await run_fault(deployment, fault)


async def test_postgres_crash_then_restart_and_a_fast_restart(
        deployment: Deployment) -> None:
    async def fault() -> None:
        await asyncio.to_thread(deployment.postgres.kill_postmaster)
        await asyncio.sleep(1)
        await asyncio.to_thread(deployment.postgres.start)  # crash recovery
        await asyncio.sleep(2)
        await asyncio.to_thread(deployment.postgres.restart_fast)
    await run_fault(deployment, fault, settle_s=4)


async def test_search_index_deleted(deployment: Deployment) -> None:
    alias = deployment.settings.search_alias

    async def fault() -> None:
        index = await live_index(deployment.es, alias)
        assert index is not None
        await deployment.es.indices.delete(index=index)
    await run_fault(deployment, fault)
    # A bulk request into the deleted index re-creates it with guessed mappings; the
    # partitions that wrote into it delete it, so only the rebuilt index is left.
    found = await deployment.es.indices.get(index=f"{alias}*", allow_no_indices=True)
    assert set(found.body) == {await live_index(deployment.es, alias)}, sorted(found.body)


async def test_checkpoints_from_another_cluster(deployment: Deployment) -> None:
    """The database is restored into a new cluster, where new transaction ids sort below
    the restored ones. The projector refuses to follow (state `source_moved`) until
    `orders migrate` rebases the log; then every read model is rebuilt and equal again."""
    d = deployment
    d.start_projector()
    await d.published()
    async with api(d.settings) as http, mixed_writes(http) as tally:
        await asyncio.sleep(FAULT_AT_S)
    await assert_equal_to_write_model(d.pool, d.es, d.redis, d.settings)
    assert d.projector is not None
    d.projector.terminate()
    d.projector.wait(20)

    other = PrivateCluster()
    try:
        database = d.settings.database_url.rsplit("/", 1)[1]
        await asyncio.to_thread(other.restore_from, d.settings.database_url, database)
        moved = d.settings.model_copy(update={"database_url": other.database_url(database)})
        pool = await create_pool(moved.database_url, min_size=1, max_size=5)
        try:
            restored_tx = int(await pool.fetchval("SELECT max(transaction_id)::text FROM events"))
            new_tx = int(await pool.fetchval("SELECT pg_current_xact_id()::text"))
            assert new_tx < restored_tx  # the hazard itself: new events would sort first
            # A dump carries no roles: the new cluster gets them first, the rebase comes later.
            await apply_roles(moved.database_url, role_passwords(moved))
            d.settings = moved
            d.start_projector()
            async with api(moved) as http, mixed_writes(http, seed=2) as tally:
                await asyncio.sleep(FAULT_AT_S)

                async def refuses() -> bool:  # every partition of the dashboard
                    states = await pool.fetch(
                        "SELECT state FROM projection_status WHERE name LIKE 'dashboard:p%'")
                    return bool(states) and all(r["state"] == "source_moved" for r in states)
                await eventually(refuses, 30, "the projector refusing a moved log")
                assert "rebase-log" in await migrate_for_processes(moved.database_url)
                await asyncio.sleep(FAULT_AT_S)
            d.assert_projector_alive()
            await assert_equal_to_write_model(pool, d.es, d.redis, moved)
            assert not tally.bad, tally.bad[:5]
            d.assert_projector_alive()
        finally:
            await pool.close()
            if d.projector is not None and d.projector.poll() is None:
                d.projector.terminate()
                d.projector.wait(20)
    finally:
        other.stop()

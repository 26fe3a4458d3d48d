"""Elasticsearch and Redis with authentication on: each process's user, what it may do and
what it is refused; anonymous access refused; a wrong password is one clear sentence.

These need the secured stack (`orders stack up` writes the process passwords' files into
.stack/env); without process passwords configured they skip.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.exceptions
from elasticsearch import AsyncElasticsearch, AuthorizationException
from pydantic import SecretStr
from redis.asyncio import Redis

from app.kernel import bootstrap
from app.kernel.credentials import CredentialsRefused, without_userinfo
from app.kernel.settings import Settings
from tests.helpers.services import ServiceUrls


@pytest.fixture
def secured(settings: Settings) -> Settings:
    if settings.es_reader_password is None or settings.redis_reader_password is None:
        pytest.skip("no Elasticsearch/Redis process passwords configured (orders stack up)")
    return settings


@pytest.fixture
async def index(service_urls: ServiceUrls) -> AsyncIterator[str]:
    """An index of this test under the read models' prefix, made by the administrator."""
    name = f"orders-access-{uuid.uuid4().hex[:8]}"
    admin = AsyncElasticsearch(service_urls.elasticsearch)
    await admin.index(index=name, id="1", document={"customer_name": "Ada"}, refresh=True)
    yield name
    await admin.indices.delete(index=name, ignore_unavailable=True)
    await admin.close()


async def test_anonymous_requests_are_refused(secured: Settings,
                                              service_urls: ServiceUrls) -> None:
    async with httpx.AsyncClient() as http:
        es = await http.get(without_userinfo(service_urls.elasticsearch) + "/_cluster/health")
    assert es.status_code == 401
    anonymous = Redis.from_url(without_userinfo(service_urls.redis))
    try:
        with pytest.raises(redis.exceptions.AuthenticationError):
            await anonymous.get("orders:dash:active")
    finally:
        await anonymous.aclose()


async def test_read_user_searches_and_cannot_write_or_delete(secured: Settings,
                                                             index: str) -> None:
    es = bootstrap.open_elasticsearch(secured.model_copy(update={"role": "read"}), "api")
    try:
        found = await es.search(index=index, query={"match": {"customer_name": "ada"}})
        assert found["hits"]["total"]["value"] == 1
        with pytest.raises(AuthorizationException):
            await es.index(index=index, id="2", document={"customer_name": "Eve"})
        with pytest.raises(AuthorizationException):
            await es.indices.delete(index=index)
    finally:
        await es.close()


async def test_writer_builds_its_own_indices_and_nothing_else(secured: Settings,
                                                              index: str) -> None:
    es = bootstrap.open_elasticsearch(secured, "projector")
    own = f"orders-access-{uuid.uuid4().hex[:8]}"
    try:
        await es.index(index=index, id="2", document={"customer_name": "Eve"})
        await es.indices.create(index=own)
        await es.indices.update_aliases(actions=[{"add": {"index": own, "alias": f"{own}-a"}}])
        await es.indices.delete(index=own)
        with pytest.raises(AuthorizationException):
            await es.indices.create(index=f"elsewhere-{uuid.uuid4().hex[:8]}")
        with pytest.raises(AuthorizationException):
            await es.cluster.put_settings(persistent={"cluster.routing.allocation.enable": "all"})
    finally:
        await es.close()


async def test_redis_read_user_runs_its_script_and_subscribes_only(secured: Settings) -> None:
    reader = bootstrap.open_redis(secured.model_copy(update={"role": "read"}), "api")
    try:
        read = reader.register_script("return redis.call('GET', KEYS[1])")
        assert await read(keys=["orders:access:none"]) is None
        async with reader.pubsub() as pubsub:
            await pubsub.subscribe("orders:dash:changes")
        write = reader.register_script("return redis.call('SET', KEYS[1], '1')")
        with pytest.raises(redis.exceptions.ResponseError, match="can't run this command"):
            await write(keys=["orders:access:none"])
        with pytest.raises(redis.exceptions.NoPermissionError):
            await reader.set("orders:access:none", "1")
        with pytest.raises(redis.exceptions.NoPermissionError):
            await reader.publish("orders:dash:changes", "forged")
    finally:
        await reader.aclose()


async def test_redis_projector_user_runs_scripts_and_publishes_in_its_namespace(
        secured: Settings) -> None:
    projector = bootstrap.open_redis(secured, "projector")
    key = f"orders:access:{uuid.uuid4().hex[:8]}"
    try:
        bump = projector.register_script(
            "redis.call('HINCRBY', KEYS[1], 'n', 1) return redis.call('PUBLISH', ARGV[1], 'x')")
        await bump(keys=[key], args=["orders:access:changes"])
        assert await projector.hmget(key, ["n"]) == [b"1"]
        await projector.delete(key)
        with pytest.raises(redis.exceptions.NoPermissionError):
            await projector.get("elsewhere:key")
        with pytest.raises(redis.exceptions.NoPermissionError):
            await projector.flushall()
        with pytest.raises(redis.exceptions.NoPermissionError):
            await projector.config_get("*")
    finally:
        await projector.aclose()


@pytest.mark.parametrize(("field", "service"), [("es_reader_password", "Elasticsearch"),
                                                 ("redis_reader_password", "Redis")])
async def test_a_wrong_password_is_one_sentence_naming_the_service(
        secured: Settings, field: str, service: str) -> None:
    wrong = secured.model_copy(update={"role": "read", field: SecretStr("not-the-password")})
    with pytest.raises(CredentialsRefused) as caught:
        await bootstrap.connect(wrong, "api")
    message = str(caught.value)
    assert message.startswith(f"{service} refused user 'orders_reader'")
    assert f"ORDERS_{field.upper()}" in message and "not-the-password" not in message

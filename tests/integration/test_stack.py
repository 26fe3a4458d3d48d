"""The real services answer, and the Docker Compose file agrees with the native pins."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis

from infra.versions import ELASTICSEARCH_VERSION, POSTGRES_MAJOR, REDIS_MAJOR
from tests.helpers.services import ServiceUrls

ROOT = Path(__file__).resolve().parents[2]


async def test_elasticsearch_indexes_and_reads_back(service_urls: ServiceUrls) -> None:
    es = AsyncElasticsearch(service_urls.elasticsearch_hosts)
    index = f"stack-check-{uuid.uuid4().hex[:8]}"
    try:
        await es.index(index=index, id="1", document={"hello": "world"}, refresh=True)
        doc = await es.get(index=index, id="1")
        assert doc["_source"] == {"hello": "world"}
        info = await es.perform_request("GET", "/_nodes/_local",
                                        headers={"accept": "application/json"})
        versions = {n["version"] for n in info.body["nodes"].values()}
        assert versions == {ELASTICSEARCH_VERSION}
    finally:
        await es.indices.delete(index=index, ignore_unavailable=True)
        await es.close()


async def test_redis_sets_and_gets_a_hash_field(service_urls: ServiceUrls) -> None:
    redis = Redis.from_url(service_urls.redis, decode_responses=True)
    key = f"stack-check:{uuid.uuid4().hex}"
    try:
        await redis.hset(key, "field", "value")
        assert await redis.hget(key, "field") == "value"
    finally:
        await redis.delete(key)
        await redis.aclose()


def _compose_images() -> dict[str, str]:
    text = (ROOT / "docker-compose.yml").read_text()
    return dict(re.findall(r"image: .*?(postgres|redis|elasticsearch):(\S+)", text))


def test_compose_file_names_the_pinned_versions() -> None:
    assert _compose_images() == {"postgres": POSTGRES_MAJOR, "redis": REDIS_MAJOR,
                                 "elasticsearch": ELASTICSEARCH_VERSION}


@pytest.mark.skipif(shutil.which("docker-compose") is None,
                    reason="docker-compose is installed by `make test` (infra/ensure-tools.sh)")
def test_compose_file_is_valid() -> None:
    result = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"),
                             "config", "-q"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr

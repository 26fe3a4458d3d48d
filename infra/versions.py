"""The one place that pins the versions of the backing services.

`docker-compose.yml` must name the same versions; a test checks that it does.
"""

from __future__ import annotations

ELASTICSEARCH_VERSION = "9.2.4"
# Elasticsearch 9.x runs on Java 21 and newer; the newest JDK it supports is preferred.
ELASTICSEARCH_JAVA_MIN = 21
ELASTICSEARCH_JAVA_MAX = 25
POSTGRES_MAJOR = "15"
REDIS_MAJOR = "7"

ELASTICSEARCH_ARTIFACT = (
    f"org.elasticsearch.distribution.integ-test-zip:elasticsearch:{ELASTICSEARCH_VERSION}:zip"
)

"""The project's own "a backing service is unavailable" error, and the one list per driver
of the errors that mean it.

Adapters translate those driver errors into `ServiceUnavailable` (`raise ... from None`,
see `unavailable_on_failure`), so no caller lists driver classes; the HTTP edge answers it
with 503 and `Retry-After`, and the projector waits and retries.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import asyncpg
import elasticsearch
from redis import exceptions as redis_exceptions

Service = Literal["postgres", "elasticsearch", "redis"]

# What a crash, restart, failover or overload of the server looks like from asyncpg: socket
# errors and timeouts, a closed connection (InterfaceError, PostgresConnectionError), a
# protocol left mid-operation by a dropped socket (InternalClientError: "cannot switch to
# state ..."), admin shutdown / starting up / query cancelled (OperatorInterventionError) and
# too many connections (InsufficientResourcesError), a standby not yet promoted during a
# failover (ReadOnlySQLTransactionError).
POSTGRES_DOWN: tuple[type[Exception], ...] = (
    OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError, asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError, asyncpg.ReadOnlySQLTransactionError)
# No answer at all from Elasticsearch (a refusal with a status is an `ApiError`, not this).
ELASTICSEARCH_DOWN: tuple[type[Exception], ...] = (
    elasticsearch.ConnectionError, elasticsearch.ConnectionTimeout,
    elasticsearch.TransportError)
REDIS_DOWN: tuple[type[Exception], ...] = (
    redis_exceptions.ConnectionError, redis_exceptions.TimeoutError)
DOWN: dict[Service, tuple[type[Exception], ...]] = {
    "postgres": POSTGRES_DOWN, "elasticsearch": ELASTICSEARCH_DOWN, "redis": REDIS_DOWN}
NAMES: dict[Service, str] = {
    "postgres": "PostgreSQL", "elasticsearch": "Elasticsearch", "redis": "Redis"}


class ServiceUnavailable(Exception):
    """A backing service (PostgreSQL, Elasticsearch, Redis) did not answer in time."""

    def __init__(self, service: str, message: str) -> None:
        super().__init__(message)
        self.service = service
        self.message = message


def down_service(exc: BaseException) -> Service | None:
    """Which service `exc` says is down, if it is one of the lists above."""
    for service, classes in DOWN.items():
        if isinstance(exc, classes):
            return service
    return None


@contextmanager
def unavailable_on_failure(service: Service = "postgres") -> Iterator[None]:
    """Raise `ServiceUnavailable` for any of `service`'s "down" errors raised in the block."""
    try:
        yield
    except DOWN[service]:
        raise ServiceUnavailable(service, f"{NAMES[service]} is not available") from None

"""The project's own "a backing service is unavailable" error.

Adapters translate their driver's connection-class errors into it (`raise ... from None`),
so no caller lists driver classes; the HTTP edge answers it with 503 and `Retry-After`.
"""

from __future__ import annotations


class ServiceUnavailable(Exception):
    """A backing service (PostgreSQL, Elasticsearch, Redis) did not answer in time."""

    def __init__(self, service: str, message: str) -> None:
        super().__init__(message)
        self.service = service
        self.message = message

"""Structured logs: one JSON object per line, carrying the request's correlation id."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime

import orjson

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None)


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", "correlation_id", ...extra}` per record."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": correlation_id.get(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        try:  # one line per request in the access log: orjson writes it in a fifth of the time
            return orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:  # what orjson refuses (a lone surrogate, a huge int) json writes
            return json.dumps(entry, default=str)


def setup_logging(level: int = logging.INFO) -> None:
    """Send every logger's records to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("elastic_transport", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

"""What each projection reports about itself (state, checkpoint, lag), kept in PostgreSQL
(the table's SQL and the list of states: `app.kernel.status`)."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import asyncpg

from app.kernel.status import UPSERT
from projectors.log import ANY_SOURCE_ERROR

OWNER = f"{socket.gethostname()}:{os.getpid()}"


class StatusBoard:
    """Writes one projection's status row, on every change of state and every few seconds."""

    def __init__(self, pool: asyncpg.Pool[Any], name: str, every_s: float = 2.0) -> None:
        self._pool = pool
        self._name = name
        self._every_s = every_s
        self._last: tuple[str, float] = ("", 0.0)
        self.state = "starting"
        self.detail: dict[str, Any] = {}

    async def report(self, state: str, **detail: Any) -> None:
        moved = "target" in detail and detail["target"] != self.detail.get("target")
        self.state = state
        self.detail.update(detail)
        now = time.monotonic()
        if state == self._last[0] and now - self._last[1] < self._every_s and not moved:
            return
        try:
            await self._pool.execute(UPSERT, self._name, state, self.detail, OWNER)
            self._last = (state, now)
        except ANY_SOURCE_ERROR:
            pass  # status is advisory; PostgreSQL being down is reported elsewhere

"""LISTEN on a PostgreSQL channel: one connection, kept open across outages.

The one way this project hears NOTIFY: the projector's wake-ups (new events) and the read
side's "a checkpoint moved" notices both run `listen_postgres`. A notice sent while the
connection was down is lost, so `on_notice("reconnected")` follows every reconnection and
listeners re-check instead of waiting (they also poll, so nothing depends on a notice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

log = logging.getLogger("orders.listen")
RECONNECTED = "reconnected"


async def listen_postgres(dsn: str, channel: str, on_notice: Callable[[str], None],
                          retry_s: float = 1.0) -> None:
    """Call `on_notice(payload)` for every NOTIFY on `channel` until cancelled."""
    while True:
        conn: asyncpg.Connection[Any] | None = None
        try:
            closed = asyncio.Event()
            conn = await asyncpg.connect(dsn, timeout=5)
            conn.add_termination_listener(lambda _, done=closed: done.set())
            await conn.add_listener(channel, lambda *args: on_notice(str(args[-1])))
            await closed.wait()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # down, restarting, refused: try again shortly
            log.info("listener on %s: %s; retrying", channel, type(exc).__name__)
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
        on_notice(RECONNECTED)
        await asyncio.sleep(retry_s)

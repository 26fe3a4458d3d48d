"""Live dashboards for many clients: one read and one rendered frame per change, shared.

Every `/dashboard/stream` client of a process follows one `DashboardStreams`. On each change
notice it reads the dashboard once (through the shared `DashboardCache`), renders the
Server-Sent Events frame once, and wakes every client with one event; each client then only
writes those same bytes. A commit brings a burst of notices (the partition that counts it,
then the others moving their checkpoints past it, which moves the frame's position), so
a notice first waits `gather_s` for the rest of its burst: one frame per commit, not one per
partition, each of which would be written to every client. Clients are latest-wins: a
client still writing an older frame skips straight to the newest, so a slow reader never
holds the others back. With no change for `heartbeat_s`, clients get a comment line, so
proxies keep the connection open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator

from app.read.dashboard import DashboardCache, DashboardNotBuilt
from app.read.progress import Broadcast

log = logging.getLogger("orders.read")
HEARTBEAT = b": heartbeat\n\n"


def frame(body: bytes, position: int) -> bytes:
    """One SSE event: the dashboard, its id the checkpoint position it shows."""
    return b"event: dashboard\nid: %d\ndata: %s\n\n" % (position, body)


class DashboardStreams:
    """The frames every stream client of this process sends; see the module docstring."""

    def __init__(self, cache: DashboardCache, notices: Broadcast,
                 heartbeat_s: float = 15.0, gather_s: float = 0.015) -> None:
        self._cache = cache
        self._notices = notices
        self.heartbeat_s = heartbeat_s
        self.gather_s = gather_s
        self.clients = 0
        self.data: bytes | None = None  # the newest dashboard frame (None: not built yet)
        self.data_version = 0  # bumped when `data` changes
        self.tick = 0  # bumped on every new frame and every heartbeat
        self._ticked = asyncio.Event()
        self._wanted = asyncio.Event()  # set while anyone is listening

    async def run(self) -> None:
        """Until cancelled: read and render on every notice while clients are connected."""
        async with self._notices.subscribe() as notices:
            while True:
                if not self.clients:  # nobody to render for: wait for a first client
                    self.data = None  # and never greet it with a frame this old
                    self._wanted.clear()
                    await self._wanted.wait()
                try:
                    await self._render()
                except DashboardNotBuilt:
                    pass  # sent once it is published
                except Exception as exc:  # a store outage: clients keep the last frame
                    log.info("dashboard stream: %s; the next notice retries",
                             type(exc).__name__)
                try:
                    await asyncio.wait_for(notices.get(), self.heartbeat_s)
                except TimeoutError:
                    self._advance()  # a heartbeat
                    continue
                await asyncio.sleep(self.gather_s)  # the rest of the burst (module docstring)
                with contextlib.suppress(asyncio.QueueEmpty):
                    notices.get_nowait()  # the burst's last notice: this render covers it

    async def _render(self) -> None:
        body, frontier = await self._cache.read()
        rendered = frame(body, frontier.position)
        if rendered != self.data:
            self.data, self.data_version = rendered, self.data_version + 1
            self._advance()

    def _advance(self) -> None:
        self.tick += 1
        woken, self._ticked = self._ticked, asyncio.Event()
        woken.set()

    async def frames(self) -> AsyncGenerator[bytes, None]:
        """What one client writes: the newest dashboard at once (when built), then the
        newest again after each change, or a heartbeat when nothing changed."""
        self.clients += 1
        self._wanted.set()
        sent_version = 0
        woken = False
        try:
            while True:
                tick, ticked = self.tick, self._ticked
                if self.data is not None and self.data_version != sent_version:
                    sent_version = self.data_version
                    yield self.data
                elif woken:
                    yield HEARTBEAT
                if tick == self.tick:  # nothing new while we wrote: sleep until there is
                    await ticked.wait()
                woken = True
        finally:
            self.clients -= 1

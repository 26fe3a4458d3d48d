"""`GET /dashboard` and `GET /dashboard/stream` without the framework: the request shapes
live boards repeat, or hold open by the thousand.

A board polls the dashboard with no position to wait for; its answer is the shared rendered
body of `DashboardCache`, so routing, parameter validation and dependency resolution are
most of that request's cost. This ASGI layer answers exactly that shape itself: `GET
/dashboard`, no query or only `days=N` (0..366), no `X-Min-Position`/`X-Min-Version`, and a
caller the read scope admits. Anything else, and any failure before the answer starts,
goes on to the FastAPI route, which owns validation, errors and every other case, so both
paths give the same bytes and headers (tests/read/test_dashboard_fast_path.py).

A stream (any query, which the route ignores too) is answered here whenever the caller is
admitted: its frames come from the process's `DashboardStreams`, as the route's do; only
the per-message layers of the framework are skipped, which matters at 20,000 clients.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send

from app.middleware import first_values

if TYPE_CHECKING:
    from app.auth import Authenticator
    from app.read.wiring import ReadSide

PATH = "/dashboard"
STREAM_PATH = "/dashboard/stream"
# What the route's StreamingResponse sends (Starlette adds the charset to text types).
STREAM_HEADERS = [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no"),
                  (b"content-type", b"text/event-stream; charset=utf-8")]
DEFAULT_DAYS = 30
MAX_DAYS = 366  # the route's own bound (Query(le=366))
POSITIONED = (b"x-min-position", b"x-min-version")


def _days(query: bytes) -> int | None:
    """The `days` of a plain dashboard query string; None when the route must decide."""
    if not query:
        return DEFAULT_DAYS
    name, equals, value = query.partition(b"=")
    if name != b"days" or not equals or not value.isdigit() or len(value) > 3:
        return None
    days = int(value)
    return days if days <= MAX_DAYS else None


class DashboardFastPath:
    """Answers the plain dashboard read from the shared cache; passes everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or \
                scope["path"] not in (PATH, STREAM_PATH):
            await self.app(scope, receive, send)
            return
        state = scope["app"].state if "app" in scope else None
        read: ReadSide | None = getattr(state, "read", None)
        auth: Authenticator | None = getattr(state, "auth", None)
        headers = first_values(scope["headers"])
        if scope["path"] == STREAM_PATH:
            days: int | None = DEFAULT_DAYS
        else:
            days = _days(scope.get("query_string", b""))
            if any(h in headers for h in POSITIONED):
                days = None
        if read is None or auth is None or days is None:
            await self.app(scope, receive, send)
            return
        authorization = headers.get(b"authorization")
        try:
            actor = auth.check(authorization.decode("latin-1") if authorization else None,
                               "read")
            if scope["path"] != STREAM_PATH:
                body, frontier = await read.dashboard_cache.read(days)
        except Exception:  # refused, not built, a store down...: the route answers it
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["actor"] = actor  # for the access log, as the route
        if scope["path"] == STREAM_PATH:
            await _stream(read, receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"x-projection-position", str(frontier.position).encode()),
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


async def _stream(read: ReadSide, receive: Receive, send: Send) -> None:
    """Write the shared frames until the client disconnects."""
    await send({"type": "http.response.start", "status": 200, "headers": STREAM_HEADERS})
    writer = asyncio.create_task(_write_frames(read, send))
    try:
        while (await receive())["type"] != "http.disconnect":
            pass
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer


async def _write_frames(read: ReadSide, send: Send) -> None:
    async with contextlib.aclosing(read.dashboard_streams.frames()) as frames:
        async for chunk in frames:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

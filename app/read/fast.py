"""The read requests a busy site repeats by the thousand, answered without the framework.

Routing, parameter validation and dependency resolution cost more than the work of these
requests, so this ASGI layer answers their common shapes itself, for a caller the read scope
admits, with no `X-Min-Position`/`X-Min-Version` to wait for:

- `GET /dashboard` with no query or only `days=N` (0..366): the shared rendered body of
  `DashboardCache`;
- `GET /search/orders` whose parameters are only `q`, `status`, `sort`, `size`, `cursor` and
  `customer_id`, each within the route's bounds and given once (`status` may repeat), and
  `GET /search/suggest` with only its `prefix`: the search box as people type, run as the
  route runs it;
- `GET /dashboard/stream` (any query, which the route ignores too): frames from the
  process's `DashboardStreams`, as the route's; only the per-message layers of the
  framework are skipped, which matters at 20,000 clients.

Anything else, and any failure before the answer starts (a refused key, a store down, a
swapped index), goes on to the FastAPI route, which owns validation, errors and every other
case, so both paths give the same bytes and headers (tests/read/test_dashboard_fast_path.py,
tests/read/test_search_fast_path.py). A search that fails is therefore tried twice: once
here, then by the route that renders its error.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from app.domain.order import STATUSES
from app.middleware import first_values
from app.read.search import (
    DEFAULT_SIZE,
    MAX_CURSOR,
    MAX_CUSTOMER_ID,
    MAX_PREFIX,
    MAX_SIZE,
    MAX_TEXT,
    SORTS,
    SUGGESTIONS,
    BadCursor,
    SearchQuery,
    decode_cursor,
)

if TYPE_CHECKING:
    from app.auth import Authenticator
    from app.read.wiring import ReadSide

PATH = "/dashboard"
STREAM_PATH = "/dashboard/stream"
SEARCH_PATH = "/search/orders"
SUGGEST_PATH = "/search/suggest"
FAST_PATHS = (PATH, STREAM_PATH, SEARCH_PATH, SUGGEST_PATH)
# What the route's StreamingResponse sends (Starlette adds the charset to text types).
STREAM_HEADERS = [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no"),
                  (b"content-type", b"text/event-stream; charset=utf-8")]
DEFAULT_DAYS = 30
MAX_DAYS = 366  # the route's own bound (Query(le=366))
POSITIONED = (b"x-min-position", b"x-min-version")
# The bounds of the search route's parameters that the fast path answers (app/read/router.py)
SEARCH_BOUNDS = {"q": MAX_TEXT, "sort": max(map(len, SORTS)), "size": len(str(MAX_SIZE)),
                 "cursor": MAX_CURSOR, "customer_id": MAX_CUSTOMER_ID}


def _days(query: bytes) -> int | None:
    """The `days` of a plain dashboard query string; None when the route must decide."""
    if not query:
        return DEFAULT_DAYS
    name, equals, value = query.partition(b"=")
    if name != b"days" or not equals or not value.isdigit() or len(value) > 3:
        return None
    days = int(value)
    return days if days <= MAX_DAYS else None


def search_query(query: bytes) -> SearchQuery | None:
    """The search of a plain search-box query string; None when the route must decide.

    Parsed as the framework parses it (Latin-1 bytes, then percent-decoded UTF-8); a name
    the route does not read, or a single-valued name given twice, goes to the route too.
    """
    single: dict[str, str] = {}
    status: list[str] = []
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if name == "status":
            if value not in STATUSES:
                return None
            status.append(value)
        elif name in single or len(value) > SEARCH_BOUNDS.get(name, -1):
            return None
        else:
            single[name] = value
    sort = single.get("sort", "relevance")
    size = single.get("size", str(DEFAULT_SIZE))
    if sort not in SORTS or not (size.isascii() and size.isdigit()) or \
            not 1 <= int(size) <= MAX_SIZE:
        return None
    cursor = single.get("cursor")
    if cursor:
        try:
            decode_cursor(cursor, sort)
        except BadCursor:
            return None
    return SearchQuery.typed(single.get("q"), status=status,
                             customer_id=single.get("customer_id"), sort=sort,
                             size=int(size), cursor=cursor)


def suggest_prefix(query: bytes) -> str | None:
    """The prefix of a plain suggestions query string (`prefix` alone, within the route's
    bounds); None when the route must decide."""
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    if len(pairs) != 1 or pairs[0][0] != "prefix" or not 1 <= len(pairs[0][1]) <= MAX_PREFIX:
        return None
    return pairs[0][1]


def _json(content: Any) -> bytes:
    """The bytes the framework renders for a route's returned dict (`JSONResponse`: compact
    UTF-8), in a fifth of its time; these answers hold no NaN, which orjson would write as
    null where the framework would fail."""
    return orjson.dumps(content)


# What a fast path answers: the body and the position its header reports.
Answer = Callable[["ReadSide"], Awaitable[tuple[bytes, int]]]


def _answer(path: str, query: bytes) -> Answer | None:
    """How the fast path answers this request; None when the route must decide."""
    if path == PATH:
        days = _days(query)
        return None if days is None else partial(_dashboard, days=days)
    if path == SEARCH_PATH:
        search = search_query(query)
        return None if search is None else partial(_searched, run=partial(_search, search))
    prefix = suggest_prefix(query)
    return None if prefix is None else partial(_searched, run=partial(_suggest, prefix))


async def _dashboard(read: ReadSide, days: int) -> tuple[bytes, int]:
    body, frontier = await read.dashboard_cache.read(days)
    return body, frontier.position


async def _searched(read: ReadSide, run: Callable[[ReadSide, str], Awaitable[Any]]
                    ) -> tuple[bytes, int]:
    # no position asked: a recent checkpoint and its index, as the route (router._search_on)
    target = await read.search_checkpoint.recent()
    return _json(await run(read, target.index)), target.checkpoint.position


async def _search(search: SearchQuery, read: ReadSide, index: str) -> dict[str, Any]:
    return await read.search.search(search, index)


async def _suggest(prefix: str, read: ReadSide, index: str) -> dict[str, Any]:
    return {"suggestions": await read.search.suggest(prefix, SUGGESTIONS, index)}


class ReadFastPath:
    """Answers the plain dashboard read, search, suggestions and the stream; passes
    everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else None
        if path not in FAST_PATHS or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        state = scope["app"].state if "app" in scope else None
        read: ReadSide | None = getattr(state, "read", None)
        auth: Authenticator | None = getattr(state, "auth", None)
        headers = first_values(scope["headers"])
        answer: Answer | None = None
        if path != STREAM_PATH and not any(h in headers for h in POSITIONED):
            answer = _answer(path, scope.get("query_string", b""))
        if read is None or auth is None or (answer is None and path != STREAM_PATH):
            await self.app(scope, receive, send)
            return
        authorization = headers.get(b"authorization")
        try:
            actor = auth.check(authorization.decode("latin-1") if authorization else None,
                               "read")
            if answer is not None:
                body, position = await answer(read)
        except Exception:  # refused, not built, a store down...: the route answers it
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["actor"] = actor  # for the access log, as the route
        if answer is None:  # the stream
            await _stream(read, receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"x-projection-position", str(position).encode()),
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

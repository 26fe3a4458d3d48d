"""The read API: search box, suggestions, customer orders, dashboard and its live stream.

Every answer carries `X-Projection-Position`; `X-Min-Position` (or `X-Min-Version`) makes
a read wait for, or refuse with 503, a projection that has not applied that position.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from elasticsearch import ApiError
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import BeforeValidator, WithJsonSchema

from app.domain.money import amount_pattern
from app.domain.order import StatusText
from app.kernel.positions import Frontier
from app.openapi import errors
from app.read.consistency import MAX_WAIT_MS, ProjectionBehind, wait_until_applied
from app.read.positioned import PositionedRoute
from app.read.search import (
    DEFAULT_SIZE,
    MAX_CURSOR,
    MAX_CUSTOMER_ID,
    MAX_PREFIX,
    MAX_SIZE,
    MAX_TEXT,
    SUGGESTIONS,
    SearchQuery,
    Sort,
    decode_cursor,
)
from app.read.wiring import ReadSide, SearchTarget

# Every read: the API-key check (mounted in app.main), validation, and 503 when a store is
# down, the index is not built yet, or `X-Min-Position` is not applied within `wait_ms`.
T = TypeVar("T")
router = APIRouter(tags=["read"], route_class=PositionedRoute,
                   responses=errors(401, 403, 422, 503))
POSITION_PATTERN = r"^[0-9]{1,18}$"
TOTAL_DIGITS = 10  # whole digits of a `min_total`/`max_total` filter
MONEY_PATTERN = amount_pattern(TOTAL_DIGITS)
_MONEY = re.compile(MONEY_PATTERN)
# RFC 3339 date-time (JSON Schema's `date-time`): pydantic alone would also take dates,
# naive times and Unix timestamps ("0.5").
DATE_TIME_PATTERN = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
                     r"([Zz]|[+-][0-9]{2}:[0-9]{2})$")
_DATE_TIME = re.compile(DATE_TIME_PATTERN)


async def get_read(request: Request) -> ReadSide:
    read: ReadSide = request.app.state.read
    return read


ReadDep = Annotated[ReadSide, Depends(get_read)]


def _date_time_text(value: Any) -> Any:
    if isinstance(value, str) and not _DATE_TIME.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time, e.g. 2026-03-01T09:00:00Z")
    return value


def _money_text(value: Any) -> Any:
    if isinstance(value, str) and not _MONEY.fullmatch(value):
        raise ValueError('must be an amount like "19.90": digits, then at most 2 decimals')
    return value


# The pattern documents `_min_position`, which checks the value with a clearer message.
MinPosition = Annotated[str | None, Header(
    alias="X-Min-Position", json_schema_extra={"pattern": POSITION_PATTERN},
    description="answer only once this log position is applied (503 ProjectionBehind "
                "if it is not within `wait_ms`)")]
MinVersion = Annotated[str | None, Header(
    alias="X-Min-Version", json_schema_extra={"pattern": POSITION_PATTERN},
    description="same as X-Min-Position")]
WaitMs = Annotated[int, Query(ge=0, le=MAX_WAIT_MS, description="wait this long to catch up")]
# Query values are text: the schemas say which text is accepted, the validators hold to it.
Money = Annotated[
    Decimal | None, BeforeValidator(_money_text),
    Query(ge=0, max_digits=TOTAL_DIGITS + 2, decimal_places=2, allow_inf_nan=False),
    WithJsonSchema({"type": "string", "pattern": MONEY_PATTERN,
                    "description": "an amount, e.g. 19.90"})]
DateTime = Annotated[
    datetime | None, BeforeValidator(_date_time_text), Query(),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": DATE_TIME_PATTERN})]


def _min_position(position: str | None, version: str | None) -> int | None:
    raw = position if position is not None else version
    if raw is None:
        return None
    text = raw.strip()
    # isascii: str.isdigit() also holds for "²", which int() refuses (a 500 before)
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        name = "X-Min-Position" if position is not None else "X-Min-Version"
        raise RequestValidationError([{"loc": ("header", name), "type": "value_error",
                                       "msg": "must be a log position (a whole number >= 0)"}])
    return int(text)


async def _search_on(read: ReadSide, response: Response, position: str | None,
                     version: str | None, wait_ms: int,
                     query: Callable[[str], Awaitable[T]]) -> T:
    """Run `query` on the concrete index whose checkpoint was checked (or, with no position
    asked, a recent one), so an alias swap in between can never answer from a target that
    lacks the position; an index removed meanwhile is resolved again, once."""
    min_position = _min_position(position, version)
    checked: list[SearchTarget] = []

    async def checkpoint() -> Frontier:
        checked[:] = [await read.search_checkpoint.target()]
        return checked[0].frontier

    for attempt in (1, 2):
        if min_position is None:
            # Nothing to wait for: a recent checkpoint is enough for the header, and reporting
            # a slightly older position is safe (it can only under-state progress).
            target = await read.search_checkpoint.recent()
        else:
            await wait_until_applied("search", min_position, wait_ms, checkpoint, read.log,
                                     read.search_progress)
            target = checked[0]
        response.headers["X-Projection-Position"] = str(target.checkpoint.position)
        try:
            return await query(target.index)
        except ApiError as exc:
            if exc.status_code != 404 or attempt == 2:
                raise
            read.search_checkpoint.forget()
    raise AssertionError("unreachable")


async def _dashboard_checked(read: ReadSide, response: Response, position: str | None,
                             version: str | None, wait_ms: int,
                             days: int) -> tuple[bytes, Frontier]:
    """The dashboard once it covers the asked position; the answer's own checkpoint (read
    with its counters in one script) is checked again, since a swap can land in between."""
    min_position = _min_position(position, version)
    if min_position is None:
        return await read.dashboard_cache.read(days)
    deadline = time.monotonic() + min(wait_ms, MAX_WAIT_MS) / 1000
    while True:
        remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
        needed = await wait_until_applied("dashboard", min_position, remaining_ms,
                                          read.dashboard.checkpoint, read.log,
                                          read.dashboard_progress)
        body, answered = await read.dashboard_cache.read(days, needed)
        located = await read.log.locate(min_position)
        if located is None or answered.covers(*located):  # None: nothing to wait for
            return body, answered
        if time.monotonic() >= deadline:
            raise ProjectionBehind("dashboard", min_position, answered.position)
        await asyncio.sleep(0.05)


@router.get("/search/orders")
async def search_orders(
    read: ReadDep, response: Response,
    q: Annotated[str | None, Query(max_length=MAX_TEXT)] = None,
    status: Annotated[list[StatusText] | None, Query()] = None,
    customer_id: Annotated[str | None, Query(max_length=MAX_CUSTOMER_ID)] = None,
    placed_from: DateTime = None, placed_to: DateTime = None,
    min_total: Money = None, max_total: Money = None,
    sort: Sort = "relevance",
    size: Annotated[int, Query(ge=1, le=MAX_SIZE)] = DEFAULT_SIZE,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR)] = None,
    wait_ms: WaitMs = 0, x_min_position: MinPosition = None, x_min_version: MinVersion = None,
) -> dict[str, Any]:
    """Full-text order search with filters, status facets, highlights and cursor paging.

    `cursor` is opaque: pass the `next_cursor` of the previous page, with the same `sort`.
    """
    if cursor:
        _check_cursor(cursor, sort)
    query = SearchQuery.typed(q, status=list(status or []), customer_id=customer_id,
                              placed_from=placed_from, placed_to=placed_to,
                              min_total=min_total, max_total=max_total, sort=sort, size=size,
                              cursor=cursor)
    return await _search_on(read, response, x_min_position, x_min_version, wait_ms,
                            lambda index: read.search.search(query, index))


def _check_cursor(cursor: str, sort: str) -> None:
    """422 for a cursor this API did not make, before anything is waited for."""
    decode_cursor(cursor, sort)  # raises BadCursor, nested-JSON recursion included


@router.get("/search/suggest")
async def suggest(
    read: ReadDep, response: Response,
    prefix: Annotated[str, Query(min_length=1, max_length=MAX_PREFIX)],
    wait_ms: WaitMs = 0, x_min_position: MinPosition = None, x_min_version: MinVersion = None,
) -> dict[str, Any]:
    """As-you-type suggestions: customer names, item names and SKUs starting with `prefix`."""
    suggestions = await _search_on(
        read, response, x_min_position, x_min_version, wait_ms,
        lambda index: read.search.suggest(prefix, SUGGESTIONS, index))
    return {"suggestions": suggestions}


@router.get("/customers/{customer_id}/orders")
async def customer_orders(
    read: ReadDep, response: Response,
    customer_id: Annotated[str, Path(min_length=1, max_length=64)],
    wait_ms: WaitMs = 0, x_min_position: MinPosition = None, x_min_version: MinVersion = None,
) -> dict[str, Any]:
    """The customer's newest 50 orders by `placed_at`."""
    orders = await _search_on(read, response, x_min_position, x_min_version, wait_ms,
                              lambda index: read.search.customer_orders(customer_id, index))
    return {"customer_id": customer_id, "orders": orders}


@router.get("/dashboard", response_model=dict[str, Any])
async def dashboard(
    read: ReadDep, response: Response,
    days: Annotated[int, Query(ge=0, le=366)] = 30,
    wait_ms: WaitMs = 0, x_min_position: MinPosition = None, x_min_version: MinVersion = None,
) -> Response:
    """Counters, per-day buckets and top SKUs, read from Redis in one round trip.

    Concurrent readers share one read until the projection's next change notice.
    """
    body, checkpoint = await _dashboard_checked(read, response, x_min_position, x_min_version,
                                                wait_ms, days)
    return Response(body, media_type="application/json",
                    headers={"X-Projection-Position": str(checkpoint.position)})


@router.get("/dashboard/stream", response_class=StreamingResponse)
async def dashboard_stream(read: ReadDep) -> StreamingResponse:
    """Server-Sent Events: the dashboard now, then again after every applied batch."""

    async def events() -> AsyncIterator[bytes]:
        # One rendered frame per change for every client of the process (app/read/streams.py)
        async with contextlib.aclosing(read.dashboard_streams.frames()) as frames:
            async for chunk in frames:
                yield chunk

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

"""The read API: search box, suggestions, customer orders, dashboard and its live stream.

Every answer carries `X-Projection-Position`; `X-Min-Position` (or `X-Min-Version`) makes
a read wait for, or refuse with 503, a projection that has not applied that position.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import BeforeValidator, WithJsonSchema

from app.openapi import errors
from app.positions import Checkpoint
from app.read.consistency import MAX_WAIT_MS, wait_until_applied
from app.read.positioned import PositionedRoute
from app.read.search import SearchQuery, decode_cursor
from app.read.wiring import ReadSide

# Every read: the API-key check (mounted in app.main), validation, and 503 when a store is
# down, the index is not built yet, or `X-Min-Position` is not applied within `wait_ms`.
router = APIRouter(tags=["read"], route_class=PositionedRoute,
                   responses=errors(401, 403, 422, 503))
HEARTBEAT_S = 15.0
POSITION_PATTERN = r"^[0-9]{1,18}$"
MONEY_PATTERN = r"^[0-9]{1,10}(\.[0-9]{1,2})?$"
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
    Query(ge=0, max_digits=12, decimal_places=2, allow_inf_nan=False),
    WithJsonSchema({"type": "string", "pattern": MONEY_PATTERN,
                    "description": "an amount, e.g. 19.90"})]
DateTime = Annotated[
    datetime | None, BeforeValidator(_date_time_text), Query(),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": DATE_TIME_PATTERN})]
Status = Literal["placed", "cancelled", "shipped"]
SortParam = Literal["relevance", "placed_at", "-placed_at", "total", "-total"]


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


async def _caught_up(read: ReadSide, projection: str, response: Response,
                     position: str | None, version: str | None,
                     wait_ms: int) -> Checkpoint | None:
    """The checkpoint a read must reflect, once applied; None when nothing was asked."""
    min_position = _min_position(position, version)
    if min_position is None and projection == "search":
        # Nothing to wait for: a recent checkpoint is enough for the header, and reporting
        # a slightly older position is safe (it can only under-state progress).
        current = await read.search_checkpoint.recent()
        response.headers["X-Projection-Position"] = str(current.position)
        return current
    if min_position is None:
        return None  # the dashboard's own read reports its checkpoint
    checkpoint: Callable[[], Awaitable[Checkpoint]]
    if projection == "search":
        checkpoint, progress = read.search_checkpoint, read.search_progress
    else:
        checkpoint, progress = read.dashboard.checkpoint, read.dashboard_progress
    current = await wait_until_applied(projection, min_position, wait_ms, checkpoint,
                                       read.log, progress)
    response.headers["X-Projection-Position"] = str(current.position)
    return current


@router.get("/search/orders")
async def search_orders(
    read: ReadDep, response: Response,
    q: Annotated[str | None, Query(max_length=500)] = None,
    status: Annotated[list[Status] | None, Query()] = None,
    customer_id: Annotated[str | None, Query(max_length=64)] = None,
    placed_from: DateTime = None, placed_to: DateTime = None,
    min_total: Money = None, max_total: Money = None,
    sort: SortParam = "relevance",
    size: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
    wait_ms: WaitMs = 0, x_min_position: MinPosition = None, x_min_version: MinVersion = None,
) -> dict[str, Any]:
    """Full-text order search with filters, status facets, highlights and cursor paging.

    `cursor` is opaque: pass the `next_cursor` of the previous page, with the same `sort`.
    """
    if cursor:
        _check_cursor(cursor, sort)
    await _caught_up(read, "search", response, x_min_position, x_min_version, wait_ms)
    # the text as typed: a trailing space says the last word is complete
    query = SearchQuery(q=q if q and q.strip() else None, status=list(status or []),
                        customer_id=customer_id, placed_from=placed_from, placed_to=placed_to,
                        min_total=min_total, max_total=max_total, sort=sort, size=size,
                        cursor=cursor)
    return await read.search.search(query)


def _check_cursor(cursor: str, sort: str) -> None:
    """422 for a cursor this API did not make, before anything is waited for."""
    decode_cursor(cursor, sort)  # raises BadCursor, nested-JSON recursion included


@router.get("/search/suggest")
async def suggest(
    read: ReadDep, response: Response,
    prefix: Annotated[str, Query(min_length=1, max_length=100)],
    wait_ms: WaitMs = 0, x_min_position: MinPosition = None, x_min_version: MinVersion = None,
) -> dict[str, Any]:
    """As-you-type suggestions: customer names, item names and SKUs starting with `prefix`."""
    await _caught_up(read, "search", response, x_min_position, x_min_version, wait_ms)
    return {"suggestions": await read.search.suggest(prefix.strip() or prefix, 10)}


@router.get("/customers/{customer_id}/orders")
async def customer_orders(
    read: ReadDep, response: Response,
    customer_id: Annotated[str, Path(min_length=1, max_length=64)],
    wait_ms: WaitMs = 0, x_min_position: MinPosition = None, x_min_version: MinVersion = None,
) -> dict[str, Any]:
    """The customer's newest 50 orders by `placed_at`."""
    await _caught_up(read, "search", response, x_min_position, x_min_version, wait_ms)
    return {"customer_id": customer_id, "orders": await read.search.customer_orders(customer_id)}


@router.get("/dashboard", response_model=dict[str, Any])
async def dashboard(
    read: ReadDep, response: Response,
    days: Annotated[int, Query(ge=0, le=366)] = 30,
    wait_ms: WaitMs = 0, x_min_position: MinPosition = None, x_min_version: MinVersion = None,
) -> Response:
    """Counters, per-day buckets and top SKUs, read from Redis in one round trip.

    Concurrent readers share one read until the projection's next change notice.
    """
    needed = await _caught_up(read, "dashboard", response, x_min_position, x_min_version,
                              wait_ms)
    body, checkpoint = await read.dashboard_cache.read(days, needed)
    return Response(body, media_type="application/json",
                    headers={"X-Projection-Position": str(checkpoint.position)})


@router.get("/dashboard/stream", response_class=StreamingResponse)
async def dashboard_stream(read: ReadDep, request: Request) -> StreamingResponse:
    """Server-Sent Events: the dashboard now, then again after every applied batch."""

    async def events() -> AsyncIterator[str]:
        async with read.dashboard_progress.subscribe() as notices:
            while not await request.is_disconnected():
                # the shared answer: a change notice costs one Redis read for all clients
                body, checkpoint = await read.dashboard_cache.read()
                yield f"event: dashboard\nid: {checkpoint.position}\ndata: {body.decode()}\n\n"
                while True:
                    try:
                        await asyncio.wait_for(notices.get(), HEARTBEAT_S)
                        break
                    except TimeoutError:
                        if await request.is_disconnected():
                            return
                        yield ": heartbeat\n\n"

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

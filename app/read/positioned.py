"""Read routes whose every answer carries `X-Projection-Position`, refusals included.

Validation (422), a bad cursor or an unavailable store are answered by the app's exception
handlers, outside the route's own code; this route class renders those answers itself and
adds the position of the projection the route reads, so a client always sees where it
stands. When the store holding that position is down too, the header is left out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from app.read.wiring import ReadSide

HEADER = "X-Projection-Position"
Handler = Callable[[Request, Exception], Coroutine[Any, Any, Response]]


async def _position(request: Request, path: str) -> str | None:
    read: ReadSide | None = getattr(request.app.state, "read", None)
    if read is None:
        return None
    # bounded: the answer must not wait on a store that is itself the problem
    with contextlib.suppress(Exception):
        if path.startswith("/dashboard"):
            checkpoint = await asyncio.wait_for(read.dashboard.checkpoint(), 1.0)
        else:
            checkpoint = (await asyncio.wait_for(read.search_checkpoint.recent(), 1.0)).checkpoint
        return str(checkpoint.position)
    return None


def _handler_for(request: Request, exc: Exception) -> Handler | None:
    handlers: dict[Any, Handler] = request.app.exception_handlers
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None


class PositionedRoute(APIRoute):
    """An `APIRoute` that adds `X-Projection-Position` to every answer it gives."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        path = self.path

        async def route(request: Request) -> Response:
            try:
                response = await handler(request)
            except Exception as exc:
                render = _handler_for(request, exc)
                if render is None:
                    raise
                response = await render(request, exc)
            if HEADER.lower() not in response.headers:
                position = await _position(request, path)
                if position is not None:
                    response.headers[HEADER] = position
            return response

        return route

"""A bare Starlette app: the same-sized JSON the read and write routes return, no work."""

from __future__ import annotations

import json
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = os.environ.get("BARE_BODY", '{"ok": true}').encode()


async def fixed(_: Request) -> Response:
    return Response(BODY, media_type="application/json")


async def echo(request: Request) -> Response:
    json.loads(await request.body())
    return Response(BODY, status_code=201, media_type="application/json")


app = Starlette(routes=[Route("/fixed", fixed), Route("/orders", echo, methods=["POST"])])

"""Request bodies parsed with JSON numbers kept as written, so number rules see the text.

`json.loads` turns `1e2` into 100.0 and `1.990` into 1.99, and pydantic then sees an amount
that looks valid. Here a number with a fraction or an exponent becomes a `JsonNumber`, a
`Decimal` that remembers its text, and the money rules apply to it as to a string.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


class JsonNumber(Decimal):
    """A JSON number that has a fraction or an exponent, with its text as sent."""

    text: str

    def __new__(cls, text: str) -> JsonNumber:
        number = super().__new__(cls, text)
        number.text = text
        return number


class ExactJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = json.loads(await self.body(), parse_float=JsonNumber)
        return self._json


class ExactJsonRoute(APIRoute):
    """A route whose JSON body keeps numbers as written (see `JsonNumber`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(ExactJsonRequest(request.scope, request.receive))

        return route

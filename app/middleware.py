"""ASGI middleware: a request-body limit and a correlation id on every request."""

from __future__ import annotations

import logging
import random
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import envelope
from app.logs import correlation_id

REQUEST_ID_HEADER = "x-request-id"
access_log = logging.getLogger("orders.access")


# A JSON body may nest arrays and objects this deep; ours need 3. Deeper bodies would make
# the parser recurse (RecursionError) and buy nothing but CPU for whoever sent them.
MAX_JSON_DEPTH = 32
_OPENERS_TO_PARENS = bytes.maketrans(b"[{]}", b"(())")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_nesting_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a JSON text nests arrays and objects deeper than `limit`.

    Linear and all in C (no parser, no recursion): drop escaped backslashes and quotes, keep
    what lies outside strings, keep only the brackets, then strip innermost `()` pairs
    `limit` times (or stop at a run of `limit + 1` openers). A pair still left nests deeper,
    and so does a run of `limit + 1` openers never closed (the parser would recurse into it
    before finding the body truncated); stray closers are left to the parser to refuse.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside_strings = b"".join(unescaped.split(b'"')[::2])
    brackets = outside_strings.translate(_OPENERS_TO_PARENS, _NOT_BRACKETS)
    too_deep = b"(" * (limit + 1)
    for _ in range(limit):
        if not brackets:
            return False
        if too_deep in brackets:
            return True
        brackets = brackets.replace(b"()", b"")
    return b"()" in brackets or too_deep in brackets


def first_values(raw: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """Each header's first value, as the framework reads it (a plain dict keeps the last)."""
    headers: dict[bytes, bytes] = {}
    for name, value in raw:
        headers.setdefault(name, value)
    return headers


def _is_json(content_type: bytes | None) -> bool:
    if content_type is None:
        return True
    media = content_type.split(b";", 1)[0].strip().lower()
    return media.endswith((b"/json", b"+json"))


class _Refusal(Exception):
    """The body was refused while the app read it; `BodyLimit` answers instead of the app."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


class BodyLimit:
    """Guard request bodies before any handler parses them, answering in the error envelope.

    - over `max_bytes`: 413, whether declared in `Content-Length` or streamed (chunked);
    - JSON nested deeper than `max_depth`: 422 `validation_error` (never a RecursionError).

    A refusal raised inside the app's `receive()` may be turned into some other response by
    the framework (FastAPI makes any body-read failure a 400), so the refusal replaces
    whatever response the app then starts.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    def _too_large(self) -> _Refusal:
        return _Refusal(413, envelope.body_bytes(
            "payload_too_large", f"request bodies are limited to {self.max_bytes} bytes"))

    def _too_deep(self) -> _Refusal:
        message = f"the JSON body is nested deeper than {self.max_depth} levels"
        return _Refusal(422, envelope.body_bytes(
            "validation_error", message,
            [{"loc": ["body"], "type": "json_too_deep", "msg": message}]))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = first_values(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is None and b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body at all (RFC 9112 6.3): no guard
            return
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _answer(send, self._too_large())
            return
        check_json = _is_json(headers.get(b"content-type"))
        refusal: _Refusal | None = None
        answered = False  # our refusal went out
        app_started = False  # the app's own answer started before any refusal
        seen = 0

        async def receive_chunk() -> Message:
            nonlocal seen, refusal
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    refusal = self._too_large()
                    raise refusal
            return message

        async def guarded_receive() -> Message:
            nonlocal check_json, refusal
            if refusal is not None:
                raise refusal
            if not check_json:
                return await receive_chunk()
            check_json = False  # the whole body is read (and checked) on the first call
            chunks: list[bytes] = []
            while True:
                message = await receive_chunk()
                if message["type"] != "http.request":
                    return message  # the client went away mid-body
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            body = b"".join(chunks)
            if json_nesting_exceeds(body, self.max_depth):
                refusal = self._too_deep()
                raise refusal
            return {"type": "http.request", "body": body, "more_body": False}

        async def guarded_send(message: Message) -> None:
            nonlocal answered, app_started
            if refusal is None or app_started:
                app_started = app_started or message["type"] == "http.response.start"
                await send(message)
            elif message["type"] == "http.response.start" and not answered:
                answered = True
                await _answer(send, refusal)
            # else: the rest of the app's own answer to a refused body is dropped

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except _Refusal:
            pass
        if refusal is not None and not answered and not app_started:
            await _answer(send, refusal)


async def _answer(send: Send, refusal: _Refusal) -> None:
    await send({"type": "http.response.start", "status": refusal.status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(refusal.body)).encode())]})
    await send({"type": "http.response.body", "body": refusal.body})


def _new_id() -> str:
    # A correlation id needs uniqueness, not secrecy: no urandom syscall per request.
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


class CorrelationId:
    """Take `X-Request-ID` (or make one), expose it in scope state, echo it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = first_values(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"")
        try:
            given = raw.decode("ascii")
        except UnicodeDecodeError:
            given = ""
        request_id = given if 0 < len(given) <= 200 and given.isprintable() else _new_id()
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        token = correlation_id.set(request_id)
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            access_log.info("request", extra={"fields": {
                "method": scope.get("method"), "path": scope.get("path"), "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "actor": state.get("actor")}})
            correlation_id.reset(token)

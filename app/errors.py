"""The HTTP edge of every failure: one status per error family, answered in the envelope.

`STATUS` is the one mapping from the domain's error families (`app.domain.errors`) to HTTP
statuses; other handlers cover request validation, unknown routes, a backing service that is
down (`ServiceUnavailable`, and as a net the driver errors listed once in
`app.kernel.unavailable`) and anything unexpected. The envelope itself is built by
`app.envelope`; the per-route `responses=` helpers live in `app.openapi`.
"""

from __future__ import annotations

import logging
from typing import Any

import elasticsearch as es_exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from app import openapi
from app.domain.errors import Conflict, DomainError, NotFound, RuleViolated, VersionConflict
from app.envelope import response
from app.kernel.unavailable import DOWN, NAMES, ServiceUnavailable, down_service
from app.read.consistency import ProjectionBehind
from app.read.dashboard import DashboardNotBuilt
from app.read.search import BadCursor

log = logging.getLogger("orders.api")


def _root_cause(body: Any) -> str:
    """The first root cause of an Elasticsearch error body, as `type: reason`."""
    error = body.get("error", {}) if isinstance(body, dict) else {}
    causes = error.get("root_cause") or [error] if isinstance(error, dict) else []
    first = causes[0] if causes and isinstance(causes[0], dict) else {}
    return f"{first.get('type', '')}: {str(first.get('reason', ''))[:300]}"


STATUS: dict[type[DomainError], int] = {
    NotFound: 404, RuleViolated: 422, Conflict: 409, VersionConflict: 412}


def status_of(error: DomainError) -> int:
    """The HTTP status of a domain error: its nearest family's (400 for a bare DomainError)."""
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def _echo(value: Any, limit: int = 200) -> Any:
    """A piece of client input made safe to echo: short, and encodable (no lone surrogates)."""
    if isinstance(value, str):
        text = value[:limit] + ("..." if len(value) > limit else "")
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return value if value is None or isinstance(value, int) else _echo(str(value), limit)


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    # `loc` can hold client-chosen keys (an unknown field's name): bounded and encodable.
    return [{"loc": [_echo(part, 100) for part in e.get("loc", ())],
             "type": _echo(e.get("type")), "msg": _echo(e.get("msg"), 500)}
            for e in exc.errors()]


def _body_unreadable(exc: HTTPException) -> str | None:
    """Why the framework could not read a body (it answers 400 for anything but bad JSON)."""
    cause = exc.__cause__
    if exc.status_code != 400 or cause is None:
        return None
    if isinstance(cause, UnicodeDecodeError):
        return "the body is not valid UTF-8"
    if isinstance(cause, RecursionError):
        return "the JSON body is nested too deeply"
    if isinstance(cause, ValueError):
        return "the body is not valid JSON"
    return None


_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
               413: "payload_too_large", 401: "unauthorized", 403: "forbidden",
               415: "unsupported_media_type"}




def install(app: FastAPI) -> None:
    """Register the envelope handlers on the app, and document the envelope in OpenAPI."""
    openapi.install(app)

    @app.exception_handler(DomainError)
    async def domain_error(_: Request, exc: DomainError) -> JSONResponse:
        return response(status_of(exc), exc.code, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return response(422, "validation_error", "the request is not valid",
                        _validation_details(exc))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        unreadable = _body_unreadable(exc)
        if unreadable is not None:  # same answer as for malformed JSON
            return response(422, "validation_error", unreadable,
                            [{"loc": ["body"], "type": "json_invalid", "msg": unreadable}])
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return response(exc.status_code, code, str(exc.detail), None, exc.headers)

    @app.exception_handler(ServiceUnavailable)
    async def unavailable(_: Request, exc: ServiceUnavailable) -> JSONResponse:
        return response(503, "ServiceUnavailable", exc.message, {"service": exc.service},
                        {"Retry-After": "1"})

    @app.exception_handler(DashboardNotBuilt)
    async def not_built(_: Request, exc: DashboardNotBuilt) -> JSONResponse:
        return response(503, "ServiceUnavailable", str(exc), {"service": "redis"},
                        {"Retry-After": "1", "X-Projection-Position": "0"})

    @app.exception_handler(ProjectionBehind)
    async def behind(_: Request, exc: ProjectionBehind) -> JSONResponse:
        details = {"projection": exc.projection, "required_position": exc.required,
                   "projection_position": exc.current}
        return response(503, "ProjectionBehind", str(exc), details,
                        {"Retry-After": "1", "X-Projection-Position": str(exc.current)})

    @app.exception_handler(BadCursor)
    async def bad_cursor(_: Request, exc: BadCursor) -> JSONResponse:
        return response(422, "validation_error", str(exc), [{"loc": ["query", "cursor"]}])

    @app.exception_handler(es_exceptions.ApiError)
    async def es_refused(_: Request, exc: es_exceptions.ApiError) -> JSONResponse:
        if exc.status_code == 404:  # no index yet: the projector has not started
            return response(503, "ServiceUnavailable", "the search index does not exist yet",
                            {"service": "elasticsearch"}, {"Retry-After": "1"})
        if exc.status_code == 400:
            return response(422, "validation_error", "the search could not be run",
                            {"reason": str(exc.message)[:300]})
        # the status and Elasticsearch's own error type: what an operator needs to act on
        log.warning("elasticsearch refused a request: %s %s %s", exc.status_code,
                    exc.message, _root_cause(exc.body))
        return response(503, "ServiceUnavailable", "Elasticsearch refused the request",
                        {"service": "elasticsearch"}, {"Retry-After": "1"})

    async def dependency_down(request: Request, exc: Exception) -> JSONResponse:
        return await unexpected(request, exc)

    # Registered per class (not only on Exception), so these are answered in the exception
    # middleware and not re-raised to the server as crashes.
    for classes in DOWN.values():
        for cls in classes:
            app.add_exception_handler(cls, dependency_down)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        service = down_service(exc)  # a reader that let a driver error through
        if service is not None:
            return response(503, "ServiceUnavailable", f"{NAMES[service]} is not available",
                            {"service": service}, {"Retry-After": "1"})
        log.exception("unhandled error")
        return response(500, "internal_error", "an unexpected error occurred")

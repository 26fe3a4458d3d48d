"""The error envelope in OpenAPI: one model for every error answer, declared per route.

FastAPI documents request validation failures with its own `HTTPValidationError` schema, but
this API answers them in the envelope (`app.envelope`); `install` rewrites those references
(and the `null` FastAPI adds to optional parameters) so that the published schema says what
is actually sent and accepted.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from app.envelope import ErrorEnvelope

Responses = dict[int | str, dict[str, Any]]


DESCRIPTIONS: dict[int, str] = {
    401: "`unauthorized`: a valid API key is required (`Authorization: Bearer <key>`)",
    403: "`forbidden`: the key lacks the scope, or admin calls are disabled",
    404: "not found (`OrderNotFound`, `not_found`)",
    409: "the order's state forbids it (`AlreadyCancelled`, `CannotCancelShippedOrder`, "
         "`InvalidStatusForShipping`, `RebuildRunning`)",
    412: "`VersionConflict`: `If-Match` names another version, or a concurrent twin of this "
         "request holds the same `Idempotency-Key`",
    413: "`payload_too_large`: the request body is over the limit (1 MiB by default)",
    422: "`validation_error`: the request is not valid; `details` lists `{loc, type, msg}`",
    503: "`ServiceUnavailable` (a backing service is down or the search index is not built "
         "yet) or `ProjectionBehind` (`X-Min-Position` not applied within `wait_ms`); "
         "retry after `Retry-After` seconds",
}


def errors(*statuses: int, **descriptions: str) -> Responses:
    """`responses=` entries in the envelope; `descriptions` overrides by `s<status>` keys."""
    return {status: {"model": ErrorEnvelope,
                     "description": descriptions.get(f"s{status}", DESCRIPTIONS[status])}
            for status in statuses}


_FASTAPI_VALIDATION = "#/components/schemas/HTTPValidationError"
_ENVELOPE = "#/components/schemas/ErrorEnvelope"


def _rewrite_refs(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("$ref") == _FASTAPI_VALIDATION:
            node["$ref"] = _ENVELOPE
        for value in node.values():
            _rewrite_refs(value)
    elif isinstance(node, list):
        for value in node:
            _rewrite_refs(value)


def _without_null(parameter: dict[str, Any]) -> None:
    """An optional header or query value is absent, never `null`: drop the `null` branch.

    FastAPI writes `anyOf: [{...}, {type: null}]` for `str | None` parameters; clients (and
    fuzzers) then send the text "null", which is no value of the parameter at all.
    """
    schema = parameter.get("schema", {})
    branches = schema.get("anyOf")
    if parameter.get("required") or not isinstance(branches, list):
        return
    kept = [b for b in branches if b != {"type": "null"}]
    if len(kept) == len(branches):
        return
    del schema["anyOf"]
    if len(kept) == 1:
        schema.update({**kept[0], **schema})
    else:
        schema["anyOf"] = kept


def published(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema as served: errors in the envelope, optional parameters without `null`."""
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                _without_null(parameter)
    return envelope_for_validation_errors(schema)


def envelope_for_validation_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Point FastAPI's default 422 answers at the envelope and drop its own error schemas."""
    _rewrite_refs(schema.get("paths", {}))
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    if _ENVELOPE.rsplit("/", 1)[1] not in components:
        definitions = ErrorEnvelope.model_json_schema(
            ref_template="#/components/schemas/{model}")
        components.update(definitions.pop("$defs", {}))
        components["ErrorEnvelope"] = definitions
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            answer = operation.get("responses", {}).get("422")
            if answer is not None and answer.get("description") == "Validation Error":
                answer["description"] = DESCRIPTIONS[422]
    return schema


def install(app: FastAPI) -> None:
    """Serve the rewritten schema at `/openapi.json` (built once, on first use)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = published(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

"""The error envelope `{"error": {"code", "message", "details"}}`: its schema and its one
builder, used by the exception handlers (`app.errors`), the body guard
(`app.middleware`) and the published OpenAPI schema (`app.openapi`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, description="machine-readable, e.g. `validation_error`, "
                                                "`OrderNotFound`, `ProjectionBehind`")
    message: str = Field(min_length=1, description="for people")
    details: Any = Field(description="structured context, or null; for `validation_error` "
                                     "a list of `{loc, type, msg}`")


class ErrorEnvelope(BaseModel):
    """Every error answer: `{"error": {"code", "message", "details"}}`."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorBody


def body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The envelope as a plain dict (the shape `ErrorEnvelope` documents)."""
    return {"error": {"code": code, "message": message, "details": details}}


def body_bytes(code: str, message: str, details: Any = None) -> bytes:
    """The envelope as JSON bytes, for answers sent below the framework (ASGI middleware)."""
    return json.dumps(body(code, message, details)).encode()


def response(status: int, code: str, message: str, details: Any = None,
             headers: Mapping[str, str] | None = None) -> JSONResponse:
    """A JSON response in the envelope."""
    return JSONResponse(body(code, message, details), status_code=status, headers=headers)

"""The one mapping from domain error families to HTTP statuses, and the one envelope."""

from __future__ import annotations

import json

import pytest

from app import envelope
from app.domain import errors
from app.errors import status_of
from app.kernel.reindex_jobs import RebuildRunning


@pytest.mark.parametrize(("error", "status"), [
    (errors.OrderNotFound("x"), 404),
    (errors.EmptyOrder("x"), 422),
    (errors.TooManyItems("x"), 422),
    (errors.IdempotencyKeyReused("x"), 422),
    (errors.CannotCancelShippedOrder("x"), 409),
    (errors.AlreadyCancelled("x"), 409),
    (errors.InvalidStatusForShipping("x"), 409),
    (RebuildRunning("x"), 409),
    (errors.VersionConflict("x"), 412),
    (errors.DomainError("x"), 400),
])
def test_each_error_family_has_one_status(error: errors.DomainError, status: int) -> None:
    assert status_of(error) == status


def test_the_envelope_builder_matches_its_published_schema() -> None:
    built = json.loads(envelope.body_bytes("OrderNotFound", "no such order", {"id": "o-1"}))
    assert envelope.ErrorEnvelope.model_validate(built).error.code == "OrderNotFound"
    assert built == envelope.body("OrderNotFound", "no such order", {"id": "o-1"})
    assert json.loads(envelope.response(404, "c", "m").body) == {
        "error": {"code": "c", "message": "m", "details": None}}

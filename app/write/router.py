"""The write API: place, cancel, ship, and read one order from the write model."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app.deps import StoreDep
from app.domain.commands import CancelOrder, ShipOrder
from app.domain.order import Order
from app.openapi import errors
from app.write import handlers
from app.write.exact_json import ExactJsonRoute
from app.write.ports import StoredResponse
from app.write.schemas import (
    CancelOrderIn,
    LineOut,
    OrderChangedOut,
    OrderOut,
    OrderPlacedOut,
    PlaceOrderIn,
    ShipOrderIn,
)

# Every write call: the API-key check (mounted in app.main), validation, PostgreSQL.
router = APIRouter(tags=["write"], route_class=ExactJsonRoute, responses=errors(
    401, 403, 422, 503, s422="`validation_error` (with `details`), or a rule: `EmptyOrder`, "
                             "`TooManyItems`, `IdempotencyKeyReused`"))

IF_MATCH_PATTERN = r'^(W/)?"?[0-9]{1,9}"?$'
_IF_MATCH = re.compile(r'^(?:W/)?"?([0-9]{1,9})"?$')
# An Idempotency-Key is a string of printable ASCII (RFC 8941 sf-string), 1..200 long;
# HTTP strips spaces around header values, so none are documented there.
IDEMPOTENCY_KEY_PATTERN = r"^[!-~]([ -~]{0,198}[!-~])?$"
CHANGE_ERRORS = errors(404, 409, 412, 413, 422, s422="`validation_error` (with `details`; "
                       "`uuid_parsing` when the order id is not a UUID), or a rule")


def _header_error(name: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("header", name), "msg": message,
                                    "type": "value_error"}])


def _expected_version(if_match: str | None) -> int | None:
    if if_match is None:
        return None
    match = _IF_MATCH.match(if_match.strip())
    if match is None:
        raise _header_error("If-Match", "If-Match must be the order's version, e.g. \"3\"")
    return int(match.group(1))


def _context(request: Request, body: dict[str, Any], key: str | None,
             if_match: str | None = None) -> handlers.CommandContext:
    if key is not None and not (0 < len(key) <= 200 and key.isascii() and key.isprintable()):
        raise _header_error("Idempotency-Key",
                            "Idempotency-Key must be 1..200 printable ASCII characters")
    canonical = json.dumps({"path": request.url.path, "body": body}, sort_keys=True)
    return handlers.CommandContext(
        correlation_id=request.state.request_id, idempotency_key=key,
        request_hash=hashlib.sha256(canonical.encode()).hexdigest() if key else None,
        actor=getattr(request.state, "actor", None), expected_version=_expected_version(if_match))


def _respond(stored: StoredResponse, location: str | None = None) -> JSONResponse:
    headers = {"X-Event-Position": str(stored.body["position"])}
    if location:
        headers["Location"] = location
    return JSONResponse(stored.body, status_code=stored.status, headers=headers)


# The patterns document the checks in `_context` and `_expected_version`, which give the
# clearer messages (the header values are checked there, not by a pydantic pattern).
IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", json_schema_extra={"pattern": IDEMPOTENCY_KEY_PATTERN},
    description="replays of the same request return the first answer; the same key with "
                "another request is 422 IdempotencyKeyReused")]
IfMatch = Annotated[str | None, Header(
    alias="If-Match", json_schema_extra={"pattern": IF_MATCH_PATTERN},
    description="the order's version (its `ETag`), e.g. `\"3\"`; 412 when it moved on")]


@router.post("/orders", status_code=201, response_model=OrderPlacedOut,
             responses=errors(412, 413))
async def place_order(body: PlaceOrderIn, request: Request, store: StoreDep,
                      idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Place an order. The response carries its log position (also in `X-Event-Position`)."""
    ctx = _context(request, body.model_dump(mode="json"), idempotency_key)
    stored = await handlers.place_order(store, body.to_command(), ctx)
    return _respond(stored, f"/orders/{stored.body['order_id']}")


@router.post("/orders/{order_id}/cancel", response_model=OrderChangedOut,
             responses=CHANGE_ERRORS)
async def cancel_order(order_id: UUID, body: CancelOrderIn, request: Request, store: StoreDep,
                       idempotency_key: IdempotencyKey = None,
                       if_match: IfMatch = None) -> JSONResponse:
    """Cancel a placed order; `If-Match: <version>` guards against lost updates."""
    ctx = _context(request, body.model_dump(mode="json"), idempotency_key, if_match)
    return _respond(await handlers.cancel_order(store, CancelOrder(order_id, body.reason), ctx))


@router.post("/orders/{order_id}/ship", response_model=OrderChangedOut,
             responses=CHANGE_ERRORS)
async def ship_order(order_id: UUID, body: ShipOrderIn, request: Request, store: StoreDep,
                     idempotency_key: IdempotencyKey = None,
                     if_match: IfMatch = None) -> JSONResponse:
    """Ship a placed order."""
    ctx = _context(request, body.model_dump(mode="json"), idempotency_key, if_match)
    command = ShipOrder(order_id, body.tracking_number)
    return _respond(await handlers.ship_order(store, command, ctx))


def order_out(order: Order) -> OrderOut:
    """The write model's view of one order as JSON."""

    def iso(value: Any) -> str | None:
        return value.isoformat().replace("+00:00", "Z") if value is not None else None

    return OrderOut(
        order_id=str(order.order_id), customer_id=order.customer_id,
        customer_name=order.customer_name, status=order.status.value, version=order.version,
        total=str(order.total), item_count=order.item_count,
        items=[LineOut(sku=i.sku, name=i.name, quantity=i.quantity, unit_price=str(i.unit_price))
               for i in order.items],
        placed_at=iso(order.placed_at) or "", cancelled_at=iso(order.cancelled_at),
        cancel_reason=order.cancel_reason, shipped_at=iso(order.shipped_at),
        tracking_number=order.tracking_number)


def _none_match(if_none_match: str | None, etag: str) -> bool:
    """Whether `If-None-Match` names this entity tag (weak comparison, RFC 9110 13.1.2)."""
    if if_none_match is None:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags


IfNoneMatch = Annotated[str | None, Header(
    alias="If-None-Match", description="the `ETag` you hold: 304 when the order has not changed")]


@router.get("/orders/{order_id}", response_model=OrderOut,
            responses={**errors(404, 422, s404="`OrderNotFound`",
                                s422="`validation_error`: the order id is not a UUID"),
                       304: {"description": "Not Modified: `If-None-Match` names the current "
                                            "version; no body"}})
async def get_order(order_id: UUID, store: StoreDep, response: Response,
                    if_none_match: IfNoneMatch = None) -> OrderOut | Response:
    """The order as the write model holds it now; `ETag` is its version."""
    order = await store.get(order_id)
    etag = f'"{order.version}"'
    if _none_match(if_none_match, etag):
        return Response(status_code=304, headers={"ETag": etag})
    response.headers["ETag"] = etag
    return order_out(order)

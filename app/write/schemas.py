"""Request and response bodies of the write API, with limits on every field.

The OpenAPI schema states exactly what is accepted (it is what clients and the fuzzing gate
read): text fields refuse blank values and control characters other than tab and line breaks
(PostgreSQL text cannot hold NUL; Elasticsearch completion fields refuse \x1e and \x1f, so such
an order could never be projected), money is a decimal string or a number with at most two
places, and the per-field limits keep any valid order's total inside the `numeric(14,2)`
column (100 lines x 10 000 x 999 999.99).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
)

from app.domain.commands import OrderLine, PlaceOrder
from app.domain.money import amount_pattern
from app.domain.order import MAX_LINES
from app.write.exact_json import JsonNumber

MAX_QUANTITY = 10_000
MAX_UNIT_PRICE = Decimal("999999.99")
PRICE_DIGITS = 6  # whole digits of MAX_UNIT_PRICE
MONEY_PATTERN = amount_pattern(PRICE_DIGITS)
_MONEY = re.compile(MONEY_PATTERN)
# Control characters (Unicode Cc) but tab, line feed and carriage return.
_CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
_CONTROL_CHAR = re.compile(f"[{_CONTROL}]")
# Documented patterns; `_text` (and stripping, then `min_length`) enforce the same, with
# clearer messages.
TEXT_PATTERN = f"^[^{_CONTROL}]*$"
NOT_BLANK_PATTERN = f"^[^{_CONTROL}]*[^{_CONTROL}\\s][^{_CONTROL}]*$"


def _money_text(value: Any) -> Any:
    """Strings and JSON numbers alike must be plain amounts (19.90): no exponent, at most
    two decimals; then the Decimal constraints apply."""
    text = value.text if isinstance(value, JsonNumber) else value
    if isinstance(text, str) and not _MONEY.fullmatch(text):
        raise ValueError('must be an amount like "19.90" or 19.90: digits, then at most 2 '
                         'decimals, no exponent')
    if isinstance(value, bool):
        raise ValueError('must be an amount like "19.90" or a number')
    return value


def _whole_number(value: Any) -> Any:
    """JSON numbers only: 2 and 2.0 are quantities (JSON Schema integers), "2" and true not."""
    if isinstance(value, str | bool):
        raise ValueError("must be a whole number")
    return value


def _text(value: Any) -> Any:
    # on the text as sent, before whitespace is stripped (U+0085 is both)
    if isinstance(value, str) and _CONTROL_CHAR.search(value):
        raise ValueError("must not contain control characters (tab and line breaks aside)")
    return value


Money = Annotated[
    Decimal,
    BeforeValidator(_money_text),
    Field(ge=0, le=MAX_UNIT_PRICE, max_digits=PRICE_DIGITS + 2, decimal_places=2,
          allow_inf_nan=False),
    WithJsonSchema({
        "anyOf": [{"type": "string", "pattern": MONEY_PATTERN},
                  {"type": "number", "minimum": 0, "maximum": float(MAX_UNIT_PRICE),
                   "multipleOf": 0.01}],
        "description": "an amount with at most two decimals, best sent as a string",
        "examples": ["19.90"]}),
]
Text = Annotated[str, BeforeValidator(_text)]


def _required_text(max_length: int, example: str) -> Any:
    return Field(min_length=1, max_length=max_length, examples=[example],
                 json_schema_extra={"pattern": NOT_BLANK_PATTERN})


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ItemIn(Strict):
    sku: Text = _required_text(64, "SKU-1001")
    name: Text = _required_text(200, "Espresso beans 1kg")
    quantity: Annotated[int, BeforeValidator(_whole_number)] = Field(
        ge=1, le=MAX_QUANTITY, examples=[2])
    unit_price: Money


class PlaceOrderIn(Strict):
    customer_id: Text = _required_text(64, "cust-42")
    # the limit on the text itself: on the optional as a whole pydantic counts "items"
    customer_name: Annotated[str, Field(max_length=200), BeforeValidator(_text)] | None = Field(
        default=None, examples=["Ada Lovelace"], json_schema_extra={"pattern": TEXT_PATTERN})
    # Up to 1000 parse, so that 0 and 101..1000 lines reach the domain rules (422 EmptyOrder,
    # TooManyItems); the schema documents the rule itself: 1..100 lines.
    items: list[ItemIn] = Field(max_length=1000, json_schema_extra={
        "minItems": 1, "maxItems": MAX_LINES})

    def to_command(self) -> PlaceOrder:
        return PlaceOrder(
            customer_id=self.customer_id, customer_name=self.customer_name,
            items=tuple(OrderLine(sku=i.sku, name=i.name, quantity=i.quantity,
                                  unit_price=i.unit_price) for i in self.items))


class CancelOrderIn(Strict):
    reason: Text = _required_text(500, "customer changed their mind")


class ShipOrderIn(Strict):
    tracking_number: Text = _required_text(100, "1Z999AA10123456784")


class OrderPlacedOut(BaseModel):
    order_id: str
    status: str
    version: int
    position: int
    total: str
    item_count: int


class OrderChangedOut(BaseModel):
    order_id: str
    status: str
    version: int
    position: int


class LineOut(BaseModel):
    sku: str
    name: str
    quantity: int
    unit_price: str


class OrderOut(BaseModel):
    order_id: str
    customer_id: str
    customer_name: str | None
    status: str
    version: int
    total: str
    item_count: int
    items: list[LineOut]
    placed_at: str
    cancelled_at: str | None
    cancel_reason: str | None
    shipped_at: str | None
    tracking_number: str | None

"""Request and response bodies of the write API, with limits on every field."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.domain.commands import OrderLine, PlaceOrder

Money = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2, allow_inf_nan=False,
                                 examples=["19.90"])]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ItemIn(Strict):
    sku: str = Field(min_length=1, max_length=64, examples=["SKU-1001"])
    name: str = Field(min_length=1, max_length=200, examples=["Espresso beans 1kg"])
    quantity: int = Field(ge=1, le=100_000, examples=[2])
    unit_price: Money


class PlaceOrderIn(Strict):
    customer_id: str = Field(min_length=1, max_length=64, examples=["cust-42"])
    customer_name: str | None = Field(default=None, max_length=200, examples=["Ada Lovelace"])
    # Up to 1000 here so that 101..1000 lines reach the domain rule (422 TooManyItems).
    items: list[ItemIn] = Field(max_length=1000)

    def to_command(self) -> PlaceOrder:
        return PlaceOrder(
            customer_id=self.customer_id, customer_name=self.customer_name,
            items=tuple(OrderLine(sku=i.sku, name=i.name, quantity=i.quantity,
                                  unit_price=i.unit_price) for i in self.items))


class CancelOrderIn(Strict):
    reason: str = Field(min_length=1, max_length=500, examples=["customer changed their mind"])


class ShipOrderIn(Strict):
    tracking_number: str = Field(min_length=1, max_length=100, examples=["1Z999AA10123456784"])


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

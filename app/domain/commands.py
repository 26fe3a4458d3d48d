"""Commands: what a caller asks the order system to do (imperative names)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID


@dataclass(frozen=True)
class OrderLine:
    sku: str
    name: str
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True)
class PlaceOrder:
    customer_id: str
    items: tuple[OrderLine, ...]
    customer_name: str | None = None


@dataclass(frozen=True)
class CancelOrder:
    order_id: UUID
    reason: str


@dataclass(frozen=True)
class ShipOrder:
    order_id: UUID
    tracking_number: str


"""The search document of an order: denormalized, one per order, versioned by its stream."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from app.domain.money import cents as cents  # the dashboard sink's cents too
from app.domain.order import Order
from app.kernel.readmodels import SearchIndexOptions

MAPPING_FILE = Path(__file__).resolve().parent.parent / "infra" / "elasticsearch" / "orders.json"


def index_body(options: SearchIndexOptions | None = None) -> dict[str, Any]:
    """Settings and mappings of an `orders-vN` index (from infra/elasticsearch), with the
    shards, replicas and refresh interval of `options`."""
    body: dict[str, Any] = json.loads(MAPPING_FILE.read_text())
    options = options or SearchIndexOptions()
    body["settings"] |= {"number_of_shards": options.shards,
                         "number_of_replicas": options.replicas,
                         "refresh_interval": options.refresh_interval}
    return body


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# The completion field refuses these separators; events written before the API refused
# control characters must still project, so they are dropped from suggestions only.
_COMPLETION_RESERVED = str.maketrans("", "", "\x00\x1e\x1f")


def _suggestions(values: list[str]) -> list[str]:
    cleaned = (v.translate(_COMPLETION_RESERVED).strip() for v in values)
    return [v for v in cleaned if v]


def order_document(order: Order) -> dict[str, Any]:
    """The whole document for `order` as of its current version."""
    names = list(dict.fromkeys(i.name for i in order.items))
    skus = list(dict.fromkeys(i.sku for i in order.items))
    return {
        "order_id": str(order.order_id),
        "customer_id": order.customer_id,
        "customer_name": order.customer_name,
        "item_names": names,
        "skus": skus,
        "item_count": order.item_count,
        "total": str(order.total),
        "total_cents": cents(order.total),
        "status": order.status.value,
        "placed_at": _iso(order.placed_at),
        "cancelled_at": _iso(order.cancelled_at),
        "shipped_at": _iso(order.shipped_at),
        "tracking_number": order.tracking_number,
        "cancel_reason": order.cancel_reason,
        "version": order.version,
        "suggest_customer": _suggestions([order.customer_name] if order.customer_name else []),
        "suggest_item": _suggestions(names),
        "suggest_sku": _suggestions(skus),
    }

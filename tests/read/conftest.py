"""A seeded, projected data set with known answers, and clients on the read API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from app.domain.commands import CancelOrder, OrderLine, PlaceOrder, ShipOrder
from app.kernel.settings import Settings
from app.main import create_app
from app.write import handlers
from app.write.store import OrderStore
from tests.helpers.support import every_partition_applied
from tests.projection.conftest import RunProjector

DAY1 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
DAY2 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY3 = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
PAGED = 30  # "Widget" orders for paging tests


def at(moment: datetime) -> handlers.CommandContext:
    return handlers.CommandContext(correlation_id=str(uuid4()), now=lambda: moment)


def line(sku: str, name: str, qty: int, price: str) -> OrderLine:
    return OrderLine(sku, name, qty, Decimal(price))


@dataclass
class Seeded:
    ids: dict[str, UUID]
    last_position: int


async def seed(store: OrderStore) -> Seeded:
    """Five known orders over three days, plus PAGED widget orders."""
    specs = {
        "alice_beans": ("cust-a", "Alice Smith", [line("SKU-100", "Espresso beans", 2, "10.00")],
                        DAY1),
        "alice_mug": ("cust-a", "Alice Smith", [line("SKU-200", "Ceramic mug", 1, "5.50")], DAY1),
        "bob_frother": ("cust-b", "Bob Jones", [line("SKU-300", "Milk frother", 1, "45.00")],
                        DAY2),
        "carol_filters": ("cust-c", "Carol White", [line("SKU-400", "Paper filters", 3, "2.00")],
                          DAY2),
        "bob_kettle": ("cust-b", "Bob Jones", [line("SKU-500", "Kettle", 1, "30.00"),
                                               line("SKU-100", "Espresso beans", 1, "10.00")],
                       DAY3),
    }
    ids: dict[str, UUID] = {}
    for name, (customer, customer_name, lines, moment) in specs.items():
        result = await handlers.place_order(
            store, PlaceOrder(customer, tuple(lines), customer_name), at(moment))
        ids[name] = UUID(result.body["order_id"])
    await handlers.cancel_order(store, CancelOrder(ids["alice_mug"], "wrong colour"),
                                at(DAY2))
    await handlers.ship_order(store, ShipOrder(ids["bob_frother"], "1ZTRACK42"), at(DAY3))
    last = 0
    for n in range(PAGED):
        result = await handlers.place_order(
            store, PlaceOrder("cust-pager", (line("SKU-900", "Widget", 1, f"{n + 1}.00"),),
                              "Pat Pager"), at(DAY3 + timedelta(minutes=n)))
        last = result.body["position"]
    return Seeded(ids, last)


@pytest.fixture
async def seeded(store: OrderStore, read_settings: Settings,
                 run_projector: RunProjector) -> AsyncIterator[Seeded]:
    """The seeded data set, projected into both read models, projector still running."""
    async with run_projector() as projector:
        data = await seed(store)
        # X-Min-Position covers the partition of its own order; the seed spans them all.
        await every_partition_applied(projector, read_settings)
        app = create_app(read_settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                response = await http.get("/dashboard", params={"wait_ms": 5000},
                                          headers={"X-Min-Position": str(data.last_position)})
                assert response.status_code == 200
                response = await http.get("/search/orders", params={"wait_ms": 5000},
                                          headers={"X-Min-Position": str(data.last_position)})
                assert response.status_code == 200
        yield data


@pytest.fixture
async def reader(read_settings: Settings, seeded: Seeded) -> AsyncIterator[httpx.AsyncClient]:
    """A client on a read-only API over the seeded data."""
    app = create_app(read_settings, role="read")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


def ids_of(body: dict[str, Any]) -> list[str]:
    return [hit["order_id"] for hit in body["hits"]]


def same_answer(fast: httpx.Response, routed: httpx.Response) -> None:
    """A fast path's answer is the route's: status, bytes and headers (but the request's own
    id and date)."""
    assert (fast.status_code, fast.content) == (routed.status_code, routed.content)
    skip = {"x-request-id", "date"}
    assert ({k: v for k, v in fast.headers.items() if k not in skip}
            == {k: v for k, v in routed.headers.items() if k not in skip})

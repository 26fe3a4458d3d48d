"""The dashboard page in headless Chromium against the real app, projector and services."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from playwright.async_api import Page, Route, expect

from app.write.store import OrderStore
from tests.e2e.conftest import Browsing, LiveServer
from tests.helpers.support import eventually, write_orders

expect.set_options(timeout=10_000)
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
CUSTOMER = "Ada Pressman <ada@example.com>"  # must show as text, not be parsed as a tag
ORDER: dict[str, Any] = {
    "customer_id": "cust-e2e", "customer_name": CUSTOMER,
    "items": [{"sku": "SKU-100", "name": "Espresso beans", "quantity": 3, "unit_price": "12.50"},
              {"sku": "SKU-200", "name": "Ceramic mug", "quantity": 1, "unit_price": "8.00"}],
}


async def projected(http: httpx.AsyncClient, orders: int) -> bool:
    """Both projections have applied the whole log, which holds `orders` placed orders."""
    status = (await http.get("/admin/projections")).json()["projections"]
    if any(p["lag_events"] != 0 or p["position"] != p["head"] for p in status):
        return False
    dashboard = (await http.get("/dashboard")).json()
    search = (await http.get("/search/orders", params={"size": 1})).json()
    return bool(dashboard["orders"]["placed"] == orders and search["total"] == orders)


class Gate:
    """Holds matching requests until released, to see the page before the server answers."""

    def __init__(self) -> None:
        self.seen = asyncio.Event()
        self.open = asyncio.Event()

    async def __call__(self, route: Route) -> None:
        self.seen.set()
        await self.open.wait()
        await route.continue_()


def row_of(page: Page, order_id: str) -> Any:
    return page.locator(f'[data-testid="result-row"][data-order-id="{order_id}"]')


async def test_dashboard_page_searches_updates_live_and_rolls_back(
        live_server: LiveServer, browsing: Browsing, store: OrderStore,
        clean_db: asyncpg.Pool[Any], tmp_path: Path) -> None:
    page = browsing.page
    await write_orders(store, 40, writers=2)
    espresso = await clean_db.fetchval(
        "SELECT count(DISTINCT order_id) FROM order_lines WHERE sku = 'SKU-100'")
    cancelled, shipped = await clean_db.fetchrow(
        "SELECT count(*) FILTER (WHERE status = 'cancelled'), "
        "count(*) FILTER (WHERE status = 'shipped') FROM orders")
    assert 0 < espresso < 40

    async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as http:
        await eventually(lambda: projected(http, 40), 30, "40 orders in both read models")

        # The page opens with the counters, the live stream, the lag and the first page.
        await page.goto("/")
        await expect(page.get_by_test_id("counter-placed")).to_have_text("40")
        await expect(page.get_by_test_id("counter-cancelled")).to_have_text(str(cancelled))
        await expect(page.get_by_test_id("counter-shipped")).to_have_text(str(shipped))
        await expect(page.get_by_test_id("live")).to_have_attribute("data-state", "live")
        await expect(page.get_by_test_id("lag-search")).to_have_attribute("data-state", "ok")
        await expect(page.get_by_test_id("lag-dashboard")).to_contain_text("in sync")
        await expect(page.locator('[data-testid="projection"][data-state="ok"]')).to_have_count(2)
        await expect(page.locator("#chart svg rect.bar:not(.zero)").first).to_be_attached()
        rows = page.get_by_test_id("result-row")
        await expect(rows).to_have_count(25)
        await page.get_by_test_id("more").click()
        await expect(rows).to_have_count(40)
        await expect(page.get_by_test_id("more")).to_be_hidden()

        # A status facet filters the list; clicking it again clears the filter.
        await page.get_by_test_id("facet-shipped").click()
        await expect(rows).to_have_count(shipped)
        await expect(page.locator('[data-testid="result-row"]:not([data-status="shipped"])'))\
            .to_have_count(0)
        await page.get_by_test_id("facet-shipped").click()
        await expect(rows).to_have_count(25)
        await expect(page.get_by_test_id("facet-shipped")).to_have_attribute("aria-pressed",
                                                                             "false")

        # Typing a prefix: an item suggestion, and only orders with that item, highlighted.
        box = page.get_by_test_id("search-input")
        await box.press_sequentially("Espr", delay=40)
        suggestion = page.get_by_test_id("suggestion").filter(has_text="Espresso beans")
        await expect(suggestion).to_be_visible()
        await expect(suggestion).to_have_attribute("data-kind", "item")
        await expect(page.get_by_test_id("result-total")).to_have_text(
            f"{espresso} of {espresso} orders")
        await expect(rows).to_have_count(espresso)
        marks = page.locator('[data-testid="result-row"] [data-field="items.name"] mark')
        await expect(marks).to_have_count(espresso)
        await expect(marks.first).to_have_text(re.compile(r"^Espresso$", re.IGNORECASE))
        await box.press("Escape")
        await expect(page.get_by_test_id("suggestions")).to_be_hidden()

        # An order placed through the API reaches the counters without a reload.
        await page.evaluate("window.__sameDocument = true")
        placed = await http.post("/orders", json=ORDER)
        assert placed.status_code == 201, placed.text
        order_id = placed.json()["order_id"]
        await expect(page.get_by_test_id("counter-placed")).to_have_text("41")
        assert await page.evaluate("window.__sameDocument === true")

        # Its customer name is shown as text, with only the highlight as markup.
        await box.fill("Pressman")
        row = row_of(page, order_id)
        await expect(rows).to_have_count(1)
        customer = row.get_by_test_id("row-customer")
        await expect(customer).to_have_text(CUSTOMER)
        await expect(customer.locator("mark")).to_have_text("Pressman")
        await expect(customer.locator("*")).to_have_count(1)  # the one <mark>

        # Cancel: the row changes at once (the request is held), then settles.
        gate = Gate()
        await page.route("**/orders/*/cancel", gate)
        await row.get_by_test_id("cancel-button").click()
        await asyncio.wait_for(gate.seen.wait(), 10)
        await expect(row.get_by_test_id("row-status")).to_have_text("cancelled")
        await expect(row).to_have_attribute("data-pending", "true")
        gate.open.set()
        await expect(row).to_have_attribute("data-pending", "false")
        await expect(row.get_by_test_id("row-status")).to_have_text("cancelled")
        await expect(page.get_by_test_id("counter-cancelled")).to_have_text(str(cancelled + 1))
        # The list was re-read at the write's position: its facets count the cancellation.
        await expect(page.get_by_test_id("facet-cancelled").locator(".count")).to_have_text("1")
        assert (await http.get(f"/orders/{order_id}")).json()["status"] == "cancelled"

        # Ship the cancelled order: shown as shipped at once, then rolled back with the error.
        gate = Gate()
        await page.route("**/orders/*/ship", gate)
        await row.get_by_test_id("ship-button").click()
        await asyncio.wait_for(gate.seen.wait(), 10)
        await expect(row.get_by_test_id("row-status")).to_have_text("shipped")
        gate.open.set()
        await expect(row).to_have_attribute("data-pending", "false")
        await expect(row.get_by_test_id("row-status")).to_have_text("cancelled")
        error = row.get_by_test_id("row-error")
        await expect(error).to_be_visible()
        await expect(error).to_contain_text("only placed orders can be shipped")
        assert (await http.get(f"/orders/{order_id}")).json()["status"] == "cancelled"
        await expect(page.get_by_test_id("counter-shipped")).to_have_text(str(shipped))

    # A screenshot: the item search, newest first, the failed row on top.
    await box.fill("Espresso")
    await page.get_by_test_id("search-sort").select_option("-placed_at")
    await expect(rows).to_have_count(espresso + 1)
    await expect(rows.first).to_have_attribute("data-order-id", order_id)
    await expect(rows.first.get_by_test_id("row-error")).to_be_visible()
    await box.blur()
    await page.mouse.move(0, 0)
    await expect(page.locator("#toast")).to_be_hidden()
    await page.wait_for_timeout(300)  # let the counter animation finish
    shot = tmp_path / "dashboard.png"
    await page.screenshot(path=str(shot))
    await page.set_viewport_size({"width": 1440, "height": 900})
    await page.screenshot(path=str(tmp_path / "dashboard-1440.png"))
    assert shot.stat().st_size > 10_000
    if os.environ.get("SAVE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
    assert browsing.errors == []

"""The search box as people type: words across fields, the last word as a prefix, ranking,
exclusions and phrases, and highlight keys named after public fields."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.domain.commands import CancelOrder, PlaceOrder, ShipOrder
from app.kernel.settings import Settings
from app.main import create_app
from app.read.search_text import TextQuery, parse_text
from app.write import handlers
from app.write.store import OrderStore
from tests.helpers.readside_fixtures import RunProjector
from tests.helpers.support import every_partition_applied
from tests.read.conftest import DAY1, at, line

ORDERS = {
    "ada_espresso": ("cust-1", "Ada Lovelace", [("SKU-1001", "Espresso beans 1kg")]),
    "ada_teapot": ("cust-1", "Ada Lovelace", [("SKU-2002", "Teapot white")]),
    "newcomer_teapot": ("cust-2", "Nora Newcomer", [("SKU-2002", "Teapot white")]),
    "grace_espresso": ("cust-3", "Grace Hopper", [("SKU-1001", "Espresso beans 1kg"),
                                                  ("SKU-3003", "Ceramic mug")]),
    "adam_mug": ("cust-4", "Adam Smith", [("SKU-3003", "Ceramic mug")]),
}


@pytest.fixture
async def box(store: OrderStore, read_settings: Settings,
              run_projector: RunProjector) -> AsyncIterator[tuple[httpx.AsyncClient,
                                                                    dict[str, str]]]:
    """A read API over five projected orders, and their ids by name."""
    ids: dict[str, str] = {}
    last = 0
    async with run_projector() as projector:
        for name, (customer, customer_name, items) in ORDERS.items():
            lines = tuple(line(sku, item, 1, "10.00") for sku, item in items)
            placed = await handlers.place_order(
                store, PlaceOrder(customer, lines, customer_name), at(DAY1))
            ids[name] = placed.body["order_id"]
        await handlers.ship_order(store, ShipOrder(_uuid(ids["grace_espresso"]), "1ZQUICK77"),
                                  at(DAY1))
        done = await handlers.cancel_order(
            store, CancelOrder(_uuid(ids["adam_mug"]), "found cheaper beans"), at(DAY1))
        last = done.body["position"]
        # X-Min-Position covers the partition of its own order; these span them all.
        await every_partition_applied(projector, read_settings)
        app = create_app(read_settings, role="read")
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                caught_up = await http.get("/search/orders", params={"wait_ms": 5000},
                                           headers={"X-Min-Position": str(last)})
                assert caught_up.status_code == 200
                yield http, ids


def _uuid(text: str) -> Any:
    from uuid import UUID

    return UUID(text)


async def hits(http: httpx.AsyncClient, q: str) -> list[dict[str, Any]]:
    response = await http.get("/search/orders", params={"q": q, "size": 100})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["hits"]
    return found


async def found(http: httpx.AsyncClient, q: str) -> set[str]:
    return {hit["order_id"] for hit in await hits(http, q)}


@pytest.mark.parametrize(("text", "target"), [
    ("Ada espresso", "ada_espresso"),        # customer, then item
    ("Teapot Newcomer", "newcomer_teapot"),  # item, then customer
    ("grace sku-1001 1zquick", "grace_espresso"),  # customer, SKU, tracking number
    ("lovelace white teapot", "ada_teapot"),
])
async def test_typing_a_character_at_a_time_never_loses_the_order(
        box: tuple[httpx.AsyncClient, dict[str, str]], text: str, target: str) -> None:
    http, ids = box
    for end in range(1, len(text) + 1):
        typed = text[:end]
        assert ids[target] in await found(http, typed), typed
    assert await found(http, text) == {ids[target]}


async def test_every_complete_word_must_match_and_only_the_last_is_a_prefix(
        box: tuple[httpx.AsyncClient, dict[str, str]]) -> None:
    http, ids = box
    assert await found(http, "Ada espr") == {ids["ada_espresso"]}
    assert await found(http, "Teapot Newc") == {ids["newcomer_teapot"]}
    # "espr" is complete once a space follows it, and no field holds that whole word
    assert await found(http, "espr Ada") == set()
    assert await found(http, "Ada espr ") == set()
    assert await found(http, "Ada nothingmatches") == set()


async def test_whole_word_matches_rank_above_prefix_matches(
        box: tuple[httpx.AsyncClient, dict[str, str]]) -> None:
    http, ids = box
    # "ada" is the whole first name of two orders and a prefix of "Adam"
    ranked = [hit["order_id"] for hit in await hits(http, "ada")]
    assert set(ranked[:2]) == {ids["ada_espresso"], ids["ada_teapot"]}
    assert ranked[2:] == [ids["adam_mug"]]


async def test_exclusions_remove_orders_and_are_not_highlighted(
        box: tuple[httpx.AsyncClient, dict[str, str]]) -> None:
    http, ids = box
    assert await found(http, "mug") == {ids["grace_espresso"], ids["adam_mug"]}
    assert await found(http, "-espresso mug") == {ids["adam_mug"]}
    assert await found(http, "mug -hopper") == {ids["adam_mug"]}
    assert await found(http, "-teapot -mug") == {ids["ada_espresso"]}
    # both espresso orders have "beans" in an item name: none is left, none is marked
    assert await found(http, "-beans espresso") == set()
    (hit,) = await hits(http, "espresso -mug")
    assert hit["order_id"] == ids["ada_espresso"]
    assert hit["highlight"] == {"items.name": ["<mark>Espresso</mark> beans 1kg"]}


async def test_quoted_phrases_match_words_in_that_order(
        box: tuple[httpx.AsyncClient, dict[str, str]]) -> None:
    http, ids = box
    assert await found(http, '"teapot white"') == {ids["ada_teapot"], ids["newcomer_teapot"]}
    assert await found(http, '"white teapot"') == set()
    assert await found(http, 'mug -"ceramic mug"') == set()
    assert await found(http, '"cheaper beans"') == {ids["adam_mug"]}
    # a phrase still being typed matches as a prefix
    assert await found(http, '"espresso be') == {ids["ada_espresso"], ids["grace_espresso"]}


async def test_highlight_keys_are_public_field_names(
        box: tuple[httpx.AsyncClient, dict[str, str]]) -> None:
    http, _ = box
    (hit,) = await hits(http, "1zqu")
    assert hit["highlight"] == {"tracking_number": ["<mark>1ZQUICK77</mark>"]}
    (hit,) = await hits(http, "sku-3003 grace")
    assert set(hit["highlight"]) == {"items.sku", "customer_name"}
    (hit,) = await hits(http, "cheaper")
    assert hit["highlight"] == {"cancel_reason": ["found <mark>cheaper</mark> beans"]}


def test_the_syntax_is_words_phrases_and_exclusions() -> None:
    assert parse_text('Ada -beans "ceramic mug" -"paper filters" espr') == TextQuery(
        words=("Ada",), phrases=("ceramic mug",), excluded=("beans", "paper filters"),
        typing="espr")
    assert parse_text("Ada espr ") == TextQuery(words=("Ada", "espr"))
    assert parse_text('mug "espresso be') == TextQuery(words=("mug",),
                                                       typing_phrase="espresso be")
    assert parse_text("- *** -- Ada") == TextQuery(typing="Ada")
    assert parse_text("Ada -") == TextQuery(words=("Ada",))

"""The search box, suggestions and customer orders against a seeded index."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest
from elasticsearch import AsyncElasticsearch

from app.kernel.positions import PostgresCheckpoints
from app.kernel.readmodels import resolve_index
from app.kernel.settings import Settings
from projectors.documents import index_body
from tests.read.conftest import PAGED, Seeded, ids_of


async def search(reader: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await reader.get("/search/orders", params=params)
    assert response.status_code == 200, response.text
    assert "X-Projection-Position" in response.headers
    body: dict[str, Any] = response.json()
    return body


async def test_full_text_finds_items_customers_tracking_and_reasons(
        reader: httpx.AsyncClient, seeded: Seeded) -> None:
    ids = {k: str(v) for k, v in seeded.ids.items()}
    assert set(ids_of(await search(reader, q="espresso"))) == {ids["alice_beans"],
                                                               ids["bob_kettle"]}
    assert set(ids_of(await search(reader, q="espr"))) == {ids["alice_beans"],
                                                           ids["bob_kettle"]}
    assert ids_of(await search(reader, q="1ZTRACK42")) == [ids["bob_frother"]]
    assert ids_of(await search(reader, q="1ztra")) == [ids["bob_frother"]]  # as you type
    assert ids_of(await search(reader, q="colour")) == [ids["alice_mug"]]
    assert set(ids_of(await search(reader, q="bob jones"))) == {ids["bob_frother"],
                                                                ids["bob_kettle"]}
    assert ids_of(await search(reader, q="SKU-400")) == [ids["carol_filters"]]
    assert ids_of(await search(reader, q=ids["carol_filters"])) == [ids["carol_filters"]]


async def test_hits_carry_fields_and_highlights(reader: httpx.AsyncClient,
                                                seeded: Seeded) -> None:
    body = await search(reader, q="frother")
    (hit,) = body["hits"]
    assert hit == {**hit, "order_id": str(seeded.ids["bob_frother"]), "customer_id": "cust-b",
                   "customer_name": "Bob Jones", "status": "shipped", "item_count": 1,
                   "total": "45.00"}
    assert "<mark>frother</mark>" in hit["highlight"]["items.name"][0]


async def test_filters_narrow_the_results(reader: httpx.AsyncClient, seeded: Seeded) -> None:
    ids = {k: str(v) for k, v in seeded.ids.items()}
    assert ids_of(await search(reader, status="cancelled")) == [ids["alice_mug"]]
    both = await search(reader, status=["shipped", "cancelled"], sort="total")
    assert ids_of(both) == [ids["alice_mug"], ids["bob_frother"]]
    assert set(ids_of(await search(reader, customer_id="cust-b"))) == {ids["bob_frother"],
                                                                       ids["bob_kettle"]}
    ranged = await search(reader, min_total="20", max_total="40.00", q="espresso")
    assert set(ids_of(ranged)) == {ids["alice_beans"], ids["bob_kettle"]}
    day2 = await search(reader, placed_from="2026-03-02T00:00:00Z",
                        placed_to="2026-03-02T23:59:59Z")
    assert set(ids_of(day2)) == {ids["bob_frother"], ids["carol_filters"]}


async def test_status_facets_count_what_the_other_filters_allow(
        reader: httpx.AsyncClient, seeded: Seeded) -> None:
    body = await search(reader, customer_id="cust-a", status="placed")
    assert body["total"] == 1
    assert body["facets"]["status"] == {"placed": 1, "cancelled": 1, "shipped": 0}
    everything = await search(reader)
    assert everything["total"] == 5 + PAGED
    assert everything["facets"]["status"] == {"placed": 3 + PAGED, "cancelled": 1, "shipped": 1}


async def test_sorts_by_total_and_placed_at(reader: httpx.AsyncClient, seeded: Seeded) -> None:
    ids = {k: str(v) for k, v in seeded.ids.items()}
    highest = await search(reader, sort="-total", size=1)
    assert ids_of(highest) == [ids["bob_frother"]]
    lowest = await search(reader, sort="total", size=1)
    assert lowest["hits"][0]["total"] == "1.00"
    newest = await search(reader, sort="-placed_at", customer_id="cust-b")
    assert ids_of(newest) == [ids["bob_kettle"], ids["bob_frother"]]
    oldest = await search(reader, sort="placed_at", customer_id="cust-b")
    assert ids_of(oldest) == [ids["bob_frother"], ids["bob_kettle"]]


@pytest.mark.parametrize("sort", ["relevance", "-placed_at", "total"])
async def test_cursor_paging_returns_every_hit_exactly_once(
        reader: httpx.AsyncClient, seeded: Seeded, sort: str) -> None:
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        params: dict[str, Any] = {"q": "widget", "size": 7, "sort": sort}
        if cursor:
            params["cursor"] = cursor
        body = await search(reader, **params)
        seen += ids_of(body)
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == PAGED and len(set(seen)) == PAGED


async def test_cursor_of_another_sort_or_garbage_is_422(reader: httpx.AsyncClient,
                                                        seeded: Seeded) -> None:
    cursor = (await search(reader, q="widget", size=2, sort="total"))["next_cursor"]
    response = await reader.get("/search/orders", params={"q": "widget", "sort": "-total",
                                                          "cursor": cursor})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    response = await reader.get("/search/orders", params={"cursor": "%%%not-a-cursor"})
    assert response.status_code == 422


@pytest.mark.parametrize("q", ['"(*&^%:\\/', "AND OR NOT", "((((", "a" * 500, '"unclosed',
                               "*", "-", "||", "\\", "\u0000", "😀 émoji", "status:placed"])
async def test_hostile_queries_never_fail_with_5xx(reader: httpx.AsyncClient, seeded: Seeded,
                                                   q: str) -> None:
    response = await reader.get("/search/orders", params={"q": q})
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["error"]["code"]


@pytest.mark.parametrize("params", [
    {"size": 0}, {"size": 101}, {"status": "lost"}, {"min_total": "-1"},
    {"max_total": "1.234"}, {"placed_from": "yesterday"}, {"sort": "random"}, {"q": "x" * 501},
])
async def test_bad_parameters_are_validation_errors(reader: httpx.AsyncClient, seeded: Seeded,
                                                    params: dict[str, Any]) -> None:
    response = await reader.get("/search/orders", params=params)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


async def test_suggest_completes_items_customers_and_skus(reader: httpx.AsyncClient,
                                                          seeded: Seeded) -> None:
    response = await reader.get("/search/suggest", params={"prefix": "Milk"})
    assert response.status_code == 200
    assert {"text": "Milk frother", "kind": "item"} in response.json()["suggestions"]
    names = (await reader.get("/search/suggest", params={"prefix": "ali"})).json()
    assert {"text": "Alice Smith", "kind": "customer"} in names["suggestions"]
    skus = (await reader.get("/search/suggest", params={"prefix": "SKU-3"})).json()
    assert {"text": "SKU-300", "kind": "sku"} in skus["suggestions"]
    assert len((await reader.get("/search/suggest", params={"prefix": "W"})).json()[
        "suggestions"]) <= 10
    assert (await reader.get("/search/suggest", params={"prefix": ""})).status_code == 422


async def test_customer_orders_are_newest_first(reader: httpx.AsyncClient,
                                                seeded: Seeded) -> None:
    response = await reader.get("/customers/cust-b/orders")
    assert response.status_code == 200
    body = response.json()
    assert body["customer_id"] == "cust-b"
    assert [o["order_id"] for o in body["orders"]] == [str(seeded.ids["bob_kettle"]),
                                                       str(seeded.ids["bob_frother"])]
    assert set(body["orders"][0]) == {"order_id", "status", "item_count", "total", "placed_at"}
    pager = (await reader.get("/customers/cust-pager/orders")).json()["orders"]
    assert len(pager) == PAGED
    assert [o["placed_at"] for o in pager] == sorted((o["placed_at"] for o in pager),
                                                     reverse=True)


async def test_a_search_right_after_its_index_was_swapped_out_and_deleted_is_answered(
        reader: httpx.AsyncClient, seeded: Seeded, es: AsyncElasticsearch,
        read_settings: Settings, clean_db: asyncpg.Pool[Any]) -> None:
    """A read process still remembers the old index (resolved within the last second) when
    a swap moves the alias and the old index is deleted: it resolves again, never a 503."""
    alias = read_settings.search_alias
    old = await resolve_index(es, alias)
    assert old is not None
    new = f"{alias}-v9"  # a complete copy, checkpoint included, ready before the swap
    await es.indices.create(index=new, **index_body())
    hits = (await es.search(index=old.name, size=1000, version=True))["hits"]["hits"]
    operations: list[dict[str, Any]] = []
    for hit in hits:
        operations += [{"index": {"_index": new, "_id": hit["_id"], "version": hit["_version"],
                                  "version_type": "external"}}, hit["_source"]]
    await es.bulk(operations=operations, refresh=True)
    copy = await resolve_index(es, new)
    assert copy is not None
    checkpoints = PostgresCheckpoints(clean_db)
    checkpoint, identity = await checkpoints.load_bound(old.checkpoint_name)
    await checkpoints.save(copy.checkpoint_name, checkpoint, identity or "")

    first = await reader.get("/search/orders", params={"q": "espresso"})  # remembers `old`
    assert first.status_code == 200 and first.json()["total"] >= 1
    await es.indices.update_aliases(actions=[{"remove": {"index": old.name, "alias": alias}},
                                             {"add": {"index": new, "alias": alias}}])
    await es.indices.delete(index=old.name)
    again = await reader.get("/search/orders", params={"q": "espresso"})
    assert again.status_code == 200, again.text
    assert again.json()["total"] == first.json()["total"]

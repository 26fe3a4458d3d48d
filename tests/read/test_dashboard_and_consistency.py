"""The dashboard, its live stream, causal consistency headers and API roles."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx

from app.kernel.positions import Checkpoint
from app.kernel.settings import Settings
from app.main import create_app
from app.read.dashboard import DashboardCache
from app.read.progress import Broadcast
from app.write.store import OrderStore
from tests.helpers.live import serve
from tests.helpers.readside_fixtures import RunProjector
from tests.helpers.support import eventually, random_order, sql_truth
from tests.read.conftest import Seeded

ORDER = {"customer_id": "cust-z", "customer_name": "Zed",
         "items": [{"sku": "SKU-777", "name": "Grinder", "quantity": 1, "unit_price": "80.00"}]}


def money(cents: int) -> str:
    return f"{cents / 100:.2f}"


async def test_dashboard_equals_sql_recomputation(reader: httpx.AsyncClient, seeded: Seeded,
                                                  clean_db: Any) -> None:
    response = await reader.get("/dashboard")
    assert response.status_code == 200
    body = response.json()
    truth = await sql_truth(clean_db)
    assert body["orders"] == {k: truth[k] for k in ("placed", "cancelled", "shipped", "open")}
    assert body["revenue"] == {"gross": money(truth["gross_cents"]),
                               "net": money(truth["net_cents"])}
    assert {d["day"]: d["placed"] for d in body["by_day"]} == truth["by_day_placed"]
    assert {d["day"]: d["revenue"] for d in body["by_day"]} == {
        day: money(c) for day, c in truth["by_day_revenue_cents"].items()}
    assert body["by_day"][1] == {"day": "2026-03-02", "placed": 2, "cancelled": 1,
                                 "shipped": 0, "revenue": "51.00"}
    top = {s["sku"]: s["quantity"] for s in body["top_skus"]}
    assert top == {sku: q for sku, q in truth["top_skus"].items() if sku in top}
    assert body["top_skus"][0] == {"sku": "SKU-900", "quantity": 30}
    assert body["position"] == int(response.headers["X-Projection-Position"])


async def test_min_position_is_503_while_behind_and_200_once_applied(
        store: OrderStore, read_settings: Settings, run_projector: RunProjector) -> None:
    app = create_app(read_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            placed = await http.post("/orders", json=ORDER)
            position = placed.json()["position"]
            headers = {"X-Min-Position": str(position)}
            for path in ("/dashboard", "/search/orders", "/customers/cust-z/orders"):
                behind = await http.get(path, headers=headers)  # no projector is running
                assert behind.status_code == 503, path
                assert behind.headers["Retry-After"] == "1"
                assert behind.json()["error"]["code"] == "ProjectionBehind"
                assert behind.json()["error"]["details"]["required_position"] == position
            seed = await http.get("/dashboard", headers={"X-Min-Version": str(position)})
            assert seed.status_code == 503
            async with run_projector():
                started = time.monotonic()
                waited = await http.get("/search/orders", params={"q": "grinder",
                                                                  "wait_ms": 5000},
                                        headers=headers)
                assert waited.status_code == 200
                assert time.monotonic() - started < 4.5  # answered on catch-up, not timeout
                assert waited.json()["total"] == 1
                assert int(waited.headers["X-Projection-Position"]) >= position
                dash = await http.get("/dashboard", params={"wait_ms": 5000},
                                      headers={"X-Min-Version": str(position)})
                assert dash.status_code == 200 and dash.json()["orders"]["placed"] == 1


async def test_wait_ms_gives_up_with_503_after_the_bound(
        store: OrderStore, read_settings: Settings) -> None:
    app = create_app(read_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            position = (await http.post("/orders", json=ORDER)).json()["position"]
            started = time.monotonic()
            response = await http.get("/dashboard", params={"wait_ms": 300},
                                      headers={"X-Min-Position": str(position)})
            assert response.status_code == 503
            assert 0.25 < time.monotonic() - started < 3
            too_long = await http.get("/dashboard", params={"wait_ms": 5001})
            assert too_long.status_code == 422
            bad = await http.get("/dashboard", headers={"X-Min-Position": "soon"})
            assert bad.status_code == 422
            assert bad.json()["error"]["code"] == "validation_error"


async def test_sse_delivers_a_message_within_two_seconds_of_a_write(
        store: OrderStore, read_settings: Settings, run_projector: RunProjector) -> None:
    async with run_projector(), serve(create_app(read_settings)) as base, \
            httpx.AsyncClient(base_url=base, timeout=10) as http, \
            http.stream("GET", "/dashboard/stream") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()

        async def next_event() -> dict[str, Any]:
            data = None
            async for line in lines:
                if line.startswith("data: "):
                    data = json.loads(line[6:])
                elif line == "" and data is not None:
                    return data
            raise AssertionError("stream ended")

        first = await asyncio.wait_for(next_event(), 5)
        written_at = time.monotonic()
        await http.post("/orders", json=ORDER)
        while True:
            event = await asyncio.wait_for(next_event(), 2.5)
            if event["orders"]["placed"] == first["orders"]["placed"] + 1:
                break
        assert time.monotonic() - written_at < 2.0


async def _answers(http: httpx.AsyncClient, path: str, status: int) -> bool:
    return (await http.get(path)).status_code == status


async def test_read_role_serves_reads_only_and_write_role_writes_only(
        read_settings: Settings, store: OrderStore, run_projector: RunProjector) -> None:
    read_app = create_app(read_settings, role="read")
    async with read_app.router.lifespan_context(read_app):
        transport = httpx.ASGITransport(app=read_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            assert (await http.post("/orders", json=ORDER)).status_code in (404, 405)
            # Never built yet: a 503 that says so, not zeros that look like figures.
            unbuilt = await http.get("/dashboard")
            assert unbuilt.status_code == 503 and unbuilt.headers["Retry-After"] == "1"
            assert "being built" in unbuilt.json()["error"]["message"]
            async with run_projector(only={"dashboard"}):
                await eventually(lambda: _answers(http, "/dashboard", 200), 20, "dashboard")
            assert (await http.get("/")).status_code == 200
    write_app = create_app(read_settings, role="write")
    async with write_app.router.lifespan_context(write_app):
        transport = httpx.ASGITransport(app=write_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            assert (await http.post("/orders", json=ORDER)).status_code == 201
            assert (await http.get("/dashboard")).status_code == 404
            assert (await http.get("/search/orders")).status_code == 404


async def test_admin_projections_reports_position_head_and_lag(
        store: OrderStore, read_settings: Settings, run_projector: RunProjector) -> None:
    import random

    from app.write import handlers
    from tests.helpers.support import ctx

    rng = random.Random(3)
    for n in range(5):
        await handlers.place_order(store, random_order(rng, n), ctx())
    app = create_app(read_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            before = {p["name"]: p for p in
                      (await http.get("/admin/projections")).json()["projections"]}
            assert before["dashboard"]["lag_events"] == 5 and before["dashboard"]["head"] == 5
            async with run_projector():
                await http.get("/dashboard", params={"wait_ms": 5000},
                               headers={"X-Min-Position": "5"})
                await http.get("/search/orders", params={"wait_ms": 5000},
                               headers={"X-Min-Position": "5"})
                after: dict[str, Any] = {}

                async def every_partition_done() -> bool:
                    # X-Min-Position waited for position 5's partition only; the others
                    # finish on their own (the reported position is the lowest partition's)
                    after.update({p["name"]: p for p in
                                  (await http.get("/admin/projections")).json()["projections"]})
                    return all(after[n]["position"] == 5 for n in ("search", "dashboard"))

                await eventually(every_partition_done, 30, "every partition at position 5")
                metrics = (await http.get("/metrics")).text
    for name in ("search", "dashboard"):
        assert after[name]["position"] == 5 and after[name]["lag_events"] == 0
        assert after[name]["state"] in ("running", "catching_up")
    assert 'orders_api_projection_lag_events{projection="search"} 0.0' in metrics


class CountingReader:
    """The real dashboard reader, counting its Redis reads."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader
        self.reads = 0

    async def read(self, days: int = 30, top: int = 10) -> Any:
        self.reads += 1
        return await self.reader.read(days=days, top=top)


async def test_dashboard_cache_shares_reads_and_expires_on_the_projections_notice(
        store: OrderStore, read_settings: Settings, run_projector: RunProjector) -> None:
    app = create_app(read_settings)
    async with app.router.lifespan_context(app), run_projector():
        read = app.state.read
        counting = CountingReader(read.dashboard)
        # An age bound far away: only the change notice can expire an answer here.
        cache = DashboardCache(counting, read.dashboard_progress, max_age_s=600)  # type: ignore[arg-type]
        first, _ = await cache.read(30)
        answers = await asyncio.gather(*(cache.read(30) for _ in range(50)))
        assert counting.reads == 1
        assert {body for body, _ in answers} == {first}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            placed = await http.post("/orders", json=ORDER)
        assert placed.status_code == 201
        deadline = time.monotonic() + 10
        body, checkpoint = first, None
        while json.loads(body)["orders"]["placed"] != 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            body, checkpoint = await cache.read(30)
        assert json.loads(body)["orders"]["placed"] == 1
        assert checkpoint is not None and checkpoint.position >= placed.json()["position"]
        reads = counting.reads
        newer = Checkpoint(checkpoint.tx, checkpoint.position + 1)
        await cache.read(30, at_least=newer)  # a cached answer older than asked: read again
        assert counting.reads == reads + 1


class GatedReader(CountingReader):
    """The real reader, held at a gate until the test opens it."""

    def __init__(self, reader: Any) -> None:
        super().__init__(reader)
        self.gate = asyncio.Event()

    async def read(self, days: int = 30, top: int = 10) -> Any:
        self.reads += 1
        await self.gate.wait()
        return await self.reader.read(days=days, top=top)


async def test_a_reader_after_a_notice_never_joins_a_read_that_began_before_it(
        store: OrderStore, read_settings: Settings, run_projector: RunProjector) -> None:
    async with run_projector(only={"dashboard"}):
        pass  # builds and publishes the (empty) dashboard
    app = create_app(read_settings)
    async with app.router.lifespan_context(app):
        read = app.state.read
        notices = Broadcast()  # its own: only this test publishes on it
        gated = GatedReader(read.dashboard)
        cache = DashboardCache(gated, notices, max_age_s=600)  # type: ignore[arg-type]
        before = asyncio.create_task(cache.read(30))
        await asyncio.sleep(0.05)
        joined = asyncio.create_task(cache.read(30))  # no notice yet: shares the read
        await asyncio.sleep(0.05)
        assert gated.reads == 1
        notices.publish("moved")
        after = asyncio.create_task(cache.read(30))  # must not take the older read
        await asyncio.sleep(0.05)
        assert gated.reads == 2
        gated.gate.set()
        await asyncio.gather(before, joined, after)
        await cache.read(30)  # the read that began after the notice is current: reused
        assert gated.reads == 2
        notices.publish("moved again")
        await cache.read(30)
        assert gated.reads == 3

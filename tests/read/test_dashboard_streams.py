"""Live dashboards share one rendered frame per change (app/read/streams.py), served on the
fast path (app/read/fast.py) with the route's headers and API-key check."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx

from app.kernel.settings import Settings
from app.main import create_app
from app.read import router
from app.read.fast import STREAM_HEADERS
from app.read.streams import HEARTBEAT, DashboardStreams
from tests.helpers.live import serve
from tests.helpers.support import eventually
from tests.read.conftest import Seeded

ORDER = {"customer_id": "cust-s", "customer_name": "Sam",
         "items": [{"sku": "SKU-500", "name": "Scale", "quantity": 1, "unit_price": "25.00"}]}
CLIENTS = 40


async def _events(response: httpx.Response) -> Any:
    """Each SSE event of a stream as (id, raw bytes of the event)."""
    buffer = b""
    async for chunk in response.aiter_raw():
        buffer += chunk
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            if event.startswith(b"event: dashboard\nid: "):
                yield int(event.split(b"\n")[1][4:]), event


async def test_every_client_gets_the_same_frame_and_then_the_change(
        read_settings: Settings, seeded: Seeded) -> None:
    async with serve(create_app(read_settings)) as base, \
            httpx.AsyncClient(base_url=base, timeout=15,
                              limits=httpx.Limits(max_connections=CLIENTS + 5)) as http, \
            contextlib.AsyncExitStack() as streams:
        feeds = []
        for _ in range(CLIENTS):
            response = await streams.enter_async_context(http.stream("GET", "/dashboard/stream"))
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
            feeds.append(_events(response).__aiter__())
        firsts = await asyncio.gather(*(asyncio.wait_for(f.__anext__(), 5) for f in feeds))
        assert len({event for _, event in firsts}) == 1  # one frame, shared
        assert firsts[0][0] >= seeded.last_position
        placed = await http.post("/orders", json=ORDER)
        assert placed.status_code == 201
        position = placed.json()["position"]

        async def newer(feed: Any) -> bytes:
            while True:
                seen, event = await feed.__anext__()
                if seen >= position:
                    return bytes(event)
        changed = await asyncio.gather(*(asyncio.wait_for(newer(f), 5) for f in feeds))
        assert len(set(changed)) == 1 and changed[0] != firsts[0][1]


async def test_a_slow_client_skips_to_the_newest_frame_and_idle_clients_get_heartbeats(
        read_settings: Settings, seeded: Seeded) -> None:
    app = create_app(read_settings)
    async with app.router.lifespan_context(app):
        read = app.state.read
        streams = DashboardStreams(read.dashboard_cache, read.dashboard_progress,
                                   heartbeat_s=0.3)
        hub = asyncio.create_task(streams.run())
        transport = httpx.ASGITransport(app=app)
        try:
            async with contextlib.aclosing(streams.frames()) as frames, \
                    httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                first = await asyncio.wait_for(frames.__anext__(), 5)
                assert first == streams.data and streams.clients == 1
                assert await asyncio.wait_for(frames.__anext__(), 2) == HEARTBEAT
                version = streams.data_version
                for _ in range(3):  # three changes while this client reads nothing
                    assert (await http.post("/orders", json=ORDER)).status_code == 201
                    await _new_frame(streams)
                assert streams.data_version >= version + 3
                newest = await asyncio.wait_for(frames.__anext__(), 5)
                assert newest == streams.data  # the newest only, not the ones in between
            assert streams.clients == 0
        finally:
            hub.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hub


async def _new_frame(streams: DashboardStreams) -> None:
    before = streams.data_version

    async def rendered() -> bool:
        return streams.data_version > before
    await eventually(rendered, 10, "a new frame")


async def test_the_fast_stream_keeps_the_routes_headers_and_api_keys(
        read_settings: Settings, seeded: Seeded) -> None:
    app = create_app(read_settings.model_copy(update={"api_keys": "board:read:readkey123"}),
                     role="read")
    async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as http:
        routed = await router.dashboard_stream(app.state.read)
        assert sorted(routed.raw_headers) == sorted(STREAM_HEADERS)
        missing = await http.get("/dashboard/stream")
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "unauthorized"
        async with http.stream("GET", "/dashboard/stream",
                               headers={"Authorization": "Bearer readkey123"}) as allowed:
            assert allowed.status_code == 200
            seen, _ = await asyncio.wait_for(_events(allowed).__anext__(), 5)
            assert seen >= seeded.last_position

"""The plain dashboard read skips the framework (app/read/fast.py); it must answer exactly
what the FastAPI route answers, and leave every other request shape to the route."""

from __future__ import annotations

import httpx

from app.kernel.settings import Settings
from app.main import create_app
from tests.read.conftest import Seeded, same_answer

# `wait_ms=0` changes nothing in the answer but sends the request through the route
ROUTE_ONLY = {"wait_ms": "0"}
KEYS = "board:read:readkey123,shop:write:writekey123"


async def test_the_plain_read_answers_the_routes_bytes_and_headers(
        reader: httpx.AsyncClient, seeded: Seeded) -> None:
    for days in (None, "0", "7", "366"):
        params = {} if days is None else {"days": days}
        fast = await reader.get("/dashboard", params=params)
        assert fast.status_code == 200
        same_answer(fast, await reader.get("/dashboard", params={**params, **ROUTE_ONLY}))
        assert fast.headers["x-request-id"]  # still inside the correlation-id layer


async def test_every_other_shape_goes_to_the_route(reader: httpx.AsyncClient,
                                                   seeded: Seeded) -> None:
    for params in ({"days": "367"}, {"days": "-1"}, {"days": "x"}, {"days": "1e3"},
                   {"days": ["1", "x"]}):
        answer = await reader.get("/dashboard", params=params)
        assert answer.status_code == 422, (params, answer.text)
        assert answer.json()["error"]["code"] == "validation_error"
    positioned = await reader.get("/dashboard",
                                  headers={"X-Min-Position": str(seeded.last_position)})
    assert positioned.status_code == 200
    assert positioned.json()["position"] >= seeded.last_position
    assert (await reader.post("/dashboard")).status_code == 405


async def test_api_keys_hold_on_the_plain_read(read_settings: Settings, seeded: Seeded) -> None:
    app = create_app(read_settings.model_copy(update={"api_keys": KEYS}), role="read")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            missing = await http.get("/dashboard")
            assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
            wrong_scope = await http.get("/dashboard",
                                         headers={"Authorization": "Bearer writekey123"})
            assert wrong_scope.status_code == 403
            allowed = await http.get("/dashboard",
                                     headers={"Authorization": "Bearer readkey123"})
            assert allowed.status_code == 200
            same_answer(allowed, await http.get("/dashboard", params=ROUTE_ONLY,
                                          headers={"Authorization": "Bearer readkey123"}))

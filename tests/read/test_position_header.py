"""Every answer of the read routes carries `X-Projection-Position`, refusals included."""

from __future__ import annotations

import httpx
import pytest

from tests.read.conftest import Seeded

REFUSED = [
    ("/search/orders", {"size": "0"}, {}),
    ("/search/orders", {"cursor": "not-a-cursor"}, {}),
    ("/search/orders", {"min_total": "1e2"}, {}),
    ("/search/suggest", {}, {}),
    ("/customers/cust-a/orders", {"wait_ms": "999999"}, {}),
    ("/dashboard", {"days": "-1"}, {}),
    ("/dashboard", {}, {"X-Min-Position": "abc"}),
]


@pytest.mark.parametrize(("path", "params", "headers"), REFUSED)
async def test_refusals_of_the_read_routes_carry_the_projection_position(
        reader: httpx.AsyncClient, seeded: Seeded, path: str, params: dict[str, str],
        headers: dict[str, str]) -> None:
    response = await reader.get(path, params=params, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    answered = await reader.get("/dashboard" if path == "/dashboard" else "/search/orders")
    # the whole seeded log is projected, so the refusal reports the same position
    assert response.headers["X-Projection-Position"] == \
        answered.headers["X-Projection-Position"] == str(seeded.last_position)

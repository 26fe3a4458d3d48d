"""The body guard reads the same `Content-Type` the framework reads: the first one."""

from __future__ import annotations

import httpx

DEEP = b'{"customer_id": "c", "items": ' + b"[" * 100 + b"]" * 100 + b"}"


async def test_depth_guard_is_not_skipped_by_a_second_content_type(
        client: httpx.AsyncClient) -> None:
    # The framework parses this body as JSON (first header); the guard must check it too.
    response = await client.post("/orders", content=DEEP, headers=[
        ("Content-Type", "application/json"), ("Content-Type", "text/plain")])
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["type"] == "json_too_deep"


async def test_a_second_content_type_does_not_make_plain_text_json(
        client: httpx.AsyncClient) -> None:
    response = await client.post("/orders", content=DEEP, headers=[
        ("Content-Type", "text/plain"), ("Content-Type", "application/json")])
    # Not JSON to the framework (first header): refused as a body, never parsed deeply.
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["type"] != "json_too_deep"

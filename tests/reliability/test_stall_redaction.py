"""Another backend's SQL text, named by the stall guard, is shown only to the admin scope."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from app.kernel.settings import Settings
from tests.helpers.readside_fixtures import RunProjector
from tests.helpers.support import bearer, eventually, in_process_api, write_orders

KEYS = "board:read:board-key-456, ops:read+admin:ops-key-789"
SECRET = "s3cret-in-a-query"


@pytest.fixture
async def secured(read_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process_api(read_settings.model_copy(update={"api_keys": KEYS})) as http:
        yield http


async def test_stalled_by_query_is_shown_to_admins_only(
        secured: httpx.AsyncClient, store: Any, read_settings: Settings,
        run_projector: RunProjector) -> None:
    blocker = await asyncpg.connect(read_settings.database_url)
    try:
        async with run_projector(only={"dashboard"}):
            tx = blocker.transaction()
            await tx.start()
            # What a stall reports is the blocker's last statement: here, one with a secret.
            await blocker.execute(f"SELECT pg_current_xact_id(), '{SECRET}'")
            blocker_pid = blocker.get_server_pid()
            await write_orders(store, 8, writers=2)

            async def stalled() -> bool:
                response = await secured.get("/admin/projections", headers=bearer("ops-key-789"))
                dash = next(p for p in response.json()["projections"] if p["name"] == "dashboard")
                by = dash["detail"].get("stalled_by") or {}
                return bool(dash["state"] == "stalled" and by.get("pid") == blocker_pid)

            await eventually(stalled, 30, "stalled by the blocker")
            as_admin = await secured.get("/admin/projections", headers=bearer("ops-key-789"))
            as_reader = await secured.get("/admin/projections", headers=bearer("board-key-456"))
            metrics = await secured.get("/metrics", headers=bearer("board-key-456"))
            await tx.rollback()
    finally:
        await blocker.close()
    admin_view = next(p for p in as_admin.json()["projections"] if p["name"] == "dashboard")
    reader_view = next(p for p in as_reader.json()["projections"] if p["name"] == "dashboard")
    assert SECRET in admin_view["detail"]["stalled_by"]["query"]
    stalled_by = reader_view["detail"]["stalled_by"]
    assert stalled_by["pid"] == blocker_pid and "age_s" in stalled_by
    assert "query" not in stalled_by
    assert SECRET not in as_reader.text
    assert metrics.status_code == 200 and SECRET not in metrics.text

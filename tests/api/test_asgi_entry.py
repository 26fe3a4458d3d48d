"""The app `orders api` serves (uvicorn, `app/asgi.py`) honours the settings, not defaults."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import httpx

from app.kernel.settings import Settings
from tests.helpers.live import free_port
from tests.helpers.support import eventually
from tests.reliability.test_shutdown_and_soak import _env

ORDER: dict[str, Any] = {
    "customer_id": "cust-1",
    "items": [{"sku": "SKU-1", "name": "Beans", "quantity": 1, "unit_price": "9.95"}],
}


def _api(settings: Settings, port: int, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "orders_cli.main", "api", "--port", str(port),
                             "--role", "write"], env={**_env(settings), **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def test_orders_api_honours_the_body_size_setting(settings: Settings,
                                                        clean_db: Any) -> None:
    port = free_port()
    proc = _api(settings, port, ORDERS_MAX_BODY_BYTES="2000")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:

            async def up() -> bool:
                try:
                    return (await http.get("/health")).status_code in (200, 503)
                except httpx.HTTPError:
                    return False

            await eventually(up, 30, "the API answering")
            small = await http.post("/orders", json=ORDER)
            assert small.status_code == 201, small.text
            padded = {**ORDER, "customer_name": "x" * 2500}  # over 2000 bytes, under 1 MiB
            large = await http.post("/orders", json=padded)
            assert large.status_code == 413, large.text
            assert large.json()["error"]["code"] == "payload_too_large"
    finally:
        proc.terminate()
        proc.wait(20)

"""`orders run` supervises its children: one that dies is restarted, the others stay up.

Real processes: `orders run` on a free port against the test stack, its children found in
/proc, SIGKILLed one at a time; SIGTERM to `orders run` still stops everything.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.kernel.settings import Settings
from tests.helpers.live import free_port
from tests.helpers.support import eventually
from tests.reliability.test_shutdown_and_soak import _env

ROOT = Path(__file__).resolve().parents[2]
ORDER = {"customer_id": "c", "items": [{"sku": "S", "name": "n", "quantity": 1,
                                        "unit_price": "1.00"}]}


def children(pid: int) -> dict[str, int]:
    """The `orders` subcommand each live child of `pid` runs, e.g. {"api": 123}."""
    found: dict[str, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
                state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except FileNotFoundError:
                continue  # gone meanwhile
            if state != "Z" and b"orders_cli.main" in argv:
                found[argv[argv.index(b"orders_cli.main") + 1].decode()] = int(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@contextmanager
def orders_run(settings: Settings, port: int) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "orders_cli.main", "run", "--port", str(port),
         "--metrics-port", "0"],
        env=_env(settings), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


async def _places_orders(http: httpx.AsyncClient) -> bool:
    try:
        return (await http.post("/orders", json=ORDER)).status_code == 201
    except httpx.HTTPError:
        return False


async def _new_child(pid: int, name: str, old: int) -> int:
    async def replaced() -> bool:
        return children(pid).get(name) not in (None, old)

    await eventually(replaced, 20, f"a new {name} process")
    return children(pid)[name]


@pytest.mark.slow
async def test_orders_run_restarts_a_dead_child_and_keeps_the_others_up(
        read_settings: Settings, clean_db: Any) -> None:
    port = free_port()
    with orders_run(read_settings, port) as run:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            await eventually(lambda: _places_orders(http), 60, "the API answering")
            first = children(run.pid)
            assert set(first) == {"api", "project"}, first

            os.kill(first["project"], signal.SIGKILL)
            answered = [await _places_orders(http)]  # the API does not go down with it
            projector = await _new_child(run.pid, "project", first["project"])
            answered.append(await _places_orders(http))
            assert all(answered) and children(run.pid)["api"] == first["api"]

            os.kill(first["api"], signal.SIGKILL)  # and the other way round
            await _new_child(run.pid, "api", first["api"])
            await eventually(lambda: _places_orders(http), 30, "the new API answering")
            assert children(run.pid)["project"] == projector

        last = children(run.pid)
        run.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(run.wait, 30) == 0
        assert not any(alive(pid) for pid in last.values()), "a child outlived `orders run`"
        log = run.stderr.read() if run.stderr else ""
    # Each death is logged with what ended the child.
    assert re.search(r"project .*exited.*SIGKILL", log), log
    assert re.search(r"api .*exited.*SIGKILL", log), log


def test_compose_restarts_the_long_running_services() -> None:
    services = re.split(r"\n  (?=\w+:\n)", (ROOT / "docker-compose.yml").read_text()
                        .split("\nservices:\n", 1)[1].split("\nvolumes:", 1)[0])
    policies = {block.split(":", 1)[0].strip(): re.search(r"\n    restart: (\S+)", block)
                for block in services}
    assert set(policies) == {"postgres", "redis", "elasticsearch", "api", "projector"}
    assert {name: m.group(1) if m else None for name, m in policies.items()} == dict.fromkeys(
        policies, "unless-stopped")

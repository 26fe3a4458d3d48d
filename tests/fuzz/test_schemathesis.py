"""Fuzzing gate: schemathesis against the app's own `/openapi.json`, every check enabled.

The real app is served on a loopback port in this test's event loop (PostgreSQL, Elasticsearch
and Redis are real; a projector runs, so reads have an index and a dashboard), and the
schemathesis CLI runs as a child process with a fixed seed and a bounded number of examples
per operation. Any 5xx, undocumented status, or body that does not match the published schema
fails the test, and so does an accepted write that the projections cannot apply (a dead
letter). What is left out, and why, is in `CONFIG` below.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from app.kernel.settings import Settings
from app.main import create_app
from tests.helpers.live import serve
from tests.helpers.readside_fixtures import RunProjector
from tests.helpers.support import eventually

MAX_EXAMPLES = 25
SEED = 1
ADMIN_TOKEN = "fuzz-admin-token-0123456789"
REPO = Path(__file__).resolve().parents[2]  # so the child can import the `tests.fuzz` hooks
DEADLINE_S = 600  # a hard stop for the child; the run itself takes a few minutes at most

# schemathesis.toml for the run. Every exclusion states the reason it cannot be checked.
CONFIG = """
request-timeout = 20
# Gives valid Idempotency-Keys a fresh suffix per request (see tests/fuzz/__init__.py).
hooks = "tests.fuzz"

# Causal-read headers: any position other than 0 is one this fresh database has not
# reached, and the documented answer to that, after `wait_ms`, is 503 ProjectionBehind
# (a 5xx by design, which `not_a_server_error` rightly counts). Their parsing is covered by
# tests/api/test_hostile_input.py; here they are pinned to "no requirement".
[parameters]
"header.X-Min-Position" = "0"
"header.X-Min-Version" = "0"

# The search cursor is opaque: only a `next_cursor` the API issued is valid, so a generated
# "valid" string is rejected with 422 by design. Positive-acceptance is the one check that
# cannot hold here; every other check still runs on this operation.
[[operations]]
include-path = "/search/orders"
include-method = "GET"
checks.positive_data_acceptance.enabled = false

# `If-Match` names a version; a well-formed one that is not the order's current version is
# answered 412 VersionConflict, which is the HTTP meaning of a failed precondition, not a
# rejected request shape. The stateful phase sends such stale versions to real orders.
[[operations]]
include-path-regex = "^/orders/[{]order_id[}]/(cancel|ship)$"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409",
                                                     "412", "429"]
"""


def _count(pattern: str, text: str) -> int | None:
    found = re.search(pattern, text)
    return int(found.group(1)) if found else None


async def _seed_orders(base_url: str) -> None:
    """A few orders (one cancelled, one shipped) so reads have documents to answer with."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        for n in range(3):
            placed = await http.post("/orders", json={
                "customer_id": f"cust-{n}", "customer_name": f"Fuzz Customer {n}",
                "items": [{"sku": f"SKU-{n}", "name": "Espresso beans", "quantity": n + 1,
                           "unit_price": "9.95"}]})
            assert placed.status_code == 201, placed.text
            order_id = placed.json()["order_id"]
            if n == 1:
                changed = await http.post(f"/orders/{order_id}/cancel", json={"reason": "r"})
                assert changed.status_code == 200, changed.text
            elif n == 2:
                changed = await http.post(f"/orders/{order_id}/ship",
                                          json={"tracking_number": "1Z999"})
                assert changed.status_code == 200, changed.text

        # The projector has made the index (before that, search is a documented 503).
        # Catching up is not awaited: an open transaction anywhere on the PostgreSQL server
        # (another test run, a benchmark) can hold the projections back, and no fuzzed read
        # asks for a position (see CONFIG).
        async def index_ready() -> bool:
            return (await http.get("/search/orders")).status_code == 200

        await eventually(index_ready, 60, "the search index")


async def _projections_settle(base_url: str) -> dict[str, Any]:
    """Each projection's lag and dead letters, once it has applied the fuzzed writes.

    Best effort, as above: a projection held back from outside is reported, not awaited.
    """
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        status: list[dict[str, Any]] = []

        async def settled() -> bool:
            nonlocal status
            status = (await http.get("/admin/projections")).json()["projections"]
            return all(p["lag_events"] == 0 or p["dead_letters"] for p in status)

        with contextlib.suppress(AssertionError):
            await eventually(settled, 30, "the projections")
    return {p["name"]: {"lag_events": p["lag_events"], "dead_letters": p["dead_letters"]}
            for p in status}


async def _run_schemathesis(base_url: str, workdir: Path) -> tuple[int, str]:
    config = workdir / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color",
        "run", f"{base_url}/openapi.json",
        # Every check is on by default (naming them here would override the per-operation
        # settings in CONFIG); `max_response_time` is off: timing is the benchmark's job.
        # A fixed seed, one worker and no example database: the same cases every run (the
        # stateful phase still follows the ids the server hands out), nothing kept on disk.
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        "--workers", "1",
        "--generation-database", "none",
        # An endless Server-Sent Events stream: there is no response to check, only a
        # connection that stays open (tests/read covers it with a live client).
        "--exclude-path", "/dashboard/stream",
        # Admin calls are fuzzed with a valid admin token (set on the app below).
        "-H", f"Authorization: Bearer {ADMIN_TOKEN}",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    child = await asyncio.create_subprocess_exec(
        *command, cwd=workdir, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    try:
        output, _ = await asyncio.wait_for(child.communicate(), DEADLINE_S)
    except TimeoutError:
        child.kill()
        await child.wait()
        raise
    return await child.wait(), output.decode(errors="replace")  # the exit code, as an int


@pytest.mark.slow
async def test_schemathesis_finds_no_server_errors_or_contract_violations(
        read_settings: Settings, run_projector: RunProjector, clean_db: asyncpg.Pool[Any],
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = read_settings.model_copy(update={"admin_token": ADMIN_TOKEN})
    started = time.monotonic()
    since = await clean_db.fetchval("SELECT now()")
    try:
        async with run_projector(settings), serve(create_app(settings)) as base_url:
            await _seed_orders(base_url)
            returncode, output = await _run_schemathesis(base_url, tmp_path)
            projections = await _projections_settle(base_url)
        dead_letters = [dict(r) for r in await clean_db.fetch(
            "SELECT projection, position, left(error, 300) AS error FROM dead_letters")]
    finally:
        # Rebuilds queued through POST /admin/reindex are never run here (no job runner);
        # left queued, they would block or hijack the rebuild tests that come later.
        await clean_db.execute("DELETE FROM reindex_jobs WHERE created_at >= $1", since)
    elapsed = time.monotonic() - started
    generated = _count(r"(\d+) generated", output)
    outcome = re.search(r"Test cases:\s*\n\s*(.+)", output)
    summary = {"requests_generated": generated, "exit_code": returncode,
               "outcome": outcome.group(1).strip() if outcome else None,
               "projections": projections, "duration_s": round(elapsed, 1)}
    with capsys.disabled():  # shown in every run, not only when the test fails
        print(f"\nschemathesis: {json.dumps(summary)}")
    assert returncode == 0, output[-20000:]
    # Cases actually ran, and every one of them passed its checks (none failed or errored).
    assert generated is not None and generated > 0, output[-5000:]
    outcome_line = str(summary["outcome"])  # e.g. "1073 generated, 1073 passed"
    assert outcome_line.startswith(f"{generated} generated, {generated} passed"), outcome_line
    assert "errored" not in outcome_line, output[-5000:]
    # Every write the API accepted must be projectable: a dead letter stops a projection.
    assert not dead_letters, dead_letters

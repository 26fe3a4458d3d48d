"""The whole platform under Docker Compose, on the local images (`make docker-images`).

Brings docker-compose.yml + docker-compose.local.yml up as a project of its own on free
loopback ports, places orders through the API container, waits for the projector container
to apply them, checks search and dashboard through the API, then SIGKILLs the projector's
process and sees its restart policy bring it back, projecting again. Everything is torn down
(volumes too) at the end. Runs in `make test-docker` (ORDERS_TEST_IMAGES=local).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from infra.versions import ELASTICSEARCH_VERSION, POSTGRES_MAJOR, REDIS_MAJOR

ROOT = Path(__file__).resolve().parents[2]
FILES = ["-f", str(ROOT / "docker-compose.yml"), "-f", str(ROOT / "docker-compose.local.yml")]
LOCAL = os.environ.get("ORDERS_TEST_IMAGES") == "local"


def test_local_override_names_the_pinned_versions() -> None:
    text = (ROOT / "docker-compose.local.yml").read_text()
    tags = dict(re.findall(r"image: orders-local/(postgres|redis|elasticsearch):(\S+)", text))
    assert tags == {"postgres": POSTGRES_MAJOR, "redis": REDIS_MAJOR,
                    "elasticsearch": ELASTICSEARCH_VERSION}


def _config(*files: str) -> dict[str, Any]:
    """`docker-compose config` of the cluster profile: validated (`-q`), then rendered."""
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed")
    base = ["docker-compose", *files, "--profile", "cluster", "config"]
    checked = subprocess.run([*base, "-q"], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    rendered: dict[str, Any] = yaml.safe_load(
        subprocess.run(base, capture_output=True, text=True, check=True, timeout=60).stdout)
    return rendered


@pytest.mark.parametrize("files", [FILES[:2], FILES], ids=["official", "local"])
def test_cluster_profile_is_valid_and_complete(files: list[str]) -> None:
    services = _config(*files)["services"]
    cluster = {name for name, svc in services.items() if "cluster" in svc.get("profiles", [])}
    assert cluster == {"es-1", "es-2", "es-3", *(f"redis-{n}" for n in range(1, 7)),
                       "redis-cluster-create", "cluster-projector-1", "cluster-projector-2",
                       "cluster-api-1", "cluster-api-2"}
    assert {services[f"es-{n}"]["environment"]["node.name"] for n in (1, 2, 3)} == {
        "es-1", "es-2", "es-3"}
    for n in range(1, 7):
        assert "--cluster-enabled" in services[f"redis-{n}"]["command"]
    for app in ("cluster-projector-1", "cluster-projector-2", "cluster-api-1", "cluster-api-2"):
        env = services[app]["environment"]
        assert env["ELASTICSEARCH_URL"].split(",") == [f"http://es-{n}:9200" for n in (1, 2, 3)]
        assert env["ORDERS_SEARCH_REPLICAS"] == "1"
        assert services[app]["depends_on"]["redis-cluster-create"] == {
            "condition": "service_completed_successfully"}
    if files == FILES:  # the local override leaves no cluster service on a registry image
        assert all(services[name]["image"].startswith("orders-local/") for name in cluster)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Compose:
    project: str
    env: dict[str, str]
    api: str

    def run(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(["docker-compose", "-p", self.project, *FILES, *args],
                                env=self.env, capture_output=True, text=True, timeout=600)
        if check and result.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)}: {result.stderr[-3000:]}")
        return result.stdout

    def container(self, service: str) -> dict[str, Any]:
        cid = self.run("ps", "-q", service).strip()
        assert cid, f"no {service} container"
        out = subprocess.run(["docker", "inspect", cid], capture_output=True, text=True,
                             check=True).stdout
        state: dict[str, Any] = json.loads(out)[0]
        return state


def _wait(what: str, seconds: float, probe: Callable[[], bool]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if probe():
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError(f"timed out after {seconds:.0f}s waiting for {what}")


@pytest.fixture(scope="module")
def compose() -> Iterator[Compose]:
    if not LOCAL:
        pytest.skip("runs in `make test-docker` (ORDERS_TEST_IMAGES=local, local images built)")
    ports = {name: str(_free_port()) for name in
             ("ORDERS_PG_PORT", "ORDERS_REDIS_PORT", "ORDERS_ES_PORT", "ORDERS_API_PORT")}
    env = {**os.environ, **ports}
    stack = Compose(f"orders-test-{uuid.uuid4().hex[:8]}", env,
                    f"http://127.0.0.1:{ports['ORDERS_API_PORT']}")
    try:
        stack.run("up", "-d", "--no-build")
        _wait("the API container's /health", 240,
              lambda: httpx.get(f"{stack.api}/health", timeout=5).status_code == 200)
        yield stack
    except BaseException:
        print(stack.run("logs", "--tail", "40", check=False))
        raise
    finally:
        stack.run("down", "-v", "--remove-orphans", "-t", "5", check=False)


def _place(http: httpx.Client, customer: str, name: str, sku: str, qty: int,
           price: str) -> dict[str, Any]:
    response = http.post("/orders", json={
        "customer_id": customer, "customer_name": f"{customer} Docker",
        "items": [{"sku": sku, "name": name, "quantity": qty, "unit_price": price}]})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _applied(http: httpx.Client, path: str, position: int) -> httpx.Response:
    """A read that is answered only once `position` is applied by the projector container."""
    deadline = time.monotonic() + 120
    while True:
        response = http.get(path, params={"wait_ms": 5000},
                            headers={"X-Min-Position": str(position)})
        if response.status_code != 503 or time.monotonic() > deadline:
            return response


def test_compose_stack_serves_writes_search_and_dashboard_and_restarts_the_projector(
        compose: Compose) -> None:
    word = f"tea{uuid.uuid4().hex[:6]}"
    with httpx.Client(base_url=compose.api, timeout=30) as http:
        first = _place(http, "dock-1", f"Green {word}", "SKU-D1", 2, "4.50")
        second = _place(http, "dock-2", f"Black {word}", "SKU-D2", 1, "12.00")
        third = _place(http, "dock-3", f"White {word}", "SKU-D3", 3, "1.00")
        cancel = http.post(f"/orders/{second['order_id']}/cancel", json={"reason": "changed"})
        assert cancel.status_code == 200, cancel.text
        ship = http.post(f"/orders/{third['order_id']}/ship", json={"tracking_number": "TRK1"})
        assert ship.status_code == 200, ship.text
        last = ship.json()["position"]

        search = _applied(http, f"/search/orders?q={word}", last)
        assert search.status_code == 200, search.text
        found = search.json()
        assert found["total"] == 3
        assert {h["order_id"] for h in found["hits"]} == {
            first["order_id"], second["order_id"], third["order_id"]}
        assert found["facets"]["status"] == {"placed": 1, "cancelled": 1, "shipped": 1}

        board = _applied(http, "/dashboard", last)
        assert board.status_code == 200, board.text
        counts = board.json()
        assert counts["orders"] == {"placed": 3, "cancelled": 1, "shipped": 1, "open": 1}
        assert counts["revenue"] == {"gross": "24.00", "net": "12.00"}

        # A crash, not a stop: SIGKILL the projector's process from outside, as the kernel's
        # OOM killer would. Its restart policy must bring it back, and it must project again.
        before = compose.container("projector")
        assert before["HostConfig"]["RestartPolicy"]["Name"] in ("unless-stopped", "on-failure")
        os.kill(before["State"]["Pid"], signal.SIGKILL)
        _wait("the projector container's restart", 60, lambda: (
            (state := compose.container("projector"))["RestartCount"] > before["RestartCount"]
            and state["State"]["Running"]))

        fourth = _place(http, "dock-4", f"Oolong {word}", "SKU-D4", 1, "8.00")
        board = _applied(http, "/dashboard", fourth["position"])
        assert board.status_code == 200, board.text
        assert board.json()["orders"]["placed"] == 4
        search = _applied(http, f"/search/orders?q=Oolong {word}", fourth["position"])
        assert fourth["order_id"] in {h["order_id"] for h in search.json()["hits"]}

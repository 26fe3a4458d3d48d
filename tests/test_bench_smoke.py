"""The benchmark harness runs end to end on a tiny data set, so it cannot rot, and a run
leaves nothing behind, even when stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from redis import Redis

from tests.helpers.services import ServiceUrls

ROOT = Path(__file__).resolve().parents[1]


def test_bench_harness_runs_every_scenario_on_tiny_data(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "bench.run", "--smoke", "--out",
                             str(tmp_path)], cwd=ROOT, env=os.environ.copy(),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads((tmp_path / "latest.json").read_text())
    assert figures["append"]["8_writers"]["orders_per_s"] > 0
    assert figures["projection"]["events"] > 0 and figures["projection"]["events_per_s"] > 0
    assert figures["rebuild"]["failed_searches"] == 0
    reads = figures["reads"]
    assert reads["search"]["errors"] == 0 and reads["search"]["es_errors"] == 0
    assert reads["search"]["ratio_vs_es"] > 0 and reads["dashboard"]["ratio_vs_bare"] > 0
    assert figures["commands"]["store_rps"] > 0 and figures["commands"]["ratio_vs_store"] > 0
    capacity = figures["capacity"]
    assert capacity["steps"] and capacity["freshness"]["50%"]["probes"]["dashboard"] > 0
    live = figures["streams"]
    assert live["streams_open"] == 20 and live["commands"] > 0 and live["undelivered"] == 0
    spread = figures["streams_spread"]  # the same clients over a read API of two processes
    assert spread["streams_open"] == 20 and spread["undelivered"] == 0
    assert len(spread["sockets_per_worker"]) == 2 and spread["cpu_ms_per_notice"] > 0
    mix = figures["open_loop"]
    assert mix["streams_open"] == 20 and mix["commands"]["answered_per_s"] > 0
    assert mix["searches"]["failed"] == 0 and mix["dashboard_visible"]["commands"] > 0
    scale = figures["search_scale"]
    assert scale["orders"] == 300 and scale["p50"]["api_ms"] > 0 and scale["p50"]["es_ms"] > 0
    single = figures["single_model"]
    assert all(single[side][name]["errors"] == 0 and single[side][name]["requests"] > 0
               for side in ("cqrs", "single_model") for name in ("dashboard", "search"))
    assert single["agree"] is True, single["dashboard_orders"]
    typing = figures["typing"]
    assert typing["ratio_mean"] > 0
    assert typing["ours"]["inputs_with_hits"] >= typing["previous"]["inputs_with_hits"]
    assert "| scenario |" in (tmp_path / "latest.md").read_text()


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_bench_run_deletes_its_indexes_and_keys(
        tmp_path: Path, service_urls: ServiceUrls, stop: signal.Signals) -> None:
    es = Elasticsearch(service_urls.elasticsearch_hosts, request_timeout=10)
    redis = Redis.from_url(service_urls.redis)
    proc = subprocess.Popen([sys.executable, "-m", "bench.run", "--smoke", "--only",
                             "projection", "--out", str(tmp_path)], cwd=ROOT,
                            env=os.environ.copy(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    indexes, keys = f"orders-bench-{proc.pid}-*", f"ordersbench{proc.pid}*"

    def made() -> tuple[list[str], list[bytes]]:
        found = es.indices.get(index=indexes, allow_no_indices=True, expand_wildcards="all")
        return list(found.body), list(redis.scan_iter(match=keys))

    try:
        deadline = time.monotonic() + 120
        while not all(made()) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(made()), "the run made no index and no key to clean up"
        proc.send_signal(stop)
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode != 0
        assert made() == ([], []), stderr[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        es.close()
        redis.close()

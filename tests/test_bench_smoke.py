"""The benchmark harness runs end to end on a tiny data set, so it cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
    assert figures["reads"]["search"]["errors"] == 0
    assert figures["freshness"]["probes"]["dashboard"] > 0
    single = figures["single_model"]
    assert all(single[side][name]["errors"] == 0 and single[side][name]["requests"] > 0
               for side in ("cqrs", "single_model") for name in ("dashboard", "search"))
    assert single["agree"] is True, single["dashboard_orders"]
    typing = figures["typing"]
    assert typing["ratio_mean"] > 0
    assert typing["ours"]["inputs_with_hits"] >= typing["previous"]["inputs_with_hits"]
    assert "| scenario |" in (tmp_path / "latest.md").read_text()

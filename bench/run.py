"""`make bench` / `make bench-quick`: run every scenario on fresh data and write the results.

Every figure is printed next to a baseline measured in the same run on the same machine.
Results go to bench/results/latest.json, bench/results/latest.md and PNG charts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import bounds, capacity, openloop, scenarios
from bench.as_you_type import as_you_type
from bench.common import open_bench
from bench.search_bodies import search_bodies
from bench.search_scale import search_scale
from bench.single_model import single_model
from bench.streams import live_streams

RESULTS = Path(__file__).parent / "results"
# Left out of quick runs (under five minutes) unless named with --only; smoke runs keep them.
FULL_ONLY = {"streams_spread", "search_scale"}
SIZES = {
    "smoke": {"append": 20, "projection": 300, "rebuild": 300, "reads_s": 1.0,
              "readers": 4, "fresh_s": 2.0, "step_s": 1.0, "dataset": 300, "write_rate": 20,
              "typing_rounds": 1, "open_s": 3,
              "mix": {"commands": 10, "searches": 20, "dashboard": 5}, "streams": 20,
              "live_clients": 20, "scale_orders": 300},
    # under five minutes on two cores: the full run's scenarios on 30,000 orders
    "quick": {"append": 2000, "projection": 30_000, "rebuild": 30_000, "reads_s": 4.0,
              "readers": 64, "fresh_s": 5.0, "step_s": 3.0, "dataset": 47_000,
              "write_rate": 100, "typing_rounds": 2, "open_s": 8, "mix": openloop.MIX,
              "streams": openloop.STREAMS, "live_clients": 1000, "scale_orders": 100_000},
    "full": {"append": 5000, "projection": 100_000, "rebuild": 1_000_000, "reads_s": 20.0,
             "readers": 64, "fresh_s": 60.0, "step_s": 10.0, "dataset": 157_000,
             "write_rate": 100, "typing_rounds": 10, "open_s": 30, "mix": openloop.MIX,
             "streams": openloop.STREAMS, "live_clients": 20_000,
             "scale_orders": 1_000_000},
}


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(terse=True),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
                                / 2**30, 1)}


async def run(mode: str, only: set[str] | None) -> dict[str, Any]:
    size = SIZES[mode]
    now = datetime.now(UTC).isoformat(timespec="seconds")
    results: dict[str, Any] = {"mode": mode, "date": now, "machine": machine()}

    def wanted(name: str) -> bool:
        if only is not None:
            return name in only
        return mode != "quick" or name not in FULL_ONLY

    _stop_on(signal.SIGINT, signal.SIGTERM)
    async with open_bench() as bench:
        steps: list[tuple[str, Any]] = [
            ("append", lambda: scenarios.append(bench, size["append"])),
            ("commands", lambda: bounds.commands(bench, size["reads_s"],
                                                    min(32, size["readers"]))),
            ("projection", lambda: scenarios.projection(bench, size["projection"])),
            ("rebuild", lambda: scenarios.rebuild(bench, size["rebuild"])),
            ("reads", lambda: _reads(bench, size)),
            ("search_bodies", lambda: _search_bodies(bench, size)),
            ("search_scale", lambda: search_scale(bench, size["scale_orders"])),
            ("single_model", lambda: _single_model(bench, size)),
            ("typing", lambda: _typing(bench, size)),
            ("open_loop", lambda: _open_loop(bench, size)),
            ("streams", lambda: live_streams(bench, size["live_clients"])),
            ("streams_spread", lambda: live_streams(bench, size["live_clients"], workers=2)),
            ("capacity", lambda: capacity.capacity(bench, size["step_s"], size["fresh_s"])),
        ]
        for name, step in steps:
            if not wanted(name):
                continue
            started = time.perf_counter()
            print(f"== {name} ...", flush=True)
            results[name] = await step()
            took = time.perf_counter() - started
            results.setdefault("step_seconds", {})[name] = round(took, 1)
            print(f"   {json.dumps(_without_series(results[name]))} ({took:.0f}s)", flush=True)
    return results


_STOPPED: list[int] = []  # the signals that stopped this run


def _stop_on(*signals: signal.Signals) -> None:
    """Each signal cancels the run, so open_bench cleans up after it, and is remembered:
    the run then exits non-zero even when the signal came after its last step."""
    main_task = asyncio.current_task()
    assert main_task is not None

    def stop(sig: signal.Signals) -> None:
        _STOPPED.append(sig)
        main_task.cancel()

    for sig in signals:
        asyncio.get_running_loop().add_signal_handler(sig, stop, sig)


def _without_series(value: Any) -> Any:
    """A result for the console: the lag series left out, however deep."""
    if isinstance(value, dict):
        return {k: _without_series(v) for k, v in value.items() if k != "lag_series"}
    return value


async def _read_dataset(bench: Any, size: dict[str, Any]) -> None:
    """A data set of `dataset` events, projected; generated once for `reads` and
    `single_model`, which run back to back and leave it in place."""
    if bench.results.get("read_dataset") == size["dataset"]:
        return
    await bench.reset()
    from app.demo import generate
    from app.write.store import OrderStore

    await generate(OrderStore(bench.pool), int(size["dataset"] / 1.57), seed=11)
    async with scenarios.process(scenarios.orders_cli("project", "--metrics-port", "0"),
                                 bench.env()):
        while not await scenarios._caught_up(bench):
            await asyncio.sleep(0.5)
    bench.results["read_dataset"] = size["dataset"]


async def _reads(bench: Any, size: dict[str, Any]) -> dict[str, Any]:
    """Reads on a data set of `dataset` events, projected first."""
    await _read_dataset(bench, size)
    return await bounds.reads(bench, size["reads_s"], size["readers"])


async def _search_bodies(bench: Any, size: dict[str, Any]) -> dict[str, Any]:
    """The search request against the one it replaced, on the reads data set."""
    await _read_dataset(bench, size)
    return await search_bodies(bench, size["reads_s"], size["readers"])


async def _single_model(bench: Any, size: dict[str, Any]) -> dict[str, Any]:
    """Scenario 7 on the reads data set, under a steady write load."""
    await _read_dataset(bench, size)
    return await single_model(bench, size["reads_s"], size["readers"], size["write_rate"])


async def _open_loop(bench: Any, size: dict[str, Any]) -> dict[str, Any]:
    """The realistic mix at constant rates on the reads data set."""
    await _read_dataset(bench, size)
    return await openloop.open_loop(bench, size["open_s"], size["mix"], size["streams"])


async def _typing(bench: Any, size: dict[str, Any]) -> dict[str, Any]:
    """The as-you-type query against the previous one, on as many orders as `reads` uses."""
    return await as_you_type(bench, int(size["dataset"] / 1.57), size["typing_rounds"])


def markdown(results: dict[str, Any]) -> str:
    rows = ["| scenario | ours | baseline (same run) | ratio |", "|---|---|---|---|"]
    if "append" in results:
        for key, value in results["append"].items():
            rows.append(f"| append, {key.replace('_', ' ')} | {value['orders_per_s']:,} orders/s"
                        f" | raw asyncpg {value['raw_asyncpg_per_s']:,}/s "
                        f"| {value['ratio_vs_raw']} |")
            if "eventsourcing_per_s" in value:
                rows.append(f"| append, {key.replace('_', ' ')} | {value['orders_per_s']:,} "
                            f"orders/s | `eventsourcing` recorder "
                            f"{value['eventsourcing_per_s']:,}/s "
                            f"| {value['ratio_vs_eventsourcing']} |")
    if "commands" in results:
        c = results["commands"]
        ours = f"{c['rps']:,.0f}/s, p50 {c['p50_ms']} ms, p99 {c['p99_ms']} ms"
        rows.append(f"| `POST /orders` at 32 connections | {ours} | the store called directly, "
                    f"32 writers: {c['store_rps']:,.0f}/s, p99 {c['store_p99_ms']} ms "
                    f"| {c['ratio_vs_store']} |")
        rows.append(f"| `POST /orders` at 32 connections | {ours} | bare Starlette "
                    f"{c['bare_rps']:,}/s, p99 {c['bare_p99_ms']} ms | {c['ratio_vs_bare']} |")
    if "projection" in results:
        p = results["projection"]
        rows.append(f"| projection of {p['events']:,} events (both sinks) | "
                    f"{p['events_per_s']:,} events/s | raw bulk + raw pipeline "
                    f"{p['raw_events_per_s']:,}/s | {p['ratio_vs_raw']} |")
    if "rebuild" in results:
        r = results["rebuild"]
        rows.append(f"| search rebuild of {r['events']:,} events | {r['events_per_s']:,} events/s"
                    f" | raw bulk {r['raw_bulk_events_per_s']:,}/s | {r['ratio_vs_raw']} |")
        rows.append(f"| rebuild peak RSS / longest search gap | {r['peak_rss_mib']} MiB / "
                    f"{r['longest_gap_ms']} ms ({r['failed_searches']} failed of "
                    f"{r['searches_during_rebuild']}) | | |")
    if "reads" in results:
        rows += _reads_rows(results["reads"])
    if "search_bodies" in results:
        b = results["search_bodies"]
        rates = {name: " and ".join(str(v) for v in values) for name, values in b["rps"].items()}
        rows.append(f"| search request, straight to Elasticsearch at {b['connections']} "
                    f"connections: counting apart from ranking | {rates['current']} req/s "
                    f"(without highlights {rates['current_without_highlight']}) | the "
                    f"previous single request, back to back: {rates['previous']} req/s "
                    f"| {b['ratio_current_vs_previous']} |")
    if "search_scale" in results:
        g = results["search_scale"]
        rows.append(f"| one search at a time on {g['orders']:,} orders ({g['index_mib']:,} MiB; "
                    f"{g['queries']} queries x {g['rounds']}) | API p50 {g['p50']['api_ms']} ms | "
                    f"straight to Elasticsearch p50 {g['p50']['es_ms']} ms; `took` p50: page "
                    f"{g['p50']['took_page_ms']} ms, counts {g['p50']['took_counts_ms']} ms | "
                    f"{round(g['p50']['es_ms'] / g['p50']['api_ms'], 2)} |")
    if "single_model" in results:
        rows += _single_model_rows(results["single_model"])
    if "typing" in results:
        t = results["typing"]
        rows.append(f"| `/search/orders` query as you type ({t['ours']['inputs']} typed inputs, "
                    f"one at a time, {t['orders']:,} orders) | mean {t['ours']['mean_ms']} ms, "
                    f"p99 {t['ours']['p99_ms']} ms; hits for {t['ours']['inputs_with_hits']} | "
                    f"previous query: mean {t['previous']['mean_ms']} ms, p99 "
                    f"{t['previous']['p99_ms']} ms; hits for "
                    f"{t['previous']['inputs_with_hits']} | {t['ratio_mean']} |")
    if "open_loop" in results:
        rows += _open_loop_rows(results["open_loop"])
    for key in ("streams", "streams_spread"):
        if key in results:
            v = results[key]
            where = ("one read process" if v.get("workers", 1) == 1 else
                     f"one read API of {v['workers']} processes (sockets each: "
                     f"{', '.join(f'{n:,}' for n in v['sockets_per_worker'])})")
            rows.append(f"| {v['streams_open']:,} of {v['clients']:,} `/dashboard/stream` "
                        f"clients on {where} | commit to last client p50 "
                        f"{v['last_client_p50_ms']} / p99 {v['last_client_p99_ms']} ms (first "
                        f"client p99 {v['first_client_p99_ms']} ms) | peak RSS "
                        f"{v['read_api_peak_rss_mib']} MiB (largest process); "
                        f"{v['cpu_ms_per_notice']} ms CPU per notice (all processes) | |")
    if "capacity" in results:
        rows += _capacity_rows(results["capacity"])
    head = (f"Run {results['date']} ({results['mode']}) on {results['machine']['cpus']} cores, "
            f"{results['machine']['memory_gib']} GiB, Python {results['machine']['python']}.")
    steps = results.get("step_seconds", {})
    timing = ("\n\nSteps: " + ", ".join(f"{k} {v:.0f} s" for k, v in steps.items())
              + f"; {sum(steps.values()) / 60:.1f} min in all.") if steps else ""
    return head + "\n\n" + "\n".join(rows) + timing + "\n"


def _reads_rows(r: dict[str, Any]) -> list[str]:
    """Each read path against the baseline that bounds it."""
    d, s = r["dashboard"], r["search"]
    return [f"| `/dashboard` at {r['connections']} readers | {d['rps']:,.0f} req/s, p50 "
            f"{d['p50_ms']} ms, p99 {d['p99_ms']} ms | bare Starlette, the same "
            f"{d['body_bytes']:,} bytes: {d['bare_rps']:,}/s, p99 {d['bare_p99_ms']} ms "
            f"| {d['ratio_vs_bare']} |",
            f"| `/search/orders` at {r['connections']} readers | {s['rps']:,.0f} req/s, p50 "
            f"{s['p50_ms']} ms, p99 {s['p99_ms']} ms | the same request bodies straight to "
            f"Elasticsearch: {s['es_rps']:,}/s, p99 {s['es_p99_ms']} ms "
            f"| {s['ratio_vs_es']} |",
            *([_one_at_a_time_row(r["search_one_at_a_time"])] if "search_one_at_a_time" in r
              else [])]


def _one_at_a_time_row(c: dict[str, Any]) -> str:
    p50 = c["p50"]
    return (f"| one search at a time ({c['queries']} queries x {c['rounds']}) | API p50 "
            f"{p50['api_ms']} ms | straight to Elasticsearch p50 {p50['es_ms']} ms; `took` "
            f"p50: page {p50['took_page_ms']} ms, counts {p50['took_counts_ms']} ms "
            f"| {round(p50['es_ms'] / p50['api_ms'], 2)} |")


def _capacity_rows(c: dict[str, Any]) -> list[str]:
    """The highest command rate under the p99 limit, then freshness at shares of it."""
    tried = ", ".join(f"{s['target_rate']}/s: p99 {s['p99_ms']} ms" for s in c["steps"])
    rows = [f"| highest command rate with p99 < {c['p99_limit_ms']:.0f} ms, projector running "
            f"| {c['highest_rate']}/s | open-loop steps of {c['step_s']} s: {tried} | |"]
    for share, f in c["freshness"].items():
        rows.append(f"| freshness at {share} of it ({f['achieved_rate']}/s of "
                    f"{f['target_rate']}) | dashboard p50 {f['dashboard_p50_ms']} / p99 "
                    f"{f['dashboard_p99_ms']} ms; search p50 {f['search_p50_ms']} / p99 "
                    f"{f['search_p99_ms']} ms | `POST /orders` meanwhile p50 "
                    f"{f['command_p50_ms']} / p99 {f['command_p99_ms']} ms; CPU idle "
                    f"{f['cpu_idle_pct']}% | |")
    return rows


def _open_loop_rows(o: dict[str, Any]) -> list[str]:
    """The open-loop mix: each part's rate and latency, then write-to-visible."""
    parts = "; ".join(f"{name} {o[name]['answered_per_s']}/s of {o[name]['target_rate']}, "
                      f"p50 {o[name]['p50_ms']} / p99 {o[name]['p99_ms']} ms"
                      for name in ("commands", "searches", "dashboard"))
    d, s = o["dashboard_visible"], o["search_visible"]
    return [f"| open loop (vegeta), {o['seconds']} s, {o['streams_open']} streams open | "
            f"{parts} | CPU idle {o['cpu_idle_pct']}% | |",
            f"| write to visible in that mix | dashboard stream: first client p99 "
            f"{d['first_client_p99_ms']} ms, last client p50 {d['last_client_p50_ms']} / p99 "
            f"{d['last_client_p99_ms']} ms; search p50 {s['p50_ms']} / p99 {s['p99_ms']} ms"
            f" | ({d['commands']} commands, {d['undelivered']} not seen by every client) | |"]


def _single_model_rows(s: dict[str, Any]) -> list[str]:
    """Scenario 7: our read side vs the single model, same paths, readers and write load."""
    rows = []
    for name, path, theirs_by in (("dashboard", "/dashboard", "SQL aggregates"),
                                  ("search", "/search/orders", "PostgreSQL full text")):
        ours, theirs = s["cqrs"][name], s["single_model"][name]
        rows.append(f"| `{path}` at {s['connections']} readers + {s['write_rate']} writes/s"
                    f" | {_latencies(ours)} | single model, {theirs_by}: {_latencies(theirs)}"
                    f" | {s['ratio'][name]} |")
    ours, theirs = s["cqrs"]["writes"], s["single_model"]["writes"]
    rows.append(f"| commands during those reads | {ours['commands_per_s']}/s, p50 "
                f"{ours['p50_ms']} ms, p99 {ours['p99_ms']} ms | single model (tsvector "
                f"triggers) {theirs['commands_per_s']}/s, p50 {theirs['p50_ms']} ms, p99 "
                f"{theirs['p99_ms']} ms | |")
    setup, counts = s["setup"], s["dashboard_orders"]["single_model"]
    rows.append(f"| single-model setup on {s['orders']:,} orders; dashboards agree | | "
                f"tsvector backfill + GIN index {setup['total_s']} s ({setup['index_mib']} MiB);"
                f" order counts agree: {str(s['agree']).lower()} ({counts['placed']:,} placed)"
                f" | |")
    return rows


def _latencies(x: dict[str, Any]) -> str:
    return (f"{x['rps']:,.0f} req/s, p50 {x['p50_ms']} ms, p99 {x['p99_ms']} ms, mean "
            f"{x['mean_ms']:,.0f} ms")


def charts(results: dict[str, Any], out: Path) -> list[Path]:
    """PNG charts (matplotlib, when installed)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []
    fresh = results.get("capacity", {}).get("freshness", {}).get("80%")
    if fresh and fresh["lag_series"]:
        series = fresh["lag_series"]
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.plot([s[0] for s in series], [s[1] for s in series], label="search")
        ax.plot([s[0] for s in series], [s[2] for s in series], label="dashboard")
        ax.set_xlabel("seconds")
        ax.set_ylabel("lag (events)")
        ax.set_title(f"Projection lag at {fresh['achieved_rate']} commands/s")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "lag.png", dpi=110)
        made.append(out / "lag.png")
    ratios = []
    for key, value in results.get("append", {}).items():
        ratios.append((f"append {key.split('_')[0]}w", value["ratio_vs_raw"]))
    for name in ("projection", "rebuild"):
        if name in results:
            ratios.append((name, results[name]["ratio_vs_raw"]))
    if "commands" in results:
        ratios.append(("commands/store", results["commands"]["ratio_vs_store"]))
    if "reads" in results:
        ratios.append(("dashboard/bare", results["reads"]["dashboard"]["ratio_vs_bare"]))
        ratios.append(("search/ES", results["reads"]["search"]["ratio_vs_es"]))
    if ratios:
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.barh([r[0] for r in ratios], [r[1] for r in ratios], color="#6366f1")
        ax.axvline(1.0, color="#999", linestyle="--")
        ax.set_xlabel("ratio to the same-run baseline (1.0 = as fast)")
        fig.tight_layout()
        fig.savefig(out / "ratios.png", dpi=110)
        made.append(out / "ratios.png")
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="finish in a few minutes")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for the test suite")
    parser.add_argument("--only", help="comma-separated scenario names")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    only = set(args.only.split(",")) if args.only else None
    try:
        results = asyncio.run(run(mode, only))
    except asyncio.CancelledError:
        if not _STOPPED:
            raise
    if _STOPPED:
        name = signal.Signals(_STOPPED[0]).name
        print(f"stopped by {name}: nothing written, bench data removed", file=sys.stderr)
        raise SystemExit(128 + _STOPPED[0])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2))
    (out / "latest.md").write_text(markdown(results))
    made = charts(results, out)
    print(markdown(results))
    print("wrote", ", ".join(str(p) for p in [out / "latest.json", out / "latest.md", *made]))


if __name__ == "__main__":
    main()

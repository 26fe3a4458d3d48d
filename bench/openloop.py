"""Open-loop load: commands, searches and dashboard reads at constant rates, with live
dashboard streams open, and the time from a command's 201 to its write being visible.

A closed-loop generator (wrk) waits for each answer before it sends the next request, so a
slow server is simply asked less and queueing never shows. vegeta sends at the stated rate
whatever the answers do (it adds workers as needed), so the latencies include the queue.
Commands go to a write-role API and reads to a read-role API, as the README deploys them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.bounds import COMMAND_BODY
from bench.common import Bench, free_port, orders_cli, percentile, process
from bench.scenarios import _cpu_times, _idle_share, _search_params

VEGETA = Path(__file__).resolve().parents[1] / ".tools" / "bin" / "vegeta"
MIX = {"commands": 100, "searches": 200, "dashboard": 50}
STREAMS = 500
SEARCH_PROBES_PER_S = 5  # each a search that waits for one command's position


def _ms(values: list[float], q: float) -> float:
    return round(percentile(values, q) * 1000, 1)


class _StreamClient(asyncio.Protocol):
    """One raw `/dashboard/stream` client: a protocol, not a task, so that 20,000 of them
    cost the load generator less than the server they measure. Records (arrival time, id)
    of every event; frames come whole or split, never mixed up."""

    def __init__(self, streams: Streams, n: int) -> None:
        self.streams, self.n = streams, n
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(f"GET /dashboard/stream HTTP/1.1\r\nHost: {self.streams.host}\r\n"
                        "Accept: text/event-stream\r\n\r\n".encode())

    def data_received(self, data: bytes) -> None:
        at = time.time()
        self.buffer += data
        while (end := self.buffer.find(b"\n\n")) >= 0:
            event, self.buffer = self.buffer[:end], self.buffer[end + 2:]
            start = event.find(b"\nid: ")
            if start >= 0:
                stop = event.find(b"\n", start + 1)
                self.streams.seen[self.n].append((at, int(event[start + 5:stop])))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.streams.closing:
            self.streams.dropped += 1  # the server closed or reset it: counted, not fatal
            self.streams.gone.add(self.n)


class Streams:
    """`count` raw `/dashboard/stream` clients; each records when it saw which event id."""

    def __init__(self, host: str, port: int, count: int) -> None:
        self.host, self.port, self.count = host, port, count
        self.seen: list[list[tuple[float, int]]] = [[] for _ in range(count)]
        self.transports: list[asyncio.Transport] = []
        self.dropped = 0
        self.gone: set[int] = set()  # clients the server closed: left out of `visible`
        self.closing = False

    async def _connect(self, n: int) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_connection(lambda: _StreamClient(self, n),
                                                        self.host, self.port)
        except OSError:
            self.dropped += 1
            self.gone.add(n)
            return
        self.transports.append(transport)

    async def open(self) -> None:
        for first in range(0, self.count, 200):  # no accept-queue overflow on the server
            await asyncio.gather(*(self._connect(n)
                                   for n in range(first, min(first + 200, self.count))))
        deadline = time.monotonic() + 30 + self.count / 500
        while sum(1 for s in self.seen if s) < self.count and time.monotonic() < deadline:
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        self.closing = True
        for transport in self.transports:
            transport.close()
        await asyncio.sleep(0)

    def visible(self, acks: list[tuple[float, int]]) -> dict[str, list[float]]:
        """For each (acknowledged at, position): seconds until the first and the last
        client got an event whose id (the checkpoint position) covers it."""
        first: list[float] = []
        last: list[float] = []
        open_to_the_end = [events for n, events in enumerate(self.seen) if n not in self.gone]
        for acked, position in acks:
            arrivals = [next((at for at, seen in events if seen >= position), None)
                        for events in open_to_the_end]
            if not arrivals or any(a is None for a in arrivals):
                continue  # not delivered before the end: counted in `undelivered`
            times = [max(0.0, a - acked) for a in arrivals if a is not None]
            first.append(min(times))
            last.append(max(times))
        return {"first": first, "last": last}


def _targets(folder: str, base: str, read_base: str) -> dict[str, str]:
    """vegeta target files (its `http` format) for each part of the mix."""
    body = os.path.join(folder, "order.json")
    Path(body).write_text(COMMAND_BODY)
    paths = ["/search/orders?" + urlencode(p, doseq=True)
             for p in _search_params(random.Random(5))]
    texts = {
        "commands": f"POST {base}/orders\nContent-Type: application/json\n@{body}\n",
        "searches": "\n".join(f"GET {read_base}{p}" for p in paths) + "\n",
        "dashboard": f"GET {read_base}/dashboard\n",
    }
    files = {}
    for name, text in texts.items():
        files[name] = os.path.join(folder, f"{name}.targets")
        Path(files[name]).write_text(text)
    return files


async def _attack(name: str, rate: int, seconds: float, targets: str,
                  folder: str) -> list[dict[str, Any]]:
    """One vegeta attack at `rate`/s; its results as dicts (timestamp, latency, body...)."""
    if not VEGETA.exists():
        raise RuntimeError(f"{VEGETA} is missing: `make tools` installs it")
    out = os.path.join(folder, f"{name}.bin")
    attack = await asyncio.create_subprocess_exec(
        str(VEGETA), "attack", f"-rate={rate}/s", f"-duration={int(seconds)}s",
        "-timeout=10s", "-format=http", f"-targets={targets}", f"-output={out}",
        stderr=asyncio.subprocess.PIPE)
    _, err = await attack.communicate()
    if attack.returncode != 0:
        raise RuntimeError(err.decode())
    encode = await asyncio.create_subprocess_exec(
        str(VEGETA), "encode", "-to", "json", out, stdout=asyncio.subprocess.PIPE)
    text, _ = await encode.communicate()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _summary(results: list[dict[str, Any]], seconds: float, rate: int) -> dict[str, Any]:
    ok = [r["latency"] / 1e9 for r in results if 200 <= r["code"] < 300]
    return {"target_rate": rate, "answered_per_s": round(len(ok) / seconds, 1),
            "failed": len(results) - len(ok), "p50_ms": _ms(ok, 0.5), "p99_ms": _ms(ok, 0.99),
            "max_ms": _ms(ok, 1.0)}


def _acks(results: list[dict[str, Any]]) -> list[tuple[float, int]]:
    """(wall-clock time of the 201, log position) of every placed order."""
    acks = []
    for r in results:
        if r["code"] == 201:
            sent = _unix(r["timestamp"])
            body = json.loads(base64.b64decode(r["body"]))
            acks.append((sent + r["latency"] / 1e9, int(body["position"])))
    return acks


def _unix(stamp: str) -> float:
    """RFC 3339 with nanoseconds (vegeta's timestamps) to Unix seconds."""
    from datetime import datetime

    head, _, rest = stamp.partition(".")
    digits = "".join(c for c in rest if c.isdigit())
    zone = rest[len(digits):]
    moment = datetime.fromisoformat(f"{head}{zone.replace('Z', '+00:00')}")
    return moment.timestamp() + (float(f"0.{digits}") if digits else 0.0)


async def _search_probes(base: str, read_base: str, seconds: float, out: list[float]) -> None:
    """`SEARCH_PROBES_PER_S` times a second, a command of its own, then a search that waits
    for that command's position (a few of the mix's commands/s are these)."""
    import httpx

    async with httpx.AsyncClient(timeout=30) as http:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            await asyncio.sleep(1 / SEARCH_PROBES_PER_S)
            try:
                placed = await http.post(f"{base}/orders", content=COMMAND_BODY,
                                         headers={"Content-Type": "application/json"})
                acked = time.perf_counter()
                if placed.status_code != 201:
                    continue
                position = str(placed.json()["position"])
                response = await http.get(f"{read_base}/search/orders",
                                          params={"q": "bench", "wait_ms": 5000},
                                          headers={"X-Min-Position": position})
            except httpx.HTTPError:
                continue  # an overloaded server: the probe is missing from `probes`
            if response.status_code == 200:
                out.append(time.perf_counter() - acked)


async def open_loop(bench: Bench, seconds: float, mix: dict[str, int] | None = None,
                    streams: int = STREAMS) -> dict[str, Any]:
    """The mix at constant rates for `seconds`, `streams` SSE clients open throughout."""
    mix = mix or MIX
    port, read_port = free_port(), free_port()
    base, read_base = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{read_port}"
    with tempfile.TemporaryDirectory() as folder:
        files = _targets(folder, base, read_base)
        async with process(orders_cli("project", "--metrics-port", "0"), bench.env()), \
                process(orders_cli("api", "--role", "write", "--port", str(port)), bench.env(),
                        f"{base}/health"), \
                process(orders_cli("api", "--role", "read", "--port", str(read_port)),
                        bench.env(), f"{read_base}/health"):
            sse = Streams("127.0.0.1", read_port, streams)
            await sse.open()
            opened = sum(1 for s in sse.seen if s)
            searched: list[float] = []
            cpu_before = _cpu_times()
            rates = {**mix, "commands": mix["commands"] - SEARCH_PROBES_PER_S}
            attacks = {name: asyncio.create_task(_attack(name, rate, seconds, files[name],
                                                         folder))
                       for name, rate in rates.items()}
            searching = asyncio.create_task(_search_probes(base, read_base, seconds, searched))
            results = {name: await task for name, task in attacks.items()}
            cpu_idle = _idle_share(cpu_before, _cpu_times())
            await searching
            await asyncio.sleep(2)  # the last commands reach the streams
            await sse.close()
    acks = _acks(results["commands"])
    seen = sse.visible(acks)
    return {"seconds": seconds, "streams_open": opened, "streams_dropped": sse.dropped,
            "cpu_idle_pct": cpu_idle,
            **{name: _summary(r, seconds, rates[name]) for name, r in results.items()},
            "dashboard_visible": {"first_client_p50_ms": _ms(seen["first"], 0.5),
                                  "first_client_p99_ms": _ms(seen["first"], 0.99),
                                  "last_client_p50_ms": _ms(seen["last"], 0.5),
                                  "last_client_p99_ms": _ms(seen["last"], 0.99),
                                  "commands": len(acks),
                                  "undelivered": len(acks) - len(seen["first"])},
            "search_visible": {"p50_ms": _ms(searched, 0.5), "p99_ms": _ms(searched, 0.99),
                               "probes": len(searched)}}

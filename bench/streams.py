"""Live dashboards at scale: many `/dashboard/stream` clients on one read process, a
command now and then, and the time from its 201 to the event reaching the last client;
the read process's resident memory and CPU time per change notice."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import time
from typing import Any

import httpx

from bench.bounds import COMMAND_BODY
from bench.common import Bench, free_port, orders_cli, peak_rss_mib, process
from bench.openloop import Streams, _ms

FD_SPARE = 256  # descriptors besides the streams: stores, pipes, the listening socket


def _raise_fd_limit(wanted: int) -> int:
    """Raise this process's descriptor limit towards `wanted` (the read process inherits
    it); return what it allows: every client is a socket here and one in the read process.
    Raising the hard limit needs CAP_SYS_RESOURCE, which containers often withhold."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if wanted > hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        except (ValueError, OSError):
            pass
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, wanted)), hard))
    return min(hard, wanted)


def _ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


async def live_streams(bench: Bench, clients: int, notices: int = 20,
                       workers: int = 1) -> dict[str, Any]:
    """`clients` streams on one read API (of `workers` processes sharing its socket);
    `notices` commands 0.5 s apart."""
    asked = clients
    clients = min(clients, _raise_fd_limit(clients + FD_SPARE) - FD_SPARE)
    port, read_port = free_port(), free_port()
    base, read_base = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{read_port}"
    acks: list[tuple[float, int]] = []
    async with process(orders_cli("project", "--metrics-port", "0"), bench.env()), \
            process(orders_cli("api", "--role", "write", "--port", str(port)), bench.env(),
                    f"{base}/health"), \
            process(orders_cli("api", "--role", "read", "--port", str(read_port),
                               "--workers", str(workers)),
                    bench.env(), f"{read_base}/health") as api:
        sse = Streams("127.0.0.1", read_port, clients)
        await sse.open()
        opened = sum(1 for s in sse.seen if s)
        cpu_before = _cpu(api.pid)
        async with httpx.AsyncClient(timeout=30) as http:
            for _ in range(notices):
                placed = await http.post(f"{base}/orders", content=COMMAND_BODY,
                                         headers={"Content-Type": "application/json"})
                if placed.status_code == 201:
                    acks.append((time.time(), int(placed.json()["position"])))
                await asyncio.sleep(0.5)
        await asyncio.sleep(3)
        cpu_used = _cpu(api.pid) - cpu_before
        rss = peak_rss_mib(api.pid)
        spread = [_sockets(pid) for pid in _workers(api.pid)]
        # frames after the greeting, as the best-served client saw them
        delivered = max((len(events) - 1 for events in sse.seen), default=0)
        await sse.close()
    seen = sse.visible(acks)
    return {"clients": clients, "clients_asked": asked, "workers": workers,
            "sockets_per_worker": spread, "streams_open": opened,
            "streams_dropped": sse.dropped,
            "commands": len(acks),
            "events_per_client": delivered,
            "first_client_p99_ms": _ms(seen["first"], 0.99),
            "last_client_p50_ms": _ms(seen["last"], 0.5),
            "last_client_p99_ms": _ms(seen["last"], 0.99),
            "undelivered": len(acks) - len(seen["last"]), "read_api_peak_rss_mib": rss,
            "notices_delivered": delivered,
            "cpu_ms_per_notice": round(cpu_used * 1000 / delivered, 1) if delivered else None}


def _workers(pid: int) -> list[int]:
    """The processes serving a uvicorn API: its workers, or itself when it has none."""
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        found = [int(c) for c in children.read().split()]
    # not multiprocessing's resource tracker, which the supervisor starts too
    return [c for c in found if b"spawn_main" in _cmdline(c)] or [pid]


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read()
    except OSError:
        return b""


def _sockets(pid: int) -> int:
    """Open sockets of one process: its stream clients, plus a few store connections."""
    fds = f"/proc/{pid}/fd"
    count = 0
    for fd in os.listdir(fds):
        with contextlib.suppress(OSError):
            count += os.readlink(f"{fds}/{fd}").startswith("socket:")
    return count


def _cpu(pid: int) -> float:
    """CPU seconds of an API process and its workers."""
    total = 0
    for one in {pid, *_workers(pid)}:
        with open(f"/proc/{one}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / _ticks()

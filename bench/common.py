"""Benchmark plumbing: a fresh database, timers, percentiles, API processes, load loops."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg
import httpx
from elasticsearch import AsyncElasticsearch
from redis.asyncio import Redis

from app.kernel.bootstrap import connect
from app.kernel.settings import Settings, load_settings
from infra.migrate import migrate

# One database, index alias and Redis namespace per run: two runs never touch each
# other's data (they still share the CPU: run one at a time for figures).
BENCH_DB = f"orders_bench_{os.getpid()}"
# under the `orders` prefix the secured stack grants its service users
ALIAS = f"orders-bench-{os.getpid()}"
NAMESPACE = f"ordersbench{os.getpid()}"
# What a run creates: `<alias>-vN` from rebuilds, `<alias>-raw` for the raw baselines; keys
# under the namespace and the raw baseline's. A separator keeps pid 12 off pid 123's data.
INDEX_PATTERNS = (f"{ALIAS}-*",)
KEY_PATTERNS = (f"{NAMESPACE}:*", f"{NAMESPACE}-raw:*")


def percentile(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Bench:
    """Open clients on a benchmark database of its own."""

    settings: Settings
    pool: asyncpg.Pool[Any]
    es: AsyncElasticsearch
    redis: Redis
    results: dict[str, Any] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {**os.environ, "DATABASE_URL": self.settings.database_url,
                "ELASTICSEARCH_URL": self.settings.elasticsearch_url,
                "REDIS_URL": self.settings.redis_url, "ORDERS_SEARCH_ALIAS": ALIAS,
                "ORDERS_DASHBOARD_NAMESPACE": NAMESPACE}

    async def reset(self) -> None:
        """Empty the log, the write model and both read models."""
        for marker in ("projected_log", "read_dataset"):  # data sets kept for the next step
            self.results.pop(marker, None)
        await self.pool.execute("TRUNCATE events, orders, order_lines, idempotency_keys, "
                                "projection_checkpoints, dead_letters, projection_status, "
                                "reindex_jobs RESTART IDENTITY CASCADE")
        await self.drop_read_models()

    async def drop_read_models(self) -> None:
        """Delete every index and Redis key this run made (and nobody else's)."""
        for pattern in INDEX_PATTERNS:
            found = await self.es.indices.get(index=pattern, allow_no_indices=True)
            if found.body:
                await self.es.indices.delete(index=",".join(found.body))
        for pattern in KEY_PATTERNS:
            keys = [k async for k in self.redis.scan_iter(match=pattern)]
            if keys:
                await self.redis.delete(*keys)


async def _admin(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def open_bench() -> AsyncIterator[Bench]:
    base = load_settings()
    await _admin(base.database_url, f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    await _admin(base.database_url, f"CREATE DATABASE {BENCH_DB}")
    parts = urlsplit(base.database_url)
    dsn = urlunsplit(parts._replace(path=f"/{BENCH_DB}"))
    await migrate(dsn)
    settings = base.model_copy(update={"database_url": dsn, "search_alias": ALIAS,
                                       "dashboard_namespace": NAMESPACE})
    opened = await connect(settings, "bench")
    pool, es, redis = opened.pool, opened.es, opened.redis
    bench = Bench(settings, pool, es, redis)
    try:
        await bench.reset()
        yield bench
    finally:
        # also after a failure, Ctrl-C or SIGTERM: each step runs whatever the others did,
        # and a signal that lands mid-cleanup is held until every step has run
        cancelled = False
        for cleanup in (bench.drop_read_models, pool.close, es.close, redis.aclose,
                        lambda: _admin(base.database_url,
                                       f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")):
            step = asyncio.ensure_future(cleanup())
            while not step.done():
                try:
                    await asyncio.shield(step)
                except asyncio.CancelledError:
                    cancelled = True
            try:
                step.result()
            except Exception as exc:  # report it and go on cleaning
                print(f"cleanup: {cleanup!r} failed: {exc}", file=sys.stderr)
        if cancelled:
            raise asyncio.CancelledError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def process(args: list[str], env: dict[str, str], ready_url: str | None = None,
                  profile_as: str | None = None) -> AsyncIterator[subprocess.Popen[bytes]]:
    """A child process for the duration of the block (SIGTERM at the end).

    With `BENCH_PROFILE=<dir>` set, a child given `profile_as` is sampled by py-spy once it
    is ready; its folded stacks go to `<dir>/<profile_as>.txt` (see bench/profile.py).
    """
    import tempfile

    # Logs go to a file: an unread pipe would fill up and stall the server under load.
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=log)
    profiler: subprocess.Popen[bytes] | None = None
    try:
        if ready_url:
            async with httpx.AsyncClient() as http:
                for _ in range(200):
                    with contextlib.suppress(httpx.HTTPError):
                        if (await http.get(ready_url)).status_code < 500:
                            break
                    if proc.poll() is not None:
                        log.seek(0)
                        raise RuntimeError(log.read().decode()[-2000:])
                    await asyncio.sleep(0.1)
        profile_dir = os.environ.get("BENCH_PROFILE")
        if profile_dir and profile_as:
            os.makedirs(profile_dir, exist_ok=True)
            # --nonblocking: samples without pausing the server, so it runs at full speed
            profiler = subprocess.Popen(
                [_py_spy(), "record", "--pid", str(proc.pid), "--rate", "200", "--nonblocking",
                 "--subprocesses", "--format", "raw",
                 "-o", os.path.join(profile_dir, f"{profile_as}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        yield proc
    finally:
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            profiler.wait(30)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def orders_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "orders_cli.main", *args]


# One request of a wrk run: method, path (with its query string) and body (or None).
WrkRequest = tuple[str, str, str | None]


async def wrk(url: str, paths: list[str], connections: int, seconds: float,
              post_body: str | None = None) -> dict[str, float]:
    """Load a server with wrk (C, one thread) over random `paths` (GET, or POST of
    `post_body`); throughput and latency."""
    method = "GET" if post_body is None else "POST"
    return await wrk_requests(url, [(method, p, post_body) for p in paths], connections,
                              seconds)


def _lua_text(text: str) -> str:
    level = "=" * 4  # a long bracket no JSON body of ours contains
    if f"]{level}]" in text:
        raise ValueError("request text holds the Lua long-bracket terminator")
    return f"[{level}[{text}]{level}]"


async def wrk_requests(url: str, requests: list[WrkRequest], connections: int,
                       seconds: float) -> dict[str, float]:
    """Load a server with wrk (C, one thread), each request picked at random from
    `requests`; throughput and latency. The same list gives the same mix to any server."""
    import base64
    import re
    import tempfile

    from app.kernel.credentials import without_userinfo

    rows = ",\n".join(f"{{{_lua_text(m)}, {_lua_text(p)}, "
                       f"{_lua_text(b) if b is not None else 'nil'}}}" for m, p, b in requests)
    # wrk ignores a URL's user:password; a secured server gets them as a header instead.
    parts = urlsplit(url)
    auth = ""
    if parts.username is not None:
        user, password = unquote(parts.username), unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        auth = f', ["Authorization"] = "Basic {token}"'
        url = without_userinfo(url)
    script = ("requests = {\n" + rows + "\n}\n"
              f'local json = {{["Content-Type"] = "application/json"{auth}}}\n'
              f'local plain = {{{auth.lstrip(", ")}}}\n'
              "request = function()\n"
              "  local r = requests[math.random(#requests)]\n"
              "  return wrk.format(r[1], r[2], r[3] and json or plain, r[3])\nend\n")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    proc = await asyncio.create_subprocess_exec(
        # --timeout: wrk leaves answers slower than its timeout (2 s) out of the percentiles
        "wrk", "-t1", f"-c{connections}", f"-d{max(1, int(seconds))}s", "--latency",
        "--timeout", "30s",
        "-s", handle.name, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    os.unlink(handle.name)
    text = out.decode()
    if proc.returncode != 0:
        raise RuntimeError(err.decode() or text)

    def ms(label: str) -> float:
        match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    return {"rps": float(rps.group(1)) if rps else 0.0, "p50_ms": ms("50%"),
            "p99_ms": ms("99%"), "requests": int(total.group(1)) if total else 0,
            "errors": int(non_2xx.group(1)) if non_2xx else 0}


def _py_spy() -> str:
    beside = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return beside if os.path.exists(beside) else "py-spy"


def peak_rss_mib(pid: int) -> float:
    """The peak resident memory so far (Linux VmHWM) of a live process or, when it
    supervises workers, of its largest worker."""
    def hwm(one: int) -> float:
        with open(f"/proc/{one}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    with open(f"/proc/{pid}/task/{pid}/children") as children:
        workers = [int(c) for c in children.read().split()]
    return round(max([hwm(pid), *(hwm(w) for w in workers)]), 1)

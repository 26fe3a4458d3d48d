"""Private PostgreSQL and Redis servers a fault test may crash, restore and flush at will.

They run from the same Debian binaries as the native stack, on free loopback ports, with
their data in a temporary directory (PostgreSQL as the stack's non-root service user), so a
fault here never touches the shared services other tests use.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from infra import native


def free_port() -> int:
    """A loopback port at or below 55535 that nothing listens on now."""
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port <= 55535:
            return port
    raise RuntimeError("no free port at or below 55535")


def _wait(ready: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready within {seconds}s")


class PrivatePostgres:
    """One PostgreSQL cluster of its own: initdb, start, SIGKILL the postmaster, restart."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="orders-pg-", dir=_scratch()))
        self.data = self.root / "data"
        self.port = free_port()
        self.bin = native._pg_bin()
        _hand_over(self.root)
        native.run([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                    "--auth=trust", "--encoding=UTF8", "--no-locale"], as_service=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} "
                   f"-c unix_socket_directories={self.root} -c max_connections=100 "
                   "-c fsync=off")
        native.run([str(self.bin / "pg_ctl"), "start", "-D", str(self.data), "-w", "-t", "60",
                    "-l", str(self.root / "postgres.log"), "-o", options], as_service=True)

    def psql(self, sql: str, database: str = "postgres") -> str:
        return native.run([str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port),
                           "-U", "postgres", "-d", database, "-tAc", sql]).stdout.strip()

    def restore_from(self, source_url: str, database: str) -> None:
        """pg_dump another cluster's database and restore it here as `database`."""
        self.psql(f"CREATE DATABASE {database}")
        dump = subprocess.run([str(self.bin / "pg_dump"), source_url], check=True,
                              capture_output=True).stdout
        subprocess.run([str(self.bin / "psql"), "-q", "-v", "ON_ERROR_STOP=1",
                        self.url(database)], input=dump, check=True, capture_output=True)

    def kill9(self) -> None:
        """SIGKILL the postmaster, as a crash would; its backends exit on their own."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        _wait(lambda: not _alive(pid), 30, "postmaster exit")
        # Orphaned backends notice the postmaster is gone and exit; wait for the port.
        _wait(lambda: not _listening(self.port), 30, "port release")

    def restart_fast(self) -> None:
        native.run([str(self.bin / "pg_ctl"), "restart", "-D", str(self.data), "-m", "fast",
                    "-w", "-t", "60", "-l", str(self.root / "postgres.log")], as_service=True)

    def stop(self) -> None:
        native.run([str(self.bin / "pg_ctl"), "stop", "-D", str(self.data), "-m", "immediate",
                    "-w"], as_service=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """One Redis of its own, with an append-only file fsynced every second."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="orders-redis-", dir=_scratch()))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, appendonly: bool = True) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir",
             str(self.dir), "--appendonly", "yes" if appendonly else "no",
             "--appendfsync", "everysec", "--save", "", "--logfile", "redis.log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(lambda: _listening(self.port), 30, "redis")

    def snapshot(self) -> Path:
        """A point-in-time copy of everything (SAVE, then keep the file aside)."""
        subprocess.run(["redis-cli", "-p", str(self.port), "save"], check=True,
                       capture_output=True)
        kept = self.dir / f"older-{time.monotonic_ns()}.rdb"
        shutil.copy(self.dir / "dump.rdb", kept)
        return kept

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        _wait(lambda: not _listening(self.port), 30, "redis port release")

    def restore(self, snapshot: Path) -> None:
        """Come back from an older snapshot: everything written after it is lost."""
        self.kill9()
        shutil.rmtree(self.dir / "appendonlydir", ignore_errors=True)
        shutil.copy(snapshot, self.dir / "dump.rdb")
        self.start(appendonly=False)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def _scratch() -> str:
    """A temporary parent the service user can reach (not a private /tmp of ours)."""
    path = Path(tempfile.gettempdir()) / "orders-faults"
    path.mkdir(exist_ok=True)
    path.chmod(0o1777)
    return str(path)


def _hand_over(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, native.SERVICE_USER, native.SERVICE_USER)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0

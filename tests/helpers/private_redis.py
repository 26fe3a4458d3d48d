"""A private Redis a fault test may crash, restore from an older snapshot and flush at will.

It runs from the same Debian binary as the native stack, on a free loopback port, with its
data in a temporary directory, so a fault here never touches the shared Redis other tests
use. (The private PostgreSQL cluster is in tests/helpers/private_postgres.py.)
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.helpers.live import free_port


def _wait(ready: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready within {seconds}s")


class PrivateRedis:
    """One Redis of its own, with an append-only file fsynced every second."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="orders-redis-"))
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


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0

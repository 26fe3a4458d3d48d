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

from app.kernel.settings import Settings
from infra import security
from tests.helpers.live import free_port


def _process_users_acl() -> str | None:
    """The stack's projector and reader users with this run's passwords, and the default
    user open for the test's own fixtures; None when no Redis passwords are configured."""
    configured = Settings(database_url="unused")
    projector, reader = configured.redis_projector_password, configured.redis_reader_password
    if projector is None or reader is None:
        return None
    acl = security.redis_acl({"redis_admin": "unused", "redis_projector":
                              projector.get_secret_value(),
                              "redis_reader": reader.get_secret_value()})
    users = [line for line in acl.splitlines() if line.startswith("user orders_")
             and not line.startswith(f"user {security.ADMIN} ")]
    return "\n".join(["user default on nopass ~* &* +@all", *users]) + "\n"


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
        acl = _process_users_acl()  # processes under test log in as their own users
        users: list[str] = []
        if acl is not None:
            (self.dir / "users.acl").write_text(acl)
            users = ["--aclfile", str(self.dir / "users.acl")]
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir",
             str(self.dir), "--appendonly", "yes" if appendonly else "no",
             "--appendfsync", "everysec", "--save", "", "--logfile", "redis.log", *users],
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

"""A private PostgreSQL cluster a test may crash and restart (never the shared one).

Made with the same binaries the native stack uses (`infra/native.py`), in a temporary
directory, on a free loopback port, owned by the stack's service user when run as root
(PostgreSQL refuses to run as root). Tests skip when no PostgreSQL binaries are installed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from infra import native
from tests.helpers.live import free_port


def _bindir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


class PrivateCluster:
    """initdb, start, fast restart, SIGKILL of the postmaster, stop; blocking calls."""

    def __init__(self) -> None:
        bindir = _bindir()
        if bindir is None:
            pytest.skip("no PostgreSQL binaries to make a private cluster with")
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="orders-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/orders"
        if os.geteuid() == 0:
            native.ensure_service_user(native.Layout.default())
            self.root.chmod(0o755)
            shutil.chown(self.root, native.SERVICE_USER, native.SERVICE_USER)
        self._pg(["initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--encoding=UTF8", "--no-locale", "--no-sync"])
        self.start()
        self._pg(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-c",
                  "CREATE DATABASE orders"])

    def _pg(self, cmd: list[str], check: bool = True) -> str:
        result = native.run([str(self.bindir / cmd[0]), *cmd[1:]], as_service=True,
                            check=False, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"{cmd[0]} failed: {result.stderr.strip()}\n"
                                 f"{self.log.read_text() if self.log.exists() else ''}")
        return result.stdout

    def _ctl(self, *args: str, check: bool = True) -> str:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories=''"
        return self._pg(["pg_ctl", *args, "-D", str(self.data), "-w", "-t", "60",
                         "-l", str(self.log), "-o", options], check=check)

    def start(self) -> None:
        # After a SIGKILL of the postmaster its backends take a moment to notice and exit;
        # until they have, the new postmaster refuses to start (shared memory in use).
        deadline = time.monotonic() + 60
        while True:
            try:
                self._ctl("start")
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def database_url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str) -> str:
        return self._pg(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                         "-tAc", sql])

    def restore_from(self, source_url: str, database: str) -> None:
        """pg_dump another cluster's database and restore it here as `database`."""
        self.psql(f"CREATE DATABASE {database}")
        # As an operator restores into a cluster without the source's roles: objects owned
        # by whoever restores, grants given again by `orders migrate` (infra/roles.sql).
        dump = subprocess.run([str(self.bindir / "pg_dump"), "--no-owner", "--no-privileges",
                               source_url], check=True,
                              capture_output=True).stdout
        subprocess.run([str(self.bindir / "psql"), "-q", "-v", "ON_ERROR_STOP=1",
                        self.database_url(database)], input=dump, check=True,
                       capture_output=True)

    def restart_fast(self) -> None:
        """`pg_ctl restart -m fast`: every session is terminated, then it starts again."""
        self._ctl("restart", "-m", "fast")

    def kill_postmaster(self) -> None:
        """SIGKILL of the postmaster (a crash), without starting it again."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        self._pg(["pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w"], check=False)
        shutil.rmtree(self.root, ignore_errors=True)


async def run_blocking(action: Callable[[], None]) -> None:
    """Run a blocking cluster action off the event loop (the load keeps going meanwhile)."""
    await asyncio.to_thread(action)

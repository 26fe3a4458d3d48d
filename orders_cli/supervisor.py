"""`orders run`'s supervisor: keep each child process running; one that dies is restarted.

A child that exits, for any reason, is logged with its exit status (or the signal that
ended it) and started again after a capped exponential back-off, while the others run on.
SIGINT (Ctrl-C) or SIGTERM stops every child, then the supervisor.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

log = logging.getLogger("orders.supervisor")

BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 30.0
STABLE_AFTER_S = 60.0  # a child that ran this long before dying starts its back-off over
STOP_TIMEOUT_S = 15.0
POLL_S = 0.2


def describe(returncode: int) -> str:
    """An exit status as a person reads it: `exit status 1`, `killed by SIGKILL`."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


@dataclass
class Child:
    """One supervised command and its back-off state."""

    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0  # deaths in a row, each less than STABLE_AFTER_S after its start
    restart_at: float = 0.0

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv)
        self.started_at = time.monotonic()
        log.info("%s started (pid %d)", self.name, self.proc.pid)

    def tend(self, now: float) -> None:
        """Start the child when its restart is due; notice its death and schedule one."""
        if self.proc is None:
            if now >= self.restart_at:
                self.start()
            return
        code = self.proc.poll()
        if code is None:
            return
        if now - self.started_at >= STABLE_AFTER_S:
            self.failures = 0
        delay = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** self.failures)
        self.failures += 1
        log.warning("%s (pid %d) exited: %s; restarting in %.1fs", self.name, self.proc.pid,
                    describe(code), delay)
        self.proc, self.restart_at = None, now + delay


def stop_all(children: Sequence[Child]) -> None:
    """SIGTERM every live child, wait for them together, SIGKILL whoever outstays it."""
    live = [c.proc for c in children if c.proc is not None and c.proc.poll() is None]
    for proc in live:
        proc.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for proc in live:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("pid %d ignored SIGTERM for %.0fs; killing it", proc.pid,
                        STOP_TIMEOUT_S)
            proc.kill()
            proc.wait()


def supervise(children: Sequence[Child]) -> None:
    """Run the children until SIGINT or SIGTERM, restarting any that dies."""
    stopping = False

    def stop(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        log.info("%s: stopping every child", signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for child in children:
            child.start()
        while not stopping:
            now = time.monotonic()
            for child in children:
                if not stopping:  # a signal during this pass: start nothing new
                    child.tend(now)
            time.sleep(POLL_S)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stop_all(children)

"""Summarize py-spy's folded stacks: where a server's time goes, by package and function.

    BENCH_PROFILE=/tmp/prof python -m bench.run --quick --only reads
    python -m bench.profile /tmp/prof/api-read.txt

Self time is charged to the innermost frame's package; inclusive time to every function
of ours (app/, projectors/) on the stack, counted once per sample.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>.*?)(?::\d+)?\)$")
OURS = ("app/", "projectors/")


def package(file: str) -> str:
    """A frame's package: py-spy names files relative to the import path."""
    if file.startswith(OURS):
        return "/".join(file.split("/")[:2])
    if "/" in file:
        return file.split("/")[0]
    return f"stdlib:{Path(file).stem}"


def idle(function: str) -> bool:
    """Frames where a thread waits: a parked worker thread or the event loop's poll."""
    return function.endswith(("Condition.wait", ".select", "Event.wait", "Thread.join"))


def summarize(folded: str, top: int = 12) -> str:
    samples = 0
    waiting = 0
    by_package: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in folded.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [FRAME.match(f) for f in stack.split(";")]
        parsed = [(m.group("function"), m.group("file")) for m in frames if m]
        if not parsed:
            continue
        samples += count
        leaf_function, leaf_file = parsed[-1]
        if idle(leaf_function):
            waiting += count
            continue
        by_package[package(leaf_file)] += count
        seen = {f"{function} ({package(file)})" for function, file in parsed
                if file.startswith(OURS) and function != "<module>"}
        for name in seen:
            inclusive[name] += count
    busy = samples - waiting
    lines = [f"{samples} samples, {busy} busy ({100 * busy / max(samples, 1):.0f}%)",
             "self time by package (share of busy samples):"]
    lines += [f"  {100 * n / max(busy, 1):5.1f}%  {name}"
              for name, n in by_package.most_common(top)]
    lines.append("inclusive time of our functions:")
    lines += [f"  {100 * n / max(busy, 1):5.1f}%  {name}"
              for name, n in inclusive.most_common(top)]
    return "\n".join(lines)


if __name__ == "__main__":
    for path in sys.argv[1:]:
        print(f"== {path}")
        print(summarize(Path(path).read_text()))

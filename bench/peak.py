"""Run the `orders` CLI and append its own peak RSS (MiB) to the file named by PEAK_RSS_FILE."""

from __future__ import annotations

import atexit
import os
import resource
import sys


def _report() -> None:
    path = os.environ.get("PEAK_RSS_FILE")
    if path:
        with open(path, "a") as out:
            out.write(f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}\n")


if __name__ == "__main__":
    atexit.register(_report)
    from app.cli import main

    sys.argv = ["orders", *sys.argv[1:]]
    main()

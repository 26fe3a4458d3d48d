"""Run the `orders` CLI and append its own peak RSS (MiB) to the file named by PEAK_RSS_FILE."""

from __future__ import annotations

import atexit
import os
import sys

from bench.common import peak_rss_mib


def _report() -> None:
    # VmHWM, not getrusage's ru_maxrss: that one survives fork + exec, so it reports the
    # parent's size at fork time whenever the parent (the bench) was the larger.
    path = os.environ.get("PEAK_RSS_FILE")
    if path:
        with open(path, "a") as out:
            out.write(f"{peak_rss_mib(os.getpid()):.1f}\n")


if __name__ == "__main__":
    atexit.register(_report)
    from orders_cli.main import main

    sys.argv = ["orders", *sys.argv[1:]]
    main()

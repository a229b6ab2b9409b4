#!/usr/bin/env python3
"""Whole-process wall time and peak RSS of the core commands, next to `python -c pass`.

    python bench/cli.py [--runs 30]

Runs each command as a fresh process against a sandbox configfs root holding 10 targets laid
out as the kernel shows them, and prints the median and the worst peak RSS. Goal: `list`
within 100 ms median and 40 MB peak RSS on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import pty
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path


def make_root(top: Path, targets: int = 10) -> Path:
    root = top / "config"
    for i in range(targets):
        t = root / "netconsole" / f"t{i}"
        (t / "userdata/host").mkdir(parents=True)
        (t / "userdata/host/value").write_text(f"web{i}\n")
        attrs = {
            "enabled": "1", "dev_name": "eth0", "local_ip": "192.0.2.10", "local_port": "6665",
            "remote_ip": f"192.0.2.{100 + i}", "remote_port": "6666",
            "local_mac": "52:54:00:12:34:56", "remote_mac": "02:00:00:00:00:01",
            "extended": "1", "release": "0",
        }
        for k, v in attrs.items():
            (t / k).write_text(v + "\n")
    return root


def measure(argv: list[str], runs: int, tty: bool = False) -> tuple[float, float]:
    """Median wall seconds and max peak RSS (MiB) of `runs` fresh processes.

    With ``tty`` the process writes to a pseudo-terminal (rich's coloured table).
    """
    times, rss = [], []
    for _ in range(runs):
        start = time.perf_counter()
        if tty:
            pid, master = pty.fork()
        else:
            pid, master = os.fork(), -1
        if pid == 0:
            if not tty:
                fd = os.open(os.devnull, os.O_WRONLY)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
            try:
                os.execv(argv[0], argv)
            finally:
                os._exit(127)
        if tty:
            while True:
                try:
                    if not os.read(master, 65536):
                        break
                except OSError:  # EIO once the child has closed the terminal
                    break
            os.close(master)
        _, status, usage = os.wait4(pid, 0)
        times.append(time.perf_counter() - start)
        rss.append(usage.ru_maxrss / 1024)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(argv)} exited {os.waitstatus_to_exitcode(status)}")
    return statistics.median(times), max(rss)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    exe = shutil.which("netconsolectl", path=str(Path(sys.executable).parent))
    prog = [exe] if exe else [sys.executable, "-m", "netconsolectl"]
    top = Path(tempfile.mkdtemp(prefix="netconsolectl-bench-"))
    try:
        root = ["--configfs-root", str(make_root(top))]
        cases = {
            "python -c pass (baseline)": [sys.executable, "-c", "pass"],
            "netconsolectl --help": [*prog, "--help"],
            "netconsolectl list (10 targets)": [*prog, *root, "list"],
            "netconsolectl list, on a terminal": [*prog, *root, "list"],
            "netconsolectl list --json": [*prog, *root, "list", "--json"],
            "netconsolectl show t3": [*prog, *root, "show", "t3"],
            "netconsolectl add --dry-run": [
                *prog, *root, "add", "new", "--remote-ip", "192.0.2.1", "--dev", "eth0",
                "--local-ip", "192.0.2.10", "--remote-mac", "02:00:00:00:00:01", "--dry-run",
            ],
        }
        print(f"{'command':36} {'median ms':>10} {'peak RSS MiB':>13}   ({args.runs} runs)")
        for label, argv in cases.items():
            med, peak = measure(argv, args.runs, tty="terminal" in label)
            print(f"{label:36} {med * 1000:10.1f} {peak:13.1f}")
    finally:
        shutil.rmtree(top)


if __name__ == "__main__":
    main()

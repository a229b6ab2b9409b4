#!/usr/bin/env python3
"""``apply`` of a large configuration file: reading, validating and planning time.

    python bench/apply.py [--targets 1000,10000,200000] [--repeat 3] [--tree PATH]

For each size, writes a file of N targets (every value pinned, so nothing is probed) and
times, in a fresh interpreter each, ``load`` of the file and ``plan_config`` against an empty
sandbox configfs (what `apply --dry-run` does before printing). A count the configuration
refuses is reported as refused, with the time the refusal took. ``--tree`` runs the same
against another checkout (the baseline), so both are measured in the same run; the machine's
load average is printed before and after, since other processes skew the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHILD = r"""
import sys, time
from pathlib import Path
from netconsolectl.declarative.apply import plan_config
from netconsolectl.declarative.config import load
from netconsolectl.errors import NetconsoleError
from netconsolectl.host.system import System
from netconsolectl.sender.emulation import sandbox

path, root = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
try:
    config = load(path, strict=False)
    system = System(configfs=sandbox(root))
    plan_config(system, config, {}, {})
    verdict = "planned"
except NetconsoleError as e:
    verdict = "refused: " + str(e)[:60]
print(f"{time.perf_counter() - t0:.3f} {verdict}")
"""


def write_config(path: Path, n: int) -> None:
    with path.open("w") as f:
        for i in range(n):
            f.write(f'[targets.t{i}]\nremote_ip = "192.0.2.1"\nremote_port = {1024 + i % 60000}\n'
                    f'dev_name = "eth0"\nlocal_ip = "192.0.2.10"\n'
                    f'remote_mac = "02:00:00:00:00:01"\n')


def measure(tree: Path, path: Path, n: int) -> tuple[float, str]:
    with tempfile.TemporaryDirectory() as root:
        out = subprocess.run([sys.executable, "-c", CHILD, str(path), root], cwd=tree,
                             env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True,
                             text=True, check=True, timeout=3600).stdout.split(" ", 1)
    return float(out[0]), out[1].strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", default="1000,10000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tree", type=Path, action="append", default=[],
                    help="another checkout to measure alternately (the baseline)")
    args = ap.parse_args()
    trees = [REPO, *args.tree]
    print(f"load before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.targets.split(",")):
            path = Path(tmp) / f"{n}.toml"
            write_config(path, n)
            times: dict[Path, list[float]] = {t: [] for t in trees}
            verdicts: dict[Path, str] = {}
            for _ in range(args.repeat):
                for tree in trees:  # alternately, so load changes hit both
                    seconds, verdicts[tree] = measure(tree, path, n)
                    times[tree].append(seconds)
            for tree in trees:
                print(f"{n:>7} targets  {tree}: median {statistics.median(times[tree]):.2f} s "
                      f"(of {args.repeat})  {verdicts[tree]}")
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Whole-process wall time of one shell completion request, next to `python -c pass`.

    python bench/complete.py [--runs 30] [--as-is]

Each request is a fresh process with the environment typer's bash script gives it
(``_NETCONSOLECTL_COMPLETE=complete_bash``, ``COMP_WORDS``, ``COMP_CWORD``), against a sandbox
configfs root with 10 targets. Measured, in interleaved rounds so that load on the machine hits
all alike:

* ``python -c pass``: the floor;
* the ``netconsolectl`` entry point next to this interpreter, as it is wired now;
* the fast path (``netconsolectl.cli.complete.fast_complete``) called the way the entry point
  calls it, which imports neither typer nor the command modules;
* typer answering the same request through the app (what happens without the fast path).

Goal: one request within 150 ms on a 2-core machine. Python's bytecode caches are allowed (as
for an installed wheel, whose files pip compiles) unless ``--as-is`` keeps the environment,
``PYTHONDONTWRITEBYTECODE`` included.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REQUESTS = {
    "show <TAB>": ("netconsolectl show ", 2),
    "add x --dev <TAB>": ("netconsolectl add x --dev ", 4),
    "en<TAB>": ("netconsolectl en", 1),
}
FAST = "from netconsolectl.cli.complete import fast_complete; fast_complete()"
TYPER = "from netconsolectl.cli import app; app(prog_name='netconsolectl')"


def make_root(top: Path, targets: int = 10) -> Path:
    for i in range(targets):
        t = top / "netconsole" / f"t{i}"
        (t / "userdata" / "host").mkdir(parents=True)
        (t / "userdata" / "host" / "value").write_text(f"web{i}\n")
        for k, v in {"enabled": "1", "remote_ip": f"192.0.2.{100 + i}", "remote_port": "6666",
                     "dev_name": "eth0"}.items():
            (t / k).write_text(v + "\n")
    return top


def run(argv: list[str], env: dict[str, str]) -> tuple[float, float, bytes]:
    """Wall seconds, peak RSS (MiB) and standard output of one process."""
    rfd, wfd = os.pipe()
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(wfd, 1)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 2)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    os.close(wfd)
    chunks = []
    while chunk := os.read(rfd, 65536):
        chunks.append(chunk)
    os.close(rfd)
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv} exited {os.waitstatus_to_exitcode(status)}")
    return elapsed, usage.ru_maxrss / 1024, b"".join(chunks)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--as-is", action="store_true",
                    help="keep the environment as it is (PYTHONDONTWRITEBYTECODE included)")
    args = ap.parse_args()

    python = sys.executable
    entry = str(Path(python).parent / "netconsolectl")
    with tempfile.TemporaryDirectory() as tmp:
        base = dict(os.environ, NETCONSOLECTL_CONFIGFS_ROOT=str(make_root(Path(tmp))))
        if not args.as_is:
            base.pop("PYTHONDONTWRITEBYTECODE", None)
        cases: dict[str, tuple[list[str], dict[str, str]]] = {"python -c pass": (
            [python, "-c", "pass"], base)}
        for label, (line, cword) in REQUESTS.items():
            env = dict(base, _NETCONSOLECTL_COMPLETE="complete_bash", COMP_WORDS=line,
                       COMP_CWORD=str(cword))
            if os.path.exists(entry):
                cases[f"entry point   {label}"] = ([entry], env)
            cases[f"fast path     {label}"] = ([python, "-c", FAST], env)
        first = REQUESTS["show <TAB>"]
        cases["typer (no fast path) show <TAB>"] = ([python, "-c", TYPER], dict(
            base, _NETCONSOLECTL_COMPLETE="complete_bash", COMP_WORDS=first[0],
            COMP_CWORD=str(first[1])))

        answers = {name: run(argv, env)[2] for name, (argv, env) in cases.items()}  # warm up
        times: dict[str, list[float]] = {name: [] for name in cases}
        rss: dict[str, float] = dict.fromkeys(cases, 0.0)
        for _ in range(args.runs):
            for name, (argv, env) in cases.items():
                t, m, _ = run(argv, env)
                times[name].append(t)
                rss[name] = max(rss[name], m)

    print(f"{args.runs} runs each, {os.cpu_count()} CPUs, python {sys.version.split()[0]}, "
          f"bytecode caches {'as the environment says' if args.as_is else 'allowed'}")
    print(f"{'':38} {'median':>8} {'min':>8} {'peak RSS':>9}  answer")
    for name in cases:
        answer = answers[name].decode().split()
        shown = " ".join(answer[:4]) + (" ..." if len(answer) > 4 else "")
        print(f"{name:38} {statistics.median(times[name]) * 1000:6.1f}ms "
              f"{min(times[name]) * 1000:6.1f}ms {rss[name]:7.1f}MiB  {shown}")


if __name__ == "__main__":
    main()

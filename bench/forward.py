"""Does forwarding slow the receiver? Zero-loss receive rates with and without ``--forward``.

Everything on loopback, in one run, with the machinery of ``bench/listen.py``:

1. ``listen``: ``listen --json > file`` (the JSON fast path), the ladder of single-datagram
   rates; zero loss means every message sent is in the file;
2. ``listen+relp``: ``listen --quiet --spool-dir D --forward relp://`` into a real rsyslogd
   (imrelp, main queue direct), the same ladder; zero loss means ``listen`` took every datagram
   off its socket (its ``received`` counter): what the pipeline has not taken yet waits in the
   spool. Each trial also reports how many messages rsyslogd had once it stopped growing (all of
   them, or the trial says so) and how long the spool took to drain (``backlog``);
3. ``outage``: at a given rate, rsyslogd is stopped (SIGSTOP: connections open, nothing
   acknowledged) for the whole send and resumed after it: every datagram must be received, and
   every message in rsyslogd's file once it has caught up.

With ``--tree DIR`` (repeatable) the same trials run, alternated, against other checkouts of
the package (run with ``PYTHONPATH=DIR``), e.g. the code before a change.

Usage: ``python bench/forward.py [--duration 2] [--rates 50000,100000] [--tree ../base]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import listen as lb
import loadgen

COUNTERS = re.compile(rb"counters: (.*)")


def final_counters(err: Path) -> dict[str, int]:
    found = COUNTERS.findall(err.read_bytes())
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", found[-1].decode())} if found else {}


def forward_trial(name: str, rate: int, duration: float, tmp: Path, procs: int, *,
                  outage: bool = False, tree: Path | None = None,
                  collector_nice: int = 0) -> lb.Trial:
    rs = lb.Rsyslogd(tmp, collector_nice)
    spool = Path(tempfile.mkdtemp(prefix="spool-", dir=tmp))
    out = tmp / f"{name}-{rate}.out"
    argv = [*lb.netconsolectl_argv(tree), "listen", "--port", "0", "--quiet",
            "--spool-dir", str(spool), "--forward", f"relp://127.0.0.1:{rs.relp}"]
    rx = lb.Receiver("listen+relp", argv, out, port=None)
    cpu0 = lb.tree_cpu(rx.proc.pid)
    if outage:
        os.kill(rs.proc.pid, signal.SIGSTOP)
    try:
        res = loadgen.run(("127.0.0.1", rx.port), "single", rate, duration, procs=procs)
    finally:
        if outage:
            os.kill(rs.proc.pid, signal.SIGCONT)
    # after an outage the forwarder reconnects within its back-off (at most 10 s)
    backlog = lb.wait_drained(rs.out, quiet=12.0 if outage else 2.0, limit=300.0)
    cpu, hwm = rx.stop()
    lines = rs.out.read_bytes().count(b"loadgen src=")
    rs.stop()
    counters = final_counters(out.with_suffix(".err"))
    shutil.rmtree(spool, ignore_errors=True)
    sent = int(res["messages"])  # type: ignore[call-overload]
    t = lb.Trial(name, "single", rate, sent_rate=float(res["rate"]),  # type: ignore[arg-type]
                 sent=sent, received=min(counters.get("received", 0), sent),
                 cpu_s=round(cpu - cpu0, 2), peak_rss_mib=round(hwm, 1),
                 backlog_s=round(backlog, 2))
    t.extra = {"rsyslog_lines": lines, "spool_dropped": counters.get("spool_dropped"),
               "forward_errors": counters.get("forward_errors"), "outage": outage}
    return t


def show(t: lb.Trial) -> lb.Trial:
    mark = "ok  " if t.ok else "LOSS"
    extra = ""
    if "rsyslog_lines" in t.extra:
        extra = f" in rsyslog {t.extra['rsyslog_lines']} of {t.sent}"
    print(f"  {mark} {t.receiver:24s} target {t.target_rate:7d}/s sent {t.sent_rate:9.0f}/s "
          f"received {t.received:8d} of {t.sent:8d}{extra} cpu {t.cpu_s:5.2f}s "
          f"rss {t.peak_rss_mib:6.1f}MiB backlog {t.backlog_s:5.2f}s", flush=True)
    return t


def run_one(key: str, rate: int, duration: float, tmp: Path, procs: int,
            tree: Path | None, collector_nice: int) -> lb.Trial:
    if key.startswith("listen+relp"):
        return forward_trial(key, rate, duration, tmp, procs, tree=tree,
                             collector_nice=collector_nice)
    t = lb.trial("listen", lambda port: lb.listen_argv([], port, tree), "single", rate,
                 duration, tmp, procs)
    t.receiver = key
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=2.0, help="seconds per rate (max 10)")
    ap.add_argument("--procs", type=int, default=1, help="load generator processes")
    ap.add_argument("--rates", help="comma-separated rates instead of the ladder")
    ap.add_argument("--outage-rate", type=int, default=0,
                    help="rate of the outage trial [the highest zero-loss forwarding rate]")
    ap.add_argument("--tree", action="append", default=[],
                    help="also run against the package in this checkout (repeatable)")
    ap.add_argument("--collector-nice", type=int, default=0,
                    help="run rsyslogd at this nice level: it stands in for a collector on "
                         "another machine, and at 0 it takes the receiver's CPU [0]")
    ap.add_argument("--json", type=Path, help="write all results here")
    args = ap.parse_args()
    duration = min(args.duration, 10.0)
    rates = ([int(r) for r in args.rates.split(",")] if args.rates
             else lb.SINGLE_LADDER)
    results: dict[str, Any] = {"context_before": lb.context()}
    print("context:", json.dumps(results["context_before"]))
    trees: dict[str, Path | None] = {"": None}
    trees.update({f"@{Path(t).name}": Path(t).resolve() for t in args.tree})
    trials: list[lb.Trial] = []
    best: dict[str, int] = {}
    failed: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="forward-bench-") as d:
        tmp = Path(d)
        for rate in rates:  # alternated rate by rate: the same load for every variant
            for suffix, path in trees.items():
                for key in ("listen" + suffix, "listen+relp" + suffix):
                    # every variant at every rate: the generator's own rate varies with the
                    # machine's load, a variant that lost once may still pass a higher rung
                    t = run_one(key, rate, duration, tmp, args.procs, path,
                                args.collector_nice)
                    trials.append(show(t))
                    if t.ok:
                        best[key] = max(best.get(key, 0), round(t.sent_rate))
                    else:
                        failed.add(key)
            if len(failed) == 2 * len(trees):
                break  # every variant lost at this rate
            failed.clear()
        outage_rate = args.outage_rate or best.get("listen+relp", 0)
        if outage_rate:
            t = show(forward_trial("outage", outage_rate, duration, tmp, args.procs,
                                   outage=True, collector_nice=args.collector_nice))
            trials.append(t)
            results["outage"] = asdict(t) | {"lost": t.lost, "ok": t.ok}
    results["trials"] = [asdict(t) | {"lost": t.lost, "ok": t.ok} for t in trials]
    results["best_zero_loss"] = best
    results["context_after"] = lb.context()
    print("\nhighest zero-loss receive rate (messages/s):")
    for suffix in trees:
        plain, fwd = best.get("listen" + suffix, 0), best.get("listen+relp" + suffix, 0)
        ratio = f" = {fwd / plain:.2f} x" if plain else ""
        print(f"  {'listen' + suffix:20s} {plain:8d}   with --forward relp:// {fwd:8d}{ratio}")
    if "outage" in results:
        o = results["outage"]
        print(f"outage at {o['target_rate']}/s: received {o['received']} of {o['sent']}, "
              f"in rsyslog {o['extra']['rsyslog_lines']} after catching up in "
              f"{o['backlog_s']} s")
    print("context after:", json.dumps(results["context_after"]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""CPU time per message of the ``--json`` fast path, the C loop next to the Python loop.

    python bench/fastpath.py [--batches 2000] [--rounds 5]

Feeds the same batches (256 single-datagram 100-byte messages from one of 16 sources each, in
sequence, as ``bench/loadgen.py`` sends them) through ``JsonFastPath.feed_batch`` writing to
/dev/null, once with the C loop and once with it switched off, alternating, and prints the
median microseconds per message of each. This is the part of ``listen``'s work the C loop
replaces; receiving (recvmmsg) and writing are the same for both and ``bench/listen.py``
measures the whole process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from netconsolectl.receiver.core import Processor
from netconsolectl.receiver.fastpath import JsonFastPath
from netconsolectl.receiver.output import FdWriter
from netconsolectl.receiver.sinks.jsonl import JsonSink

BATCH = 256
SOURCES = 16


def batches(count: int) -> list[tuple[list[bytes], list[tuple[str, int]]]]:
    seq = [10_000_000] * SOURCES
    out = []
    for b in range(count):
        s = b % SOURCES
        payloads = []
        for _ in range(BATCH):
            seq[s] += 1
            head = b"6,%d,%d,-;loadgen src=%d seq=%d " % (seq[s], 10**15 + seq[s], s, seq[s])
            payloads.append(head + b"x" * (99 - len(head)) + b"\n")
        out.append((payloads, [(f"127.0.1.{s + 1}", 40000 + s)] * BATCH))
    return out


def run(loop: str, data: list[tuple[list[bytes], list[tuple[str, int]]]], fd: int) -> float:
    sink = JsonSink(FdWriter(fd))
    proc = Processor([sink])
    fast = JsonFastPath(proc, sink, lambda key: key)  # type: ignore[arg-type,return-value]
    if loop == "Python":
        fast._common = None
    elif fast._common is None:
        raise SystemExit("the C loop is not built (no compiler at install time?)")
    start = time.process_time()
    for payloads, keys in data:
        fast.feed_batch(payloads, keys, 1.0)
    sink.out.flush()
    elapsed = time.process_time() - start
    assert proc.counters.values["messages"] == len(data) * BATCH
    return elapsed / (len(data) * BATCH) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--batches", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    fd = os.open(os.devnull, os.O_WRONLY)
    results: dict[str, list[float]] = {"C": [], "Python": []}
    for _ in range(args.rounds):
        for loop in results:
            results[loop].append(run(loop, batches(args.batches), fd))
    for loop, us in results.items():
        print(f"{loop:6s} median {statistics.median(us):.3f} us/message "
              f"(min {min(us):.3f}, max {max(us):.3f}, {args.rounds} rounds of "
              f"{args.batches * BATCH} messages)")
    c, py = (statistics.median(results[k]) for k in ("C", "Python"))
    print(f"the Python loop takes {py / c:.1f} x the C loop's time")


if __name__ == "__main__":
    main()

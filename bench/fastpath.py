#!/usr/bin/env python3
"""CPU time per message of the ``--json`` fast path, the C loop next to the Python loop.

    python bench/fastpath.py [--batches 2000] [--rounds 5] [--kind single|fragments|both]

Feeds the same batches (256 datagrams from one of 16 sources each, in sequence, as
``bench/loadgen.py`` sends them: single-datagram 100-byte messages, or messages of three ncfrag
fragments of about 1,000 bytes each) through ``JsonFastPath.feed_batch`` writing to
/dev/null, once with the C loop and once with it switched off, alternating, and prints the
median microseconds per message and per datagram of each. This is the part of ``listen``'s
work the C loop replaces; receiving (recvmmsg) and writing are the same for both and
``bench/listen.py`` measures the whole process.
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


def batches(count: int, kind: str = "single") -> list[tuple[list[bytes], list[tuple[str, int]]]]:
    seq = [10_000_000] * SOURCES
    out = []
    for b in range(count):
        s = b % SOURCES
        payloads: list[bytes] = []
        while len(payloads) < BATCH:
            seq[s] += 1
            q = seq[s]
            if kind == "single":
                head = b"6,%d,%d,-;loadgen src=%d seq=%d " % (q, 10**15 + q, s, q)
                payloads.append(head + b"x" * (99 - len(head)) + b"\n")
                continue
            body = b"loadgen src=%d seq=%d " % (s, q)
            body += b"x" * (2999 - len(body)) + b"\n"
            payloads.extend(
                b"6,%d,%d,-,ncfrag=%d/%d;" % (q, 10**15 + q, a, len(body)) + body[a : a + 1000]
                for a in (0, 1000, 2000)
            )
        out.append((payloads, [(f"127.0.1.{s + 1}", 40000 + s)] * len(payloads)))
    return out


def run(
    loop: str, data: list[tuple[list[bytes], list[tuple[str, int]]]], fd: int
) -> tuple[float, float]:
    """(microseconds per message, per datagram)."""
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
    datagrams = sum(len(p) for p, _ in data)
    c = proc.counters.values
    assert c["received"] == datagrams and c["incomplete"] == 0, c
    return elapsed / c["messages"] * 1e6, elapsed / datagrams * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--batches", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--kind", choices=["single", "fragments", "both"], default="both")
    args = ap.parse_args()
    fd = os.open(os.devnull, os.O_WRONLY)
    kinds = ["single", "fragments"] if args.kind == "both" else [args.kind]
    results: dict[tuple[str, str], list[tuple[float, float]]] = {
        (k, loop): [] for k in kinds for loop in ("C", "Python")
    }
    data = {k: batches(args.batches, k) for k in kinds}
    for _ in range(args.rounds):
        for kind, loop in results:
            results[(kind, loop)].append(run(loop, data[kind], fd))
    for (kind, loop), r in results.items():
        msg = statistics.median(x[0] for x in r)
        dg = statistics.median(x[1] for x in r)
        print(f"{kind:9s} {loop:6s} median {msg:.3f} us/message, {dg:.3f} us/datagram "
              f"(min {min(x[0] for x in r):.3f}, max {max(x[0] for x in r):.3f} us/message, "
              f"{args.rounds} rounds of {args.batches * BATCH} datagrams)")
    for kind in kinds:
        c, py = (statistics.median(x[0] for x in results[(kind, k)]) for k in ("C", "Python"))
        print(f"{kind}: the Python loop takes {py / c:.1f} x the C loop's time")


if __name__ == "__main__":
    main()

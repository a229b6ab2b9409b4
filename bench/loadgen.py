"""Load generator for the ``listen`` benchmark: netconsole datagrams on loopback, fast.

Each sender process owns a few UDP sockets (one netconsole "target" each, with its own sequence
numbers) and sends with UDP generic segmentation offload (``UDP_SEGMENT``): one ``send`` hands
the kernel up to 64 equal-sized datagrams, which the receiver gets as ordinary separate
datagrams. That keeps the sender's cost per datagram low enough for a Python process to outrun
a Python receiver. Every datagram of a kind has the same size (sequence numbers start at
10,000,000 so their width does not change). Destinations must be loopback; anything else is
refused. Sends are paced to a target rate.

Run alone to print this machine's generator capacity::

    python bench/loadgen.py --max-rate
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import multiprocessing as mp
import socket
import sys
import time
from collections.abc import Iterator

SOL_UDP = 17
UDP_SEGMENT = 103
FIRST_SEQ = 10_000_000
TS0 = 1_000_000_000_000_000  # 16 digits, so every header has the same width
MSG_SIZE = 100  # single-datagram messages: exactly 100 bytes
FRAG_DGRAM = 810  # fragmented messages: three datagrams of 810 bytes
GSO_BATCH = 64  # datagrams per send (the kernel allows 64 segments on every version we target)


def check_loopback(host: str) -> None:
    if not ipaddress.ip_address(host).is_loopback:
        raise SystemExit(f"loadgen: refusing to send to non-loopback address {host}")


def single_format(src: int) -> tuple[bytes, int]:
    """printf-style template of one 100-byte extended message: (format, datagrams per message).

    Arguments per message: seq, ts_usec, seq."""
    head = b"6,%d,%d,-;loadgen src=" + b"%d" % src + b" seq=%d "
    width = len(head % (FIRST_SEQ, TS0, FIRST_SEQ))
    return head + b"x" * (MSG_SIZE - 1 - width) + b"\n", 1


def frag_format(src: int) -> tuple[bytes, int]:
    """Template of one message sent as three 810-byte ncfrag datagrams.

    The body pieces are sized so every datagram has the same length despite the different
    offset widths (2,293 body bytes in all). Arguments per message: seq and ts_usec of the first
    header, seq in the text, then seq and ts_usec of the second and third headers."""
    base = len(b"6,%d,%d,-,ncfrag=" % (FIRST_SEQ, TS0))
    # offsets 0 / 3 digits / 4 digits; total has 4 digits
    sizes = [FRAG_DGRAM - base - len(b"0/0000;"), FRAG_DGRAM - base - len(b"000/0000;"),
             FRAG_DGRAM - base - len(b"0000/0000;")]
    total = sum(sizes)
    offsets = [0, sizes[0], sizes[0] + sizes[1]]
    hdr = [b"6,%%d,%%d,-,ncfrag=%d/%d;" % (off, total) for off in offsets]
    text_head = b"loadgen src=" + b"%d" % src + b" seq=%d "
    width = len(text_head % FIRST_SEQ)
    body_tail = b"y" * (total - 1 - width) + b"\n"
    # piece 0 holds the text head (with its %d), so split the tail at the right points
    t0 = sizes[0] - width
    pieces = [text_head + body_tail[:t0], body_tail[t0 : t0 + sizes[1]],
              body_tail[t0 + sizes[1] :]]
    fmt = hdr[0] + pieces[0] + hdr[1] + pieces[1] + hdr[2] + pieces[2]
    return fmt, 3


def _frag_args(seq: int, ts: int) -> tuple[int, ...]:
    return (seq, ts, seq, seq, ts, seq, ts)


def _single_args(seq: int, ts: int) -> tuple[int, ...]:
    return (seq, ts, seq)


KINDS = {"single": (single_format, _single_args), "frag": (frag_format, _frag_args)}


def datagram_size(kind: str) -> int:
    return MSG_SIZE if kind == "single" else FRAG_DGRAM


#: The mixed workload: of every ten messages nine are single datagrams, one is three fragments.
#: GSO needs equal-sized datagrams in one send, so each round sends MIXED_SINGLES single messages
#: then MIXED_FRAGS fragmented ones from the same source, in sequence.
MIXED_SINGLES = 63
MIXED_FRAGS = 7


def source_address(proc: int, k: int) -> str:
    """The address of stream ``k`` of sender process ``proc``: 127.<proc+1>.<k/250>.<k%250+1>."""
    return f"127.{proc + 1}.{k // 250}.{k % 250 + 1}"


def mixed_formats(src: int) -> tuple[bytes, bytes]:
    """(one GSO send of MIXED_SINGLES single messages, one of MIXED_FRAGS fragmented ones)."""
    return single_format(src)[0] * MIXED_SINGLES, frag_format(src)[0] * MIXED_FRAGS


def _mixed_args(seq: int, ts: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    singles = [a for j in range(MIXED_SINGLES) for a in _single_args(seq + j, ts + j)]
    frags = [a for j in range(MIXED_SINGLES, MIXED_SINGLES + MIXED_FRAGS)
             for a in _frag_args(seq + j, ts + j)]
    return tuple(singles), tuple(frags)


def _raise_nofile(n: int) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 100)), hard))


def mixed_sender(
    dest: tuple[str, int],
    rate: float,
    duration: float,
    sources: int,
    src_index: int,
    result: mp.Queue,  # type: ignore[type-arg]
) -> None:
    """The mixed workload (90 % single, 10 % three-fragment messages) at ``rate`` messages/s."""
    check_loopback(dest[0])
    _raise_nofile(sources)
    socks = []
    fmts = []
    for k in range(sources):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        s.bind((source_address(src_index, k), 0))
        s.connect(dest)
        socks.append(s)
        fmts.append(mixed_formats(src_index * 1000 + k))
    per_round = MIXED_SINGLES + MIXED_FRAGS
    seqs = [FIRST_SEQ] * sources
    sent_msgs = datagrams = errors = 0
    start = time.perf_counter()
    end = start + duration
    i = 0
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        if rate:
            ahead = sent_msgs / rate - (now - start)
            if ahead > 0:
                time.sleep(min(ahead, end - now))
                continue
        k = i % sources
        i += 1
        seq = seqs[k]
        singles, frags = _mixed_args(seq, TS0 + int((now - start) * 1e6))
        try:
            socks[k].sendmsg([fmts[k][0] % singles], [(SOL_UDP, UDP_SEGMENT,
                                                        MSG_SIZE.to_bytes(2, sys.byteorder))])
        except OSError:
            errors += 1
            time.sleep(0.0002)
            continue
        while True:  # the single messages went: the fragmented ones must follow in sequence
            try:
                socks[k].sendmsg([fmts[k][1] % frags], [(SOL_UDP, UDP_SEGMENT,
                                                         FRAG_DGRAM.to_bytes(2, sys.byteorder))])
                break
            except OSError:
                errors += 1
                time.sleep(0.0002)
        seqs[k] = seq + per_round
        sent_msgs += per_round
        datagrams += MIXED_SINGLES + 3 * MIXED_FRAGS
    result.put({"messages": sent_msgs, "datagrams": datagrams,
                "elapsed": time.perf_counter() - start, "send_errors": errors, "streams": []})
    for s in socks:
        s.close()


def sender(
    dest: tuple[str, int],
    kind: str,
    rate: float,
    duration: float,
    sources: int,
    src_index: int,
    result: mp.Queue,  # type: ignore[type-arg]
) -> None:
    """Send ``kind`` messages at ``rate`` messages/s (0: as fast as possible) for ``duration``."""
    check_loopback(dest[0])
    family = socket.AF_INET6 if ":" in dest[0] else socket.AF_INET
    make, args_of = KINDS[kind]
    size = datagram_size(kind)
    socks = []
    fmts = []
    per_msg = 1
    for k in range(sources):
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        s.setsockopt(SOL_UDP, UDP_SEGMENT, size)
        if family == socket.AF_INET:
            # one source address per stream, as a fleet looks (and as netconsd keys its state)
            s.bind((source_address(src_index, k), 0))
        s.connect(dest)
        socks.append(s)
        fmt, per_msg = make(src_index * 1000 + k)
        fmts.append(fmt)
    msgs_per_send = GSO_BATCH // per_msg
    batch_fmts = [f * msgs_per_send for f in fmts]
    seqs = [FIRST_SEQ] * sources
    sent_msgs = 0
    errors = 0
    start = time.perf_counter()
    end = start + duration
    i = 0
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        if rate:
            ahead = sent_msgs / rate - (now - start)
            if ahead > 0:
                time.sleep(min(ahead, end - now))
                continue
        k = i % sources
        i += 1
        seq = seqs[k]
        ts = TS0 + int((now - start) * 1e6)
        args: list[int] = []
        for j in range(msgs_per_send):
            args.extend(args_of(seq + j, ts + j))
        blob = batch_fmts[k] % tuple(args)
        try:
            socks[k].send(blob)
        except (BlockingIOError, ConnectionRefusedError, OSError):
            # ENOBUFS/EAGAIN (local queue full) or an ICMP error from before the receiver was
            # up: the batch is not sent; reuse its sequence numbers for the next one.
            errors += 1
            time.sleep(0.0002)
            continue
        seqs[k] = seq + msgs_per_send
        sent_msgs += msgs_per_send
    elapsed = time.perf_counter() - start
    result.put(
        {
            "messages": sent_msgs,
            "datagrams": sent_msgs * per_msg,
            "elapsed": elapsed,
            "send_errors": errors,
            "streams": [
                [s.getsockname()[1], FIRST_SEQ, q - 1] for s, q in zip(socks, seqs, strict=True)
            ],
        }
    )
    for s in socks:
        s.close()


def run(
    dest: tuple[str, int],
    kind: str,
    rate: float,
    duration: float,
    *,
    procs: int = 2,
    sources: int = 16,
) -> dict[str, object]:
    """Send from ``procs`` processes; returns totals and the achieved rate."""
    ctx = mp.get_context("fork")
    q: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    share = rate / procs if rate else 0
    ps = [
        ctx.Process(target=mixed_sender, args=(dest, share, duration, sources // procs, n, q))
        if kind == "mixed"
        else ctx.Process(target=sender, args=(dest, kind, share, duration, sources, n, q))
        for n in range(procs)
    ]
    for p in ps:
        p.start()
    results = []
    for _ in ps:
        try:
            results.append(q.get(timeout=duration + 30))
        except Exception:
            for p in ps:
                p.kill()
            raise SystemExit("loadgen: a sender process failed") from None
    for p in ps:
        p.join()
    messages = sum(r["messages"] for r in results)
    elapsed = max(r["elapsed"] for r in results)
    return {
        "messages": messages,
        "datagrams": sum(r["datagrams"] for r in results),
        "elapsed": elapsed,
        "rate": messages / elapsed,
        "send_errors": sum(r["send_errors"] for r in results),
        "streams": [s for r in results for s in r["streams"]],
    }


def flood(dest: tuple[str, int], count: int, *, incomplete: bool = False) -> int:
    """One extended message from each of ``count`` distinct sources (127.x.y.z addresses, one
    socket each), the way a spoofed-source flood looks to the receiver; with ``incomplete`` the
    first two of its three fragments only, so every source leaves a fragment set that never
    completes. Returns the number of sources sent from."""
    check_loopback(dest[0])
    sent = 0
    fmt, _ = single_format(0)
    frag, _ = frag_format(0)
    for n, addr in zip(range(count), _loopback_addresses(), strict=False):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((addr, 0))
            if incomplete:
                blob = frag % _frag_args(FIRST_SEQ + n, TS0)
                s.sendto(blob[:FRAG_DGRAM], dest)
                s.sendto(blob[FRAG_DGRAM : 2 * FRAG_DGRAM], dest)
            else:
                s.sendto(fmt % (FIRST_SEQ, TS0, n), dest)
            sent += 1
        finally:
            s.close()
        if n % 1000 == 999:
            time.sleep(0.002)  # the point is the state it leaves behind, not the rate
    return sent


def fleet(dest: tuple[str, int], sources: int, per_source: int, duration: float,
          procs: int = 2) -> dict[str, object]:
    """``sources`` hosts (distinct 127.x.y.z addresses) sending together: each sends
    ``per_source`` single-datagram messages spread over ``duration`` seconds, in GSO batches of
    a few messages. Returns totals."""
    check_loopback(dest[0])
    ctx = mp.get_context("fork")
    q: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    addrs = list(zip(range(sources), _loopback_addresses(), strict=False))
    ps = [ctx.Process(target=_fleet_sender, args=(dest, addrs[n::procs], per_source, duration, q))
          for n in range(procs)]
    for p in ps:
        p.start()
    results = [q.get(timeout=duration + 120) for _ in ps]
    for p in ps:
        p.join()
    return {"messages": sum(r["messages"] for r in results),
            "send_errors": sum(r["send_errors"] for r in results),
            "elapsed": max(r["elapsed"] for r in results)}


def _fleet_sender(dest: tuple[str, int], addrs: list[tuple[int, str]], per_source: int,
                  duration: float, result: mp.Queue) -> None:  # type: ignore[type-arg]
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, len(addrs) + 100)), hard))
    batch = 4
    socks = []
    for _, addr in addrs:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(SOL_UDP, UDP_SEGMENT, MSG_SIZE)
        s.bind((addr, 0))
        s.connect(dest)
        socks.append(s)
    fmts = [single_format(n)[0] * batch for n, _ in addrs]
    rounds = per_source // batch
    start = time.perf_counter()
    sent = errors = 0
    for r in range(rounds):
        seq = FIRST_SEQ + r * batch
        # pace: round r starts at r/rounds of the duration
        ahead = start + duration * r / rounds - time.perf_counter()
        if ahead > 0:
            time.sleep(ahead)
        args = []
        for j in range(batch):
            args.extend(_single_args(seq + j, TS0 + seq + j))
        for s, fmt in zip(socks, fmts, strict=True):
            blob = fmt % tuple(args)
            while True:
                try:
                    s.send(blob)
                    break
                except (BlockingIOError, OSError):
                    errors += 1
                    time.sleep(0.0002)
            sent += batch
    result.put({"messages": sent, "send_errors": errors,
                "elapsed": time.perf_counter() - start})
    for s in socks:
        s.close()


def crash_storm(dest: tuple[str, int], hosts: int, report: list[bytes]) -> int:
    """``hosts`` distinct 127.x.y.z addresses each send the same crash report (extended
    datagrams) at once, interleaved line by line. Returns the datagrams sent."""
    check_loopback(dest[0])
    socks = []
    for _, addr in zip(range(hosts), _loopback_addresses(), strict=False):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((addr, 0))
        s.connect(dest)
        socks.append(s)
    sent = 0
    for line in report:
        for s in socks:
            s.send(line)
            sent += 1
        time.sleep(0.001)
    for s in socks:
        s.close()
    return sent


def _loopback_addresses() -> Iterator[str]:
    for b in range(1, 255):
        for c in range(256):
            for d in range(1, 255):
                yield f"127.{b}.{c}.{d}"


def max_rate(kind: str, procs: int, duration: float) -> dict[str, object]:
    """The generator's own ceiling: unpaced, into a bound socket that nobody reads (the kernel
    still does the delivery work and drops at the full receive buffer)."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    try:
        res = run(sink.getsockname(), kind, 0, duration, procs=procs)
    finally:
        sink.close()
    res.pop("streams")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=6666)
    ap.add_argument("--kind", choices=[*sorted(KINDS), "mixed"], default="single")
    ap.add_argument("--rate", type=float, default=0, help="messages/s in total (0: unpaced)")
    ap.add_argument("--duration", type=float, default=2.0)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--max-rate", action="store_true", help="measure capacity into a dead end")
    args = ap.parse_args()
    if args.duration > 60:
        raise SystemExit("loadgen: --duration is capped at 60 s")
    if args.max_rate:
        print(json.dumps(max_rate(args.kind, args.procs, args.duration)))
        return
    res = run((args.host, args.port), args.kind, args.rate, args.duration, procs=args.procs)
    res.pop("streams")
    print(json.dumps(res))


if __name__ == "__main__":
    sys.exit(main())

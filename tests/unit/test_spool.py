"""The disk spool on a real temporary directory: order, acknowledgement, resend, bound, a damaged
tail, a second process."""

from __future__ import annotations

import itertools
import os
import random
from pathlib import Path
from typing import Any

import pytest

from netconsolectl.receiver.spool import HEADER, Shared, SpoolBusy, SpoolReader, SpoolWriter


class Spool:
    """A writer and a reader of one spool in this process, as the forwarding process and its
    delivery process hold them."""

    def __init__(self, path: str, max_bytes: int, **kw: Any) -> None:
        self.w = SpoolWriter(path, max_bytes, **kw)
        self.r = SpoolReader(self.w)

    def close(self) -> None:
        self.r.close()
        self.w.close()


def segments(path: Path) -> int:
    return len(list(path.glob("*.seg")))


def fill(s: Spool, first: int, last: int) -> None:
    for i in range(first, last + 1):
        s.w.append(b"record %d" % i)
    s.w.flush()


def test_read_ack_rewind_in_order(tmp_path: Path) -> None:
    s = Spool(str(tmp_path), 1 << 20, segment_bytes=4096)
    fill(s, 1, 1000)
    assert segments(tmp_path) > 3  # spread over several segments
    got = s.r.read(300)
    assert got[0] == b"record 1" and got[-1] == b"record 300"
    s.r.ack(100)
    assert s.r.rewind() == 200  # read, not acknowledged: sent again
    got = s.r.read(10**6)
    assert got[0] == b"record 101" and got[-1] == b"record 1000" and len(got) == 900
    s.r.ack(900)
    assert s.r.pending() == 0
    assert segments(tmp_path) == 1  # acknowledged segments are deleted
    s.close()


def test_reopen_replays_what_was_not_acknowledged(tmp_path: Path) -> None:
    s = Spool(str(tmp_path), 1 << 20, segment_bytes=4096)
    fill(s, 1, 500)
    s.r.read(250)
    s.r.ack(200)
    s.close()
    s = Spool(str(tmp_path), 1 << 20, segment_bytes=4096)
    assert s.r.pending() == 300
    fill(s, 501, 600)
    got = s.r.read(10**6)
    assert got == [b"record %d" % i for i in range(201, 601)]
    s.close()


def test_full_spool_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    s = Spool(str(tmp_path), 64 << 10, segment_bytes=8 << 10)
    fill(s, 1, 10_000)
    on_disk = sum(p.stat().st_size for p in tmp_path.glob("*.seg"))
    assert on_disk <= 64 << 10
    got = s.r.read(10**6)
    assert s.w.dropped + len(got) == 10_000
    assert s.w.dropped > 0
    assert got[-1] == b"record 10000"
    first = int(got[0].split()[1])
    assert got == [b"record %d" % i for i in range(first, 10_001)]  # the newest, in order
    s.close()


def test_drop_while_reading_keeps_the_acknowledgements_straight(tmp_path: Path) -> None:
    s = Spool(str(tmp_path), 32 << 10, segment_bytes=4 << 10)
    fill(s, 1, 100)
    inflight = s.r.read(50)
    fill(s, 101, 5000)  # the segments being read are dropped meanwhile
    s.r.ack(len(inflight))
    rest = s.r.read(10**6)
    assert rest[-1] == b"record 5000"
    s.r.ack(len(rest))
    # every record acknowledged or counted lost, none both: the first 50 were dropped before
    # their acknowledgement came, so they count as lost
    assert s.w.dropped + len(rest) == 5000
    assert s.r.pending() == 0
    s.close()


def test_truncated_tail_is_cut_with_a_clear_message(tmp_path: Path) -> None:
    s = Spool(str(tmp_path), 1 << 20)
    fill(s, 1, 10)
    s.close()
    seg = sorted(tmp_path.glob("*.seg"))[0]
    size = seg.stat().st_size
    with seg.open("ab") as f:  # a record whose write was cut short
        f.write(HEADER.pack(100, 0) + b"half")
    warnings: list[str] = []
    s = Spool(str(tmp_path), 1 << 20, warn=warnings.append)
    assert len(warnings) == 1
    assert f"{seg}: 12 bytes after offset {size} are not a whole record" in warnings[0]
    assert s.r.read(100) == [b"record %d" % i for i in range(1, 11)]
    fill(s, 11, 12)
    assert s.r.read(100) == [b"record 11", b"record 12"]
    s.close()


def test_corrupt_record_checksum(tmp_path: Path) -> None:
    s = Spool(str(tmp_path), 1 << 20)
    fill(s, 1, 3)
    s.close()
    seg = sorted(tmp_path.glob("*.seg"))[0]
    data = bytearray(seg.read_bytes())
    data[-1] ^= 0xFF  # flip a bit of the last record
    seg.write_bytes(bytes(data))
    warnings: list[str] = []
    s = Spool(str(tmp_path), 1 << 20, warn=warnings.append)
    assert warnings and "not a whole record" in warnings[0]
    assert s.r.read(10) == [b"record 1", b"record 2"]
    s.close()


def test_one_process_per_spool(tmp_path: Path) -> None:
    s = SpoolWriter(str(tmp_path), 1 << 20)
    pid = os.fork()
    if pid == 0:  # another process: the lock is per open file, so fork to test it
        try:
            SpoolWriter(str(tmp_path), 1 << 20)
        except SpoolBusy:
            os._exit(0)
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    s.close()
    SpoolWriter(str(tmp_path), 1 << 20).close()


def test_ack_of_everything_then_restart_starts_clean(tmp_path: Path) -> None:
    s = Spool(str(tmp_path), 1 << 20)
    fill(s, 1, 5)
    s.r.ack(len(s.r.read(10)))
    s.close()
    s = Spool(str(tmp_path), 1 << 20)
    assert s.r.pending() == 0 and s.r.read(10) == []
    s.close()


@pytest.mark.parametrize("n", [1, 7, 1000])
def test_big_records(tmp_path: Path, n: int) -> None:
    s = Spool(str(tmp_path), 64 << 20)
    big = [bytes([i % 256]) * (300_000 + i) for i in range(n if n < 10 else 3)]
    for b in big:
        s.w.append(b)
    s.w.flush()
    assert s.r.read(100, max_bytes=64 << 20) == big
    s.close()


def test_spools_left_by_more_workers_are_named(tmp_path: Path) -> None:
    from netconsolectl.receiver.sinks.reliable import orphaned_spools

    for worker, records in (("w0", 3), ("w1", 0), ("w3", 2)):
        s = Spool(str(tmp_path / "relp_127.0.0.1_2514" / worker), 1 << 20)
        fill(s, 1, records)
        s.close()
    assert orphaned_spools(str(tmp_path), 1) == [str(tmp_path / "relp_127.0.0.1_2514" / "w3")]
    assert orphaned_spools(str(tmp_path), 4) == []


# -- what the forwarding process spools: sinks/reliable.py frame_lines, in C and in Python ------

KINDS = [b'{"type":"message","host":"192.0.2.1"', b'{"type":"forward","state":"down"',
         b'{"type":"lost","host":"192.0.2.1"', b"", b'{"type":"mess', b'{"type":"message"']


def lines_data(rng: random.Random) -> bytes:
    """Lines of every kind (messages, a forwarder's own events, other events, empty lines, a
    prefix cut short), with any byte but a newline after the kind, and sometimes a tail with
    no newline yet."""
    lines = [rng.choice(KINDS) + rng.randbytes(rng.choice((0, 1, 7, 8, 9, 300, 5000)))
             .replace(b"\n", b"\x00") for _ in range(rng.randint(0, 12))]
    return b"\n".join(lines) + rng.choice((b"", b"\n", b"\n{\"type\":\"message\" half"))


def test_both_framings_spool_the_same_records(tmp_path: Path) -> None:
    """The C framing (with its own CRC-32) against the Python reference, and every record read
    back by the spool, whose check is zlib's CRC-32."""
    from netconsolectl.receiver import _fastjson
    from netconsolectl.receiver.sinks.reliable import frame_lines

    rng = random.Random(24)
    s = Spool(str(tmp_path), 1 << 30)
    expected: list[bytes] = []
    for _ in range(3000):
        data = lines_data(rng)
        for events in (False, True):
            framed = _fastjson.frame_lines(data, events)
            assert framed == frame_lines(data, events), (data, events)
            records, count, used = framed
            assert used == data.rfind(b"\n") + 1
            s.w.append_framed(records, count)
            expected += [line for line in data[:used].split(b"\n")[:-1]
                         if line.startswith(b'{"type":"message"')
                         or (events and line and not line.startswith(b'{"type":"forward"'))]
    s.w.flush()
    assert s.r.read(10**7, max_bytes=1 << 30) == expected
    s.close()


def test_a_reader_in_another_process_gets_every_record_once_in_order(tmp_path: Path) -> None:
    """The arrangement of ``listen``: the writer here, the reader in a forked process, both at
    once, through segment changes and the bound dropping segments under the reader. Records
    come once each, in order; every one is acknowledged or counted lost, none both (one read
    and then dropped before its acknowledgement counts as lost)."""
    w = SpoolWriter(str(tmp_path), 256 << 10, segment_bytes=16 << 10)
    total = 60_000
    out_r, out_w = os.pipe()
    # The reader starts once the first records are past the bound, so some are surely
    # dropped before it reads them, however fast it is; it then reads while the rest come.
    head_start = 20_000
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(out_r)
            os.close(go_w)
            os.read(go_r, 1)
            r = SpoolReader(w)
            seen: list[int] = []
            while not seen or seen[-1] != total:
                got = r.read(random.choice((1, 50, 1000)))
                if not got:
                    r.wait(0.1)
                    continue
                seen += [int(g.split()[1]) for g in got]
                r.ack(len(got))
            r.close()
            ordered = all(a < b for a, b in itertools.pairwise(seen))
            os.write(out_w, b"%d %d" % (len(seen), ordered))
            code = 0
        finally:
            os._exit(code)
    os.close(out_w)
    os.close(go_r)
    for i in range(1, total + 1):
        w.append(b"record %d" % i)
        if i % 97 == 0:
            w.flush()
        if i == head_start:
            w.flush()
            os.write(go_w, b"g")
            os.close(go_w)
    w.flush()
    delivered, ordered = map(int, os.read(out_r, 100).split())
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert ordered
    v = w.shared.v
    assert v[Shared.ACKED] + w.dropped == total
    assert delivered >= v[Shared.ACKED] and w.dropped > 0
    assert w.shared.pending() == 0
    w.close()
    os.close(out_r)


def test_the_spool_is_fsynced_every_second_while_delivery_cannot_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The delivery process runs as SCHED_IDLE, so on a busy host it may not run for a long
    time: the spool's once-a-second fsync comes from the writing process. Here the delivery
    process is stopped the whole time; the segment is still fsynced within about a second of
    the write."""
    import signal
    import threading
    import time

    from netconsolectl.receiver.sinks.reliable import (
        Deliverer,
        ReliableSink,
        TransportError,
        frame_lines,
    )
    from netconsolectl.receiver.spool import FSYNC_INTERVAL, sync_every

    synced: list[tuple[str, float]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:  # the real fsync, noted
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), time.monotonic()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)

    class DownPipeline:
        url, host, port, rejected, err = "relp://127.0.0.1:1", "127.0.0.1", 1, 0, None

        def connect(self) -> None:
            raise TransportError("down")

        def disconnect(self) -> None:
            pass

    pipeline: Any = DownPipeline()
    sink = ReliableSink(Deliverer("relp://127.0.0.1:1", pipeline, lambda m: b"x", None),
                        spool_dir=str(tmp_path), spool_max_bytes=1 << 20)
    os.kill(sink.pid, signal.SIGSTOP)
    stop = threading.Event()
    syncer = sync_every([sink.spool], stop)
    try:
        records, count, _ = frame_lines(b'{"type":"message","text":"one"}\n', False)
        written = time.monotonic()
        sink.ingest(records, count)
        deadline = written + 3 * FSYNC_INTERVAL
        while not any(p.endswith(".seg") for p, _ in synced) and time.monotonic() < deadline:
            time.sleep(0.05)
        first = next((t for p, t in synced if p.endswith(".seg")), None)
        assert first is not None and first - written < FSYNC_INTERVAL + 0.5, synced
    finally:
        stop.set()
        syncer.join()
        os.kill(sink.pid, signal.SIGCONT)
        sink.close()
    # the delivery process, let go, ended at once and said what it left in the spool
    assert [e.data["state"] for e in sink.take_events()][-1] == "spooled"

"""Forwarders that spool run in a process of their own: the receive loop never waits for them.

A real rsyslogd (imrelp) on loopback is the collector; an outage is rsyslogd stopped (SIGSTOP:
connections still open, nothing acknowledged) while messages arrive as fast as a socket sends.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.listen.conftest import Sender
from tests.listen.test_forward import Rsyslog
from tests.listen.test_relp import SEQ, counters, relp_rsyslog, wait_received

__all__ = ["relp_rsyslog"]  # the fixture


def tids(pid: int) -> list[int]:
    return [int(t) for t in os.listdir(f"/proc/{pid}/task")]


def threads(pid: int) -> int:
    return len(tids(pid))


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_receiving_writing_and_delivering_are_processes_of_their_own(
        listen: Any, relp_rsyslog: Rsyslog, tmp_path: Path) -> None:
    lst = listen("--quiet", "--workers", "1", "--spool-dir", str(tmp_path / "spool"),
                 "--forward", f"relp://127.0.0.1:{relp_rsyslog.relp}")
    Sender(lst.port).send(b"6,1,10,-;one\n")
    relp_rsyslog.wait(1)
    # receiving: one thread; forwarding: a process of its own, which takes the lines off the
    # pipe and fsyncs the spool as normal threads ...
    assert threads(lst.proc.pid) == 1
    [forwarding] = children(lst.proc.pid)
    assert threads(forwarding) == 2
    assert {os.sched_getscheduler(t) for t in tids(forwarding)} == {os.SCHED_OTHER}
    # ... and delivers from a process of its own, with the CPU time nothing else wants
    [delivery] = children(forwarding)
    assert {os.sched_getscheduler(t) for t in tids(delivery)} == {os.SCHED_IDLE}
    assert os.sched_getscheduler(lst.proc.pid) == os.SCHED_OTHER
    assert lst.stop() == 0
    assert len(relp_rsyslog.lines()) == 1


def test_a_delivery_process_that_dies_is_replaced_and_nothing_is_lost(
        listen: Any, relp_rsyslog: Rsyslog, tmp_path: Path) -> None:
    lst = listen("--quiet", "--workers", "1", "--spool-dir", str(tmp_path / "spool"),
                 "--forward", f"relp://127.0.0.1:{relp_rsyslog.relp}")
    sender = Sender(lst.port)
    sender.send(b"6,1,10,-;one\n")
    relp_rsyslog.wait(1)
    [forwarding] = children(lst.proc.pid)
    [delivery] = children(forwarding)
    os.kill(delivery, signal.SIGKILL)  # as the OOM killer would
    sender.send(*(b"6,%d,%d,-;after %d\n" % (q, q, q) for q in range(2, 1002)))
    wait_received(lst, 1001)
    assert len(relp_rsyslog.wait(1001, timeout=30)) == 1001
    [replacement] = children(forwarding)
    assert replacement != delivery
    assert "the delivery process was killed by signal 9; another starts in 10 s" in lst.stderr()
    assert lst.stop() == 0
    assert len(relp_rsyslog.lines()) == 1001


def test_the_spool_absorbs_a_collector_outage_at_full_rate(listen: Any, relp_rsyslog: Rsyslog,
                                                           tmp_path: Path) -> None:
    total = 50_000
    lst = listen("--quiet", "--workers", "2", "--spool-dir", str(tmp_path / "spool"),
                 "--forward", f"relp://127.0.0.1:{relp_rsyslog.relp}")
    senders = [Sender(lst.port, f"127.0.0.{i}") for i in (1, 2, 3, 4)]
    os.kill(relp_rsyslog.proc.pid, signal.SIGSTOP)  # the collector stops taking anything
    try:
        for start in range(1, total + 1, 500):  # as fast as the sockets go, no pacing
            for i, s in enumerate(senders):
                s.send(*(b"6,%d,%d,-;message %d from %d\n" % (q, q, q, i)
                         for q in range(start, min(start + 500, total + 1))))
        wait_received(lst, 4 * total)
    finally:
        os.kill(relp_rsyslog.proc.pid, signal.SIGCONT)
    deadline = time.monotonic() + 180
    while len(relp_rsyslog.lines()) < 4 * total and time.monotonic() < deadline:
        time.sleep(0.5)
    assert lst.stop() == 0
    lines = relp_rsyslog.lines()
    got = Counter((sd.split('ip="')[1].split('"')[0], int(m.group(1)))
                  for sd, *_ in lines if (m := SEQ.search(sd)))
    assert len(got) == 4 * total, f"{4 * total - len(got)} missing"
    c = counters(lst.stderr())
    assert c["received"] == 4 * total and c["lost"] == 0 and c["spool_dropped"] == 0, c


class CountingSink:
    """Takes framed lines as ReliableSink.ingest does, and counts the calls."""

    def __init__(self, spools_events: bool = True) -> None:
        self.spools_events = spools_events
        self.calls = 0
        self.lines = 0
        self.records = b""

    def ingest(self, records: bytes, count: int) -> None:
        self.calls += 1
        self.lines += count
        self.records += records


def test_each_forwarder_gets_the_lines_it_spools() -> None:
    """Forwarders that spool events and one that does not, fed from one pipe: each spools
    what frame_lines keeps for it, whole lines only, across reads that cut lines."""
    import threading

    from netconsolectl.receiver.sinks import process
    from netconsolectl.receiver.sinks.reliable import frame_lines

    lines = b"".join(b'{"type":"message","n":%d}\n{"type":"lost","n":%d}\n'
                     b'{"type":"forward","n":%d}\n' % (i, i, i) for i in range(20_000))
    r, w = os.pipe()

    def receive_loop() -> None:
        for start in range(0, len(lines), 5000):  # pieces that cut lines anywhere
            os.write(w, lines[start:start + 5000])
        os.close(w)

    sinks = [CountingSink(True), CountingSink(False), CountingSink(True)]
    writer = threading.Thread(target=receive_loop)
    writer.start()
    process._pump(r, sinks, lambda: None)
    writer.join()
    os.close(r)
    with_events, without, _ = (frame_lines(lines, events) for events in (True, False, True))
    assert (sinks[0].records, sinks[0].lines) == with_events[:2]
    assert (sinks[1].records, sinks[1].lines) == without[:2]
    assert (sinks[2].records, sinks[2].lines) == with_events[:2]
    assert with_events[1] == 40_000 and without[1] == 20_000


def test_lines_that_come_slowly_gather_in_the_pipe_before_they_are_spooled() -> None:
    """Woken for every batch the receive loop writes, the forwarding process spent as much per
    line on waking up as on the line: after a read of a pipe less than a quarter full, it lets
    the next lines gather."""
    import threading

    from netconsolectl.receiver.sinks import process

    r, w = os.pipe()
    batches = 300

    def receive_loop() -> None:  # a batch of lines every 2 ms, for 0.6 s
        for i in range(batches):
            os.write(w, b"line %d\n" % i * 20)
            time.sleep(0.002)
        os.close(w)

    sink = CountingSink()
    writer = threading.Thread(target=receive_loop)
    writer.start()
    process._pump(r, [sink], lambda: None)
    writer.join()
    os.close(r)
    assert sink.lines == 20 * batches
    # one call per 10 ms at most (about 60), not one per batch
    assert sink.calls < batches / 2, sink.calls

"""Crash reports a real 6.12 kernel sent (tests/data/crashes-6.12.jsonl, written by
tests/kernel/capture_crashes.py): a hung task, a memory-cgroup OOM kill and a sysrq panic
(the panic on a guest booted with panic=-1, so the kernel rebooted before its end marker).
Replayed through the receiver, each is one crash event of the right kind, and variants made
from them (a lost middle, an interleaved stranger, cut short) behave as documented."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from netconsolectl.receiver.core import Processor
from netconsolectl.receiver.model import Event, Message
from netconsolectl.receiver.sinks import SinkBase

DATA = Path(__file__).resolve().parents[1] / "data" / "crashes-6.12.jsonl"
SOURCE = ("10.0.2.15", 6665)


def captured() -> list[tuple[str, bytes]]:
    return [(d["step"], bytes.fromhex(d["hex"]))
            for d in map(json.loads, DATA.read_text().splitlines())]


class Collect(SinkBase):
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.messages: list[Message] = []

    def message(self, m: Message) -> None:
        self.messages.append(m)

    def event(self, e: Event) -> None:
        self.events.append(e)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def replay(datagrams: list[bytes], *, quiet_after: bool = True
           ) -> tuple[Collect, list[dict[str, Any]]]:
    sink = Collect()
    p = Processor([sink], timeout=0.5)
    t = 1_000.0
    for d in datagrams:
        t += 0.005
        p.feed(d, SOURCE, t)
        p.tick(t)
    if quiet_after:
        p.tick(t + 10)  # the source goes quiet (the panicked guest is gone)
    p.shutdown(t + 20)
    return sink, [e.data for e in sink.events if e.type == "crash"]


def test_each_real_report_is_one_event_of_its_kind() -> None:
    sink, crashes = replay([d for _, d in captured()])
    assert [c["kind"] for c in crashes] == ["hung_task", "oom", "panic"]
    hung, oom, panic = crashes
    assert hung["title"].startswith("INFO: task sh:")
    assert hung["title"].endswith(" blocked for more than 2 seconds.")
    assert hung["text"].splitlines()[-1] == " </TASK>" and hung["complete"] is True
    assert oom["text"].startswith("dd invoked oom-killer: ")
    assert oom["title"].startswith("Memory cgroup out of memory: Killed process ")
    assert "Memory cgroup stats for /oomtest:" in oom["text"] and oom["complete"] is True
    assert panic["title"] == "Kernel panic - not syncing: sysrq triggered crash"
    assert "sysrq_handle_crash" in panic["text"] and panic["complete"] is True
    assert "sysrq: Trigger a crash" not in panic["text"]
    for c in crashes:
        assert c["last_seq"] - c["first_seq"] + 1 == len(c["text"].splitlines())
    # everything still flowed as messages, in order, nothing lost
    assert len(sink.messages) == len(captured())
    assert not [e for e in sink.events if e.type == "lost"]
    # lines around the reports stayed out of them
    assert "Future hung task reports are suppressed" not in hung["text"]
    assert "EXT4-fs" not in hung["text"]


def test_real_report_with_a_lost_middle() -> None:
    steps = captured()
    oom = [d for s, d in steps if s == "oom"]
    start = next(i for i, d in enumerate(oom) if b"invoked oom-killer" in d)
    damaged = oom[: start + 10] + oom[start + 20 :]
    sink, crashes = replay(damaged)
    (c,) = crashes
    assert c["kind"] == "oom" and c["complete"] is False
    lost = [e for e in sink.events if e.type == "lost"]
    assert lost and lost[0].data["count"] == 10


def test_real_report_with_a_stranger_in_the_middle() -> None:
    hung = [d for s, d in captured() if s == "hung_task"]
    i = next(i for i, d in enumerate(hung) if b"Call Trace" in d)
    seq = int(hung[i].split(b",")[1])
    # renumber: the stranger takes a sequence number of the stream, as the kernel would
    def renumber(d: bytes, delta: int) -> bytes:
        prio, s, rest = d.split(b",", 2)
        return b"%s,%d,%s" % (prio, int(s) + delta, rest)
    stranger = b"6,%d,1,-;e1000e 0000:00:03.0 eth0: NIC Link is Down\n" % (seq + 1)
    stream = hung[: i + 1] + [stranger] + [renumber(d, 1) for d in hung[i + 1 :]]
    _, crashes = replay(stream)
    (c,) = crashes
    assert "NIC Link is Down" not in c["text"] and c["complete"] is True


def test_real_panic_cut_short_is_incomplete() -> None:
    panic = [d for s, d in captured() if s == "panic"]
    cut = [d for d in panic if b" </TASK>" not in d][:12]
    _, crashes = replay(cut)
    (c,) = crashes
    assert c["kind"] == "panic" and c["complete"] is False

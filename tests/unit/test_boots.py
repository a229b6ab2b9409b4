"""Stable message ids: the same record, the same id; a new boot, new ids; a restart of the
receiver with its boot table continues the boot."""

from __future__ import annotations

from pathlib import Path

from netconsolectl.receiver.boots import BootTable, id_prefix
from netconsolectl.receiver.core import Processor
from netconsolectl.receiver.model import Event, Message
from netconsolectl.receiver.sinks import SinkBase

SRC = ("192.0.2.7", 6666)
T0 = 1_750_000_000.0  # receive time of seq 100, sent 50 s after boot


class Keep(SinkBase):
    def __init__(self) -> None:
        self.messages: list[Message] = []

    def message(self, m: Message) -> None:
        self.messages.append(m)

    def event(self, e: Event) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def feed(p: Processor, seq: int, ts_s: float, now: float) -> str:
    p.feed(b"6,%d,%d,-;m\n" % (seq, int(ts_s * 1e6)), SRC, now)
    sink = p.sinks[0]
    assert isinstance(sink, Keep)
    return sink.messages[-1].id


def test_same_record_same_id_new_boot_new_ids() -> None:
    p = Processor([Keep()])
    a = feed(p, 100, 50.0, T0)
    assert a == id_prefix("192.0.2.7", int(T0 - 50)) + "100"
    # a duplicate datagram is an event, not a second message
    assert feed(p, 100, 50.0, T0 + 0.3) == a and p.counters["messages"] == 1
    b = feed(p, 101, 50.5, T0 + 0.5)
    assert b.split("-")[0] == a.split("-")[0]
    # the sender reboots: seq back to a low number; a new boot even when the estimate lands
    # on the previous boot's second (clocks that disagree, a very fast reboot)
    c = feed(p, 3, 50.2, T0 + 0.6)
    assert p.counters["resets"] == 1
    assert c.split("-")[0] != a.split("-")[0]
    assert c.split("-")[0] == id_prefix("192.0.2.7", int(T0 - 50) + 1)[:-1]


def test_receiver_jitter_does_not_change_the_boot() -> None:
    p = Processor([Keep()])
    first = feed(p, 100, 50.9, T0)  # estimate T0 - 50.9
    later = feed(p, 101, 60.0, T0 + 9.7)  # estimate T0 - 50.3: another second, same boot
    assert first.split("-")[0] == later.split("-")[0]


def test_boot_table_carries_the_boot_across_a_restart(tmp_path: Path) -> None:
    p = Processor([Keep()], boots=BootTable(str(tmp_path), "boots-w0.json"))
    a = feed(p, 100, 50.9, T0)
    p.shutdown(T0 + 1)
    assert (tmp_path / "boots-w0.json").exists()
    # listen starts again 100 s later; the estimate now falls in another second
    p2 = Processor([Keep()], boots=BootTable(str(tmp_path), "boots-w1.json"))
    b = feed(p2, 200, 150.2, T0 + 100.5)
    assert a.split("-")[0] == b.split("-")[0]
    # without the table, the fresh estimate names another boot
    p3 = Processor([Keep()])
    assert feed(p3, 200, 150.2, T0 + 100.5).split("-")[0] != a.split("-")[0]


def test_boot_table_does_not_continue_a_reboot(tmp_path: Path) -> None:
    p = Processor([Keep()], boots=BootTable(str(tmp_path)))
    a = feed(p, 100, 50.0, T0)
    p.shutdown(T0)
    # while listen was down the sender rebooted (an hour later) and is at seq 150 already
    p2 = Processor([Keep()], boots=BootTable(str(tmp_path)))
    b = feed(p2, 150, 30.0, T0 + 3600)
    assert a.split("-")[0] != b.split("-")[0]
    # seq behind the boot's first one: also a new boot
    p3 = Processor([Keep()], boots=BootTable(str(tmp_path)))
    assert feed(p3, 5, 1.0, T0 + 3600).split("-")[0] not in (a.split("-")[0],)


def test_basic_messages_get_unique_ids() -> None:
    k = Keep()
    p = Processor([k])
    p.feed(b"[ 1.0] plain\n", SRC, T0)
    p.feed(b"[ 1.0] plain\n", SRC, T0)
    ids = [m.id for m in k.messages]
    assert ids[0] != ids[1] and all(i.startswith("r") for i in ids)

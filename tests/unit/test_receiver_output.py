"""Processor and outputs: JSON schema, fast path equivalence, human escaping, files, syslog and
journald encodings."""

from __future__ import annotations

import itertools
import json
import os
import socket
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from netconsolectl.receiver.boots import id_prefix
from netconsolectl.receiver.core import Processor
from netconsolectl.receiver.fastpath import JsonFastPath
from netconsolectl.receiver.model import Event, Message
from netconsolectl.receiver.output import FdWriter, IsoTime
from netconsolectl.receiver.sinks.forward import (
    journal_entry,
    journal_field_name,
    open_forwarder,
    sd_name,
    sd_value,
    syslog_json,
    syslog_line,
)
from netconsolectl.receiver.sinks.jsonl import JsonSink, message_from_json
from netconsolectl.receiver.sinks.text import FileSink, HumanSink, escape, format_message

SRC = ("192.0.2.1", 6665)
NOW = 1_700_000_000.25

MESSAGE_KEYS = ["type", "host", "port", "received", "release", "facility", "level", "seq",
                "ts_usec", "cont", "text", "fields", "incomplete", "id"]


class Capture:
    def __init__(self, tmp_path: Path, name: str = "out") -> None:
        self.path = tmp_path / name
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        self.writer = FdWriter(self.fd)

    def __del__(self) -> None:
        os.close(self.fd)  # hypothesis makes hundreds: open ones would run the process out

    def lines(self) -> list[dict[str, Any]]:
        self.writer.flush()
        return [json.loads(x) for x in self.path.read_text().splitlines()]

    def raw(self) -> bytes:
        self.writer.flush()
        return self.path.read_bytes()


def json_processor(tmp_path: Path, name: str = "out", **kw: Any) -> tuple[Processor, Capture]:
    cap = Capture(tmp_path, name)
    return Processor([JsonSink(cap.writer)], **kw), cap


def test_json_message_schema(tmp_path: Path) -> None:
    p, cap = json_processor(tmp_path)
    p.feed(b"6.12.0,3,7,1234567,-;disk \\x22sda\\x22 failed\n DEVICE=b8:0\n", SRC, NOW)
    p.feed(b"[   1.000000] plain text\n", SRC, NOW)
    [ext, plain] = cap.lines()
    assert list(ext) == MESSAGE_KEYS
    assert ext == {
        "type": "message", "host": "192.0.2.1", "port": 6665,
        "received": "2023-11-14T22:13:20.250000Z", "release": "6.12.0", "facility": 0,
        "level": 3, "seq": 7, "ts_usec": 1234567, "cont": False, "text": 'disk "sda" failed',
        "fields": {"DEVICE": "b8:0"}, "incomplete": False,
        "id": id_prefix("192.0.2.1", 1_699_999_999) + "7",
    }
    assert list(plain) == MESSAGE_KEYS
    assert plain["text"] == "[   1.000000] plain text"
    for k in ("release", "facility", "level", "seq", "ts_usec", "cont"):
        assert plain[k] is None
    assert plain["fields"] == {}


def test_json_events_and_counters(tmp_path: Path) -> None:
    p, cap = json_processor(tmp_path, timeout=1.0)
    for seq in (1, 2, 5):
        p.feed(b"6,%d,%d,-;m\n" % (seq, seq), SRC, NOW)
    p.feed(b"6,6,6,-,ncfrag=0/10;abc", SRC, NOW)
    p.feed(b"6,6,6,-,ncfrag=9/3;abc", SRC, NOW)
    p.feed(b"6,3,1,-;late\n", SRC, NOW)
    p.tick(NOW + 5)
    p.shutdown(NOW + 5)
    lines = cap.lines()
    types = [x["type"] for x in lines]
    assert types.count("message") == 5  # 4 single + 1 incomplete after timeout
    malformed = next(x for x in lines if x["type"] == "malformed")
    assert malformed["reason"] == "ncfrag offset outside total"
    assert bytes.fromhex(malformed["head"]).startswith(b"6,6,6,-,ncfrag=9/3")
    reorder = next(x for x in lines if x["type"] == "reorder")
    assert reorder == {"type": "reorder", "host": "192.0.2.1", "port": 6665,
                       "received": "2023-11-14T22:13:20.250000Z", "seq": 3}
    lost = next(x for x in lines if x["type"] == "lost")
    assert (lost["first_seq"], lost["last_seq"], lost["count"]) == (4, 4, 1)
    incomplete = [x for x in lines if x["type"] == "message" and x["incomplete"]]
    assert len(incomplete) == 1 and incomplete[0]["text"] == "abc"
    c = p.counters
    assert (c["received"], c["messages"], c["fragments"], c["incomplete"], c["lost"],
            c["reordered"], c["malformed"]) == (6, 5, 1, 1, 1, 1, 1)


def test_reassembled_message_in_json(tmp_path: Path) -> None:
    p, cap = json_processor(tmp_path)
    body = b"A" * 1500 + b"\n msgid=9\n"
    n = len(body)
    p.feed(b"6.12.0,4,50,99,-,ncfrag=980/%d;" % n + body[980:], SRC, NOW)
    p.feed(b"6.12.0,4,50,99,-,ncfrag=0/%d;" % n + body[:980], SRC, NOW)
    [m] = cap.lines()
    assert m["text"] == "A" * 1500 and m["fields"] == {"msgid": "9"}
    assert m["incomplete"] is False and m["seq"] == 50 and m["release"] == "6.12.0"
    assert p.counters["reassembled"] == 1


# -- fast path equivalence ----------------------------------------------------------------------

text_st = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60),
    st.sampled_from(['say "hi"', "back\\x5cslash", "esc \\x1b[2J", "", "tab\\x09"]),
)


@st.composite
def datagram(draw: st.DrawFn) -> tuple[bytes, int]:
    src = draw(st.integers(0, 2))
    kind = draw(st.sampled_from(["next", "next", "next", "jump", "back", "plain", "fields",
                                 "release", "frag", "frag2", "frag2rev", "garbage", "lead0",
                                 "cont", "prio0", "prio300", "rel64", "rel65", "relodd",
                                 "numrel", "huge", "notrail", "highbyte", "warn", "endtrace",
                                 "frag3", "frag3", "frag3dup", "frag3miss", "frag3hold",
                                 "fragbad", "fragover", "fragkv", "fragwarn", "fraglead0",
                                 "oom", "stamp"]))
    return draw(st.just(kind)).encode() + b"|" + draw(text_st).encode(), src


def frag_pieces(prio: int, seq: int, body: bytes, cuts: int = 3) -> list[bytes]:
    """``body`` in up to ``cuts`` ncfrag pieces, in order."""
    n = len(body)
    bounds = sorted({0, n, *(n * k // cuts for k in range(1, cuts))})
    return [b"%d,%d,%d,-,ncfrag=%d/%d;" % (prio, seq, seq * 7, a, n) + body[a:b]
            for a, b in itertools.pairwise(bounds) if body[a:b]]


def fragment_datagrams(kind: bytes, prio: int, seq: int, text: bytes) -> tuple[list[bytes], bytes]:
    """The datagrams of the fragment kinds of :func:`datagram`: (sent now, held back to go
    after the next item)."""
    body = text + b"\n"
    if kind == b"fragkv":
        body += b" k=v\n"
    elif kind == b"fragwarn":
        body = b"WARNING: CPU: 0 PID: 1 at kernel/x.c:1 f+0x1/0x2\n"
        prio = 4
    pieces = frag_pieces(prio, seq, body)
    order = [2, 0, 1] if len(pieces) == 3 and seq % 2 else list(range(len(pieces)))
    pieces = [pieces[k] for k in order if k < len(pieces)]
    if kind == b"frag3dup":
        pieces.insert(1, pieces[0])
    elif kind == b"frag3miss" and len(pieces) > 1:
        del pieces[seq % len(pieces)]
    elif kind == b"fragbad":
        pieces[-1] = b"%d,%d,%d,-,ncfrag=9/3;x" % (prio, seq, seq * 7)
    elif kind == b"fragover":
        pieces[-1] = pieces[-1] + b"overrun"
    elif kind == b"fraglead0":
        pieces = [b"0" + x for x in pieces]
    if kind == b"frag3hold":
        return pieces[:-1], pieces[-1]
    return pieces, b""


def fast_path(proc: Processor, sink: JsonSink, loop: str) -> JsonFastPath:
    """The fast path with its C loop (``loop="C"``, which must be built) or the Python loop."""
    fast = JsonFastPath(proc, sink, lambda key: key)  # type: ignore[arg-type,return-value]
    if loop == "Python":
        fast._common = None
    else:
        assert fast._common is not None, "the C loop is not built (see test_c_loop_is_built)"
    return fast


def both_paths(tmp: Path, datagrams: list[tuple[bytes, Any]], loop: str,
               batch: int) -> tuple[bytes, bytes, Processor, Processor]:
    """``datagrams`` (payload, source) through the general path, and through the fast path
    (``loop``) in batches of ``batch`` as the server gives them: (general output, fast output,
    general processor, fast processor)."""
    general, gcap = json_processor(tmp, "general")
    for d, src in datagrams:
        general.feed(d, src, NOW)
    general.shutdown(NOW)
    cap = Capture(tmp, "fast")
    sink = JsonSink(cap.writer)
    fast_proc = Processor([sink])
    fast_proc.reception = general.reception  # ids of basic messages are per process
    fast = fast_path(fast_proc, sink, loop)
    for i in range(0, len(datagrams), batch):
        chunk = datagrams[i : i + batch]
        fast.feed_batch([d for d, _ in chunk], [k for _, k in chunk], NOW)
    fast_proc.shutdown(NOW)
    return gcap.raw(), cap.raw(), general, fast_proc


def test_c_loop_is_built() -> None:
    """The install the tests run from compiles the fast path's C loop, so that both loops are
    tested (a C compiler and the Python headers are needed; scripts/setup-env has them)."""
    from netconsolectl.receiver import _fastjson

    assert callable(_fastjson.common)


@pytest.mark.parametrize("loop", ["C", "Python"])
@settings(max_examples=200, deadline=None)
@given(st.lists(datagram(), max_size=60), st.integers(0, 191))
@example([(b"next|a", 0), (b"huge|b", 0), (b"next|c", 0), (b"next|d", 0)], 6)
@example([(b"next|a", 0), (b"warn|", 0), (b"next|in it", 0), (b"endtrace|", 0),
          (b"next|after", 0)], 6)
@example([(b"next|a", 1), (b"rel64|b", 1), (b"rel65|c", 1), (b"relodd|d", 1),
          (b"numrel|e", 1), (b"prio0|f", 1), (b"prio300|g", 1), (b"next|h", 1)], 6)
def test_fast_path_output_equals_general_path(
    tmp_path_factory: pytest.TempPathFactory, loop: str, items: list[tuple[bytes, int]],
    prio: int
) -> None:
    """Both loops of the fast path (C when built, and Python) write what the general path
    writes, byte for byte, and count the same."""
    tmp = tmp_path_factory.mktemp("fp")
    seqs = [100, 100, 100]
    datagrams: list[tuple[bytes, tuple[str, int]]] = []
    held: list[tuple[bytes, tuple[str, int]]] = []
    for spec, s in items:
        kind, _, text = spec.partition(b"|")
        seqs[s] += {b"jump": 3, b"back": -2}.get(kind, 1)
        seq = seqs[s]
        head = b"%d,%d,%d,-;" % (prio, seq, seq * 7)
        datagrams.extend(held)
        held = []
        if kind.startswith(b"frag") and kind not in (b"frag", b"frag2", b"frag2rev"):
            now_, later = fragment_datagrams(kind, prio, seq, text)
            datagrams.extend((x, (f"10.0.0.{s}", 6665)) for x in now_)
            if later:
                held.append((later, (f"10.0.0.{s}", 6665)))
            continue
        if kind == b"plain":
            d = text + b"\n"
        elif kind == b"fields":
            d = head + text + b"\n k=v\n"
        elif kind == b"release":
            d = b"6.1.0," + head + text + b"\n"
        elif kind == b"frag":
            d = b"%d,%d,%d,-,ncfrag=0/%d;" % (prio, seq, seq * 7, len(text) + 1) + text + b"\n"
        elif kind in (b"frag2", b"frag2rev"):
            body = text + b"\n"
            cut = len(body) // 2 or 1
            pieces = [
                b"%d,%d,%d,-,ncfrag=%d/%d;" % (prio, seq, seq * 7, a, len(body)) + body[a:b]
                for a, b in ((0, cut), (cut, len(body)))
                if body[a:b]
            ]
            if kind == b"frag2rev":
                pieces.reverse()
            datagrams.extend((p, (f"10.0.0.{s}", 6665)) for p in pieces[:-1])
            d = pieces[-1]
        elif kind == b"garbage":
            d = b"\xff\x00" + text
        elif kind == b"lead0":
            d = b"%d,0%d,%d,-;" % (prio, seq, seq) + text + b"\n"
        elif kind == b"cont":
            d = b"%d,%d,%d,c;" % (prio, seq, seq * 7) + text + b"\n"
        elif kind == b"prio0":  # a prio spelled with a leading zero
            d = b"0" + head + text + b"\n"
        elif kind == b"prio300":
            d = b"%d,%d,%d,-;" % (prio + 300, seq, seq * 7) + text + b"\n"
        elif kind in (b"rel64", b"rel65"):  # the longest release taken, and one too long
            d = b"r" * (64 if kind == b"rel64" else 65) + b"," + head + text + b"\n"
        elif kind == b"relodd":  # every character a release may have
            d = bytes(c for c in range(0x21, 0x7F) if c not in b',;"\\')[:64] + b"," + head \
                + text + b"\n"
        elif kind == b"numrel":  # digits that read as a release or as prio,seq,...
            d = b"%d,%d,%d,%d,-;" % (prio, prio, seq, seq * 7) + text + b"\n"
        elif kind == b"huge":  # numbers past 64 bits
            d = b"%d,%d,%d,-;" % (prio, seq + (1 << 64), seq * 7) + text + b"\n"
        elif kind == b"notrail":
            d = head + text
        elif kind == b"highbyte":
            d = head + text + b"\xc3\xa9\n"
        elif kind in (b"warn", b"endtrace"):  # a crash report opens and ends on this source
            line = (b"WARNING: CPU: 0 PID: 1 at kernel/x.c:1 f+0x1/0x2" if kind == b"warn"
                    else b"---[ end trace 0000000000000000 ]---")
            d = b"4,%d,%d,-;" % (seq, seq * 7) + line + b"\n"
        elif kind == b"oom":  # opens a report at any level
            d = head + b"sh invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE)\n"
        elif kind == b"stamp":  # a printk timestamp in front, as the basic format has it
            d = b"4,%d,%d,-;[   12.345678] " % (seq, seq * 7) + text + b"\n"
        else:
            d = head + text + b"\n"
        datagrams.append((d, (f"10.0.0.{s}", 6665)))
    datagrams.extend(held)
    want, got, general, fast_proc = both_paths(tmp, datagrams, loop, 7)
    assert got == want
    assert fast_proc.counters.values == general.counters.values


@pytest.mark.parametrize("loop", ["C", "Python"])
def test_numbers_at_the_edge_of_64_bits_are_read_as_the_general_path_reads_them(
    tmp_path: Path, loop: str
) -> None:
    """The C loop reads digits without a test per digit and compares a number of 20 digits
    with 2^64 - 1: sequence numbers and timestamps of single messages and of fragments (with and
    without leading zeros) just below, at and past 64 bits, and of 21 digits, come out as the
    general path writes them."""
    edge = [2**64 - 2, 2**64 - 1, 2**64, 10**19, 10**20 - 1, 10**20, 10**19 - 1]
    spellings = [b"%d" % v for v in edge] + [b"0" + b"%d" % v for v in edge]
    datagrams: list[bytes] = []
    # each source starts with a message its next one follows in sequence (0: a timestamp read
    # modulo 2^64 would follow it too)
    for n, spelled in enumerate(spellings):
        for field in ("seq", "ts"):
            src = (f"192.0.2.{n}", 6665 if field == "seq" else 6666)
            seq, ts = (spelled, b"7") if field == "seq" else (b"5", spelled)
            value = int(spelled)
            before = b"%d" % (value - 1) if field == "seq" else b"4"
            datagrams += [
                (b"6,%s,0,-;before\n" % before, src),
                (b"6,%s,%s,-;single\n" % (seq, ts), src),
                # in sequence only after a timestamp read modulo 2^64
                (b"6,%d,%s,-;after\n" % (int(seq) + 1, b"8" if field == "seq" else b"1"), src),
                (b"6,%s,%s,-,ncfrag=0/6;frag" % (seq, ts), src),
                (b"6,%s,%s,-,ncfrag=4/6;s\n" % (seq, ts), src),
            ]
    want, got, general, fast_proc = both_paths(tmp_path, datagrams, loop, len(datagrams))
    assert got == want
    assert fast_proc.counters.values == general.counters.values
    assert b"18446744073709551615" in got


@pytest.mark.parametrize("loop", ["C", "Python"])
def test_every_byte_that_needs_escaping_is_seen_wherever_it_is(tmp_path: Path, loop: str) -> None:
    """The fast path copies text it found safe as it is, scanning 64, 16 and 8 bytes at a time:
    a byte that JSON must escape (or that is not ASCII) at any position of a single message or
    of a fragment's piece, and the boundary bytes 0x20 and 0x7e, come out as the general path
    writes them."""
    datagrams: list[bytes] = []
    seq = 100
    for byte in b'\x00\x1f\x20\x7e\x7f\x80\xff"\\':
        for at in range(150):
            text = b"x" * at + bytes([byte]) + b"y" * (149 - at)
            seq += 1
            datagrams.append(b"6,%d,%d,-;" % (seq, seq * 7) + text + b"\n")
            seq += 1
            datagrams.extend(frag_pieces(6, seq, text * 2 + b"\n"))
    want, got, _, _ = both_paths(tmp_path, [(d, SRC) for d in datagrams], loop, 64)
    assert got == want
    assert b"\\u007f" in got or b"\\u007F" in got


@pytest.mark.parametrize("loop", ["C", "Python"])
def test_fast_path_keeps_the_least_recently_heard_order(tmp_path: Path, loop: str) -> None:
    """A message handled by the fast path makes its source the most recently heard, so a new
    source evicts another one: A keeps its state and its gap is still reported."""
    a, b, c = ("10.0.0.1", 6665), ("10.0.0.2", 6665), ("10.0.0.3", 6665)
    cap = Capture(tmp_path)
    sink = JsonSink(cap.writer)
    proc = Processor([sink], max_sources=2)
    fast = fast_path(proc, sink, loop)
    for batch in ([(a, 1), (b, 1)], [(a, 2), (a, 3)], [(c, 1)], [(a, 9)]):
        fast.feed_batch([b"6,%d,%d,-;m\n" % (seq, seq) for _, seq in batch],
                        [src for src, _ in batch], NOW)
    proc.shutdown(NOW + 10)
    lost = [x for x in cap.lines() if x["type"] == "lost"]
    assert [(x["host"], x["first_seq"], x["last_seq"]) for x in lost] == [("10.0.0.1", 4, 8)]
    assert proc.counters["evicted_sources"] == 1


# -- human output and files ---------------------------------------------------------------------


def test_escape_makes_text_inert() -> None:
    assert escape("a\x1b[31mred\x07\r\n") == "a\\x1b[31mred\\x07\\x0d\\x0a"
    assert escape("\u202eevil\x9b") == "\\u202eevil\\x9b"
    assert escape("[bold]markup[/bold] back\\slash") == "[bold]markup[/bold] back\\\\slash"


def test_human_line_with_colour_keeps_markup_literal(tmp_path: Path) -> None:
    cap = Capture(tmp_path)
    sink = HumanSink(cap.writer, color=True)
    m = Message("192.0.2.1", 6665, NOW, "[red]x[/red] \x1b]0;title\x07", None, 0, 3, 12,
                3_000_001, False, {"k": "v\x1b"})
    sink.message(m)
    sink.event(Event("lost", "192.0.2.1", 6665, NOW, {"first_seq": 1, "last_seq": 2,
                                                      "count": 2}))
    out = cap.raw().decode()
    line1, line2 = out.splitlines()
    assert "[red]x[/red] \\x1b]0;title\\x07" in line1
    assert "k=v\\x1b" in line1
    assert line1.count("\x1b") == 2  # the colour on/off codes only
    assert "lost 2 message(s), seq 1..2" in line2


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_human_line_plain(tmp_path: Path, utc: None) -> None:
    """The receive time (local, to the millisecond) and the source port lead the line; an IPv6
    source is bracketed so its port stays readable."""
    cap = Capture(tmp_path)
    sink = HumanSink(cap.writer, color=False)
    sink.message(Message("2001:db8::1", 6665, NOW, "hi", "6.1", 0, 6, 5, 12_500_000, True, {},
                         True))
    sink.message(Message("192.0.2.7", 6666, NOW, "[   12.345678] eth0: link up"))
    sink.event(Event("duplicate", "192.0.2.7", 6666, NOW, {"seq": 3}))
    assert cap.raw().decode().splitlines() == [
        "22:13:20.250 [2001:db8::1]:6665 [   12.500000] kern.info 6.1 #5 (cont): hi (incomplete)",
        "22:13:20.250 192.0.2.7:6666 kernel: [   12.345678] eth0: link up",
        "22:13:20.250 192.0.2.7:6666 -- seq 3 arrived again or too late --",
    ]


def test_format_message_basic() -> None:
    head, text, tail = format_message(Message("h", 1, NOW, "t"))
    assert (head, text, tail) == ("h:1 kernel: ", "t", "")


RAW = b"\x00\xff\xfe garbage"
LITERAL = b"\\xff garbage"  # the text backslash, x, f, f


def test_raw_bytes_are_unambiguous_and_lossless(tmp_path: Path, utc: None) -> None:
    """Bytes that are not UTF-8 never look like text that spells their escape."""
    import base64

    p, cap = json_processor(tmp_path)
    human = Capture(tmp_path, "human")
    p.sinks.append(HumanSink(human.writer, color=False))
    p.feed(RAW, SRC, NOW)
    p.feed(LITERAL, SRC, NOW)
    p.feed(b"6,1,1,-;ext \\xff\\x5cxff\n", SRC, NOW)  # byte 0xff, then the text \xff
    raw_msg, literal, ext = cap.lines()
    assert raw_msg["text"] == "\x00\ufffd\ufffd garbage"
    assert base64.b64decode(raw_msg["raw"]) == RAW
    assert literal["text"] == "\\xff garbage" and "raw" not in literal
    assert ext["text"] == "ext \ufffd\\xff" and base64.b64decode(ext["raw"]) == b"ext \xff\\xff"
    assert list(raw_msg) == [*MESSAGE_KEYS[:11], "raw", *MESSAGE_KEYS[11:]]
    lines = human.raw().decode().splitlines()
    assert [x.split(": ", 1)[1] for x in lines] == [
        "\\x00\\xff\\xfe garbage",
        "\\\\xff garbage",
        "ext \\xff\\\\xff",
    ]


def test_duplicate_is_reported_not_delivered_again(tmp_path: Path) -> None:
    p, cap = json_processor(tmp_path)
    human = Capture(tmp_path, "human")
    p.sinks.append(HumanSink(human.writer, color=False))
    for seq in (1, 2, 2, 3, 1):
        p.feed(b"6,%d,%d,-;m%d\n" % (seq, seq, seq), SRC, NOW)
    lines = cap.lines()
    assert [(x["type"], x.get("text") or x.get("seq")) for x in lines] == [
        ("message", "m1"), ("message", "m2"), ("duplicate", 2), ("message", "m3"),
        ("duplicate", 1),
    ]
    assert human.raw().decode().count("m2") == 1
    assert (p.counters["messages"], p.counters["duplicates"]) == (3, 2)


def test_no_color_and_color_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal, NO_COLOR turns colour off; --color always/never override auto."""
    import pty

    from netconsolectl.receiver.sinks.text import want_color

    master, slave = pty.openpty()
    try:
        msg = Message("192.0.2.1", 6665, NOW, "boom", None, 0, 3, 1, 1, False)
        monkeypatch.delenv("FORCE_COLOR", raising=False)
        monkeypatch.delenv("NO_COLOR", raising=False)
        monkeypatch.setenv("TERM", "xterm-256color")
        assert want_color("auto", slave) and not want_color("never", slave)
        monkeypatch.setenv("NO_COLOR", "1")
        assert not want_color("auto", slave) and want_color("always", slave)
        out = FdWriter(slave)
        HumanSink(out).message(msg)
        out.flush()
        assert b"\x1b" not in os.read(master, 4096)
        HumanSink(out, color=want_color("always", slave)).message(msg)
        out.flush()
        assert b"\x1b[" in os.read(master, 4096)
        monkeypatch.setenv("NO_COLOR", "")  # empty means unset (no-color.org)
        assert want_color("auto", slave)
        assert not want_color("auto", os.open(os.devnull, os.O_WRONLY))
    finally:
        os.close(master)
        os.close(slave)


def test_file_sink_one_file_per_host(tmp_path: Path) -> None:
    sink = FileSink(str(tmp_path / "logs"), max_open=1)
    sink.message(Message("192.0.2.1", 6665, NOW, "one"))
    sink.message(Message("fe80::1%eth0", 6665, NOW, "two"))
    sink.message(Message("192.0.2.1", 6665, NOW, "three"))
    sink.flush()
    sink.close()
    files = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert files == ["192.0.2.1.log", "fe80__1_eth0.log"]
    lines = (tmp_path / "logs" / "192.0.2.1.log").read_text().splitlines()
    assert [x.split(": ", 1)[1] for x in lines] == ["one", "three"]
    assert FileSink.filename("../../etc/passwd") == "_.._etc_passwd.log"
    assert FileSink.filename("..") == "unknown.log"


def test_iso_time() -> None:
    iso = IsoTime()
    assert iso(0.0) == "1970-01-01T00:00:00.000000Z"
    assert iso(NOW) == "2023-11-14T22:13:20.250000Z"


# -- forwarders ---------------------------------------------------------------------------------


def test_syslog_line_rfc5424() -> None:
    m = Message("192.0.2.7", 6665, NOW, "oops \x1b x", "6.12.0", 0, 2, 42, 99, False,
                {"DEVICE": "b8:0", 'we"ird key]': 'v"a]l\\'})
    line = syslog_line(m, IsoTime()).decode()
    assert line.startswith("<2>1 2023-11-14T22:13:20.250000Z 192.0.2.7 kernel - netconsole ")
    assert '[origin ip="192.0.2.7"]' in line
    assert '[netconsole@32473 port="6665" seq="42" ts_usec="99" cont="0" release="6.12.0"]' in line
    assert '[fields@32473 DEVICE="b8:0" we_ird_key_="v\\"a\\]l\\\\"]' in line
    assert line.endswith(" oops \\x1b x")
    plain = syslog_line(Message("::1", 1, NOW, "p"), IsoTime()).decode()
    assert plain.startswith("<6>1 ")


# -- the delivery process's shortcut from a spooled line to RFC 5424 (_fastjson.syslog_from_json)

_PLAIN = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=24)
#: Plain text, and text with what the shortcut leaves to Python: escapes, controls, non-ASCII.
_ANY_TEXT = _PLAIN | st.text(st.sampled_from(' a]="\\\x00\x1b\x7f\xe9\u2028'), max_size=12) \
    | st.text(max_size=12)
#: 2200-01-01T00:00:00Z: the shortcut leaves this and later times to Python.
Y2200 = 7_258_118_400
_RECEIVED = st.floats(0, 2**33 + 10**8) | st.sampled_from(
    [0.0, NOW, 951_782_400.5, 4_107_542_399.5, Y2200 - 0.000001, Y2200, 2**31 + 0.5])


@st.composite
def spooled_message(draw: st.DrawFn) -> Message:
    """A message as the receive loops may spool it: basic or extended, any text and fields."""
    extended = draw(st.booleans())
    meta: dict[str, Any] = {}
    if extended:
        meta = {"release": draw(st.none() | _ANY_TEXT), "facility": draw(st.integers(0, 1200)),
                "level": draw(st.integers(0, 1200)), "seq": draw(st.integers(0, 2**66)),
                "ts_usec": draw(st.integers(0, 2**66)), "cont": draw(st.booleans())}
    host = draw(st.sampled_from(["192.0.2.7", "2001:db8::1", "fe80::1%eth0", "a b", ""])
                | _ANY_TEXT | st.text(st.just("h"), min_size=250, max_size=260))
    return Message(
        host, draw(st.integers(0, 65535)), draw(_RECEIVED), draw(_ANY_TEXT),
        fields=draw(st.dictionaries(_ANY_TEXT | st.sampled_from(["hostname", "a" * 40]),
                                    _ANY_TEXT, max_size=3)),
        incomplete=draw(st.booleans()), raw=draw(st.none() | st.binary(max_size=3)),
        id=draw(st.sampled_from(["", "2b2839a4196b5609-42"]) | _PLAIN), **meta,
    )


def spooled(m: Message) -> bytes:
    """The record the forwarding process spools for m: its JSON line, without the newline."""
    fd = os.open(os.devnull, os.O_WRONLY)
    try:
        return JsonSink(FdWriter(fd)).encode(m).encode().rstrip(b"\n")
    finally:
        os.close(fd)


def python_syslog(record: bytes) -> bytes:
    return syslog_line(message_from_json(json.loads(record)), IsoTime())


def python_otlp(record: bytes) -> bytes:
    from netconsolectl.receiver.sinks.otlp import encode_message

    return encode_message(message_from_json(json.loads(record)))


def shortcuts() -> dict[str, tuple[Callable[[bytes], bytes | None], Callable[[bytes], bytes]]]:
    """The C shortcuts (which the tests' install builds: test_c_loop_is_built) and the Python
    paths they stand in for."""
    pytest.importorskip("opentelemetry.proto.logs.v1.logs_pb2")
    from netconsolectl.receiver.sinks.otlp import otlp_json

    syslog, otlp = syslog_json(), otlp_json()
    assert syslog is not None and otlp is not None
    return {"syslog": (syslog, python_syslog), "otlp": (otlp, python_otlp)}


KINDS = pytest.mark.parametrize("kind", ["syslog", "otlp"])


@KINDS
def test_the_shortcut_takes_the_lines_the_receive_loops_write(kind: str) -> None:
    shortcut, python = shortcuts()[kind]
    common = Message("192.0.2.7", 6665, NOW, "usb 1-1: new device", None, 0, 6, 42, 99, False,
                     id="2b2839a4196b5609-42")
    variants = [
        common,
        Message("2001:db8::1", 1, 951_782_400.5, "x", "6.12.0-1-amd64]", 30, 7, 0, 0, True,
                {"hostname": "web1", "a b=c]": "v]"}, id=""),
        Message("fe80::1%eth0", 65535, Y2200 - 0.000001, " ", "r", 23, 0, 2**63 - 1, 2**63 - 1,
                False, {"k" * 40: "", "hostname": ""}, id="x"),
    ]
    for m in variants:
        record = spooled(m)
        assert shortcut(record) == python(record), record


@KINDS
@settings(max_examples=600, deadline=None)
@given(m=spooled_message())
@example(m=Message("192.0.2.7", 1, Y2200, "late", None, 0, 6, 1, 1, False))
@example(m=Message("192.0.2.7", 1, NOW, "fields", None, 0, 6, 1, 1, False,
                   {"hostname": "a", "b": "c]"}))
def test_the_shortcut_writes_what_the_python_path_writes(kind: str, m: Message) -> None:
    """Whatever a shortcut takes, it writes the bytes of the Python path; what it leaves
    (None) is a line the Python path must see: escapes, raw bytes, an incomplete message, a
    basic-format one, a time it could move; for syslog a host the line must change, for OTLP
    numbers past int64 (strings there) and levels past 7."""
    shortcut, python = shortcuts()[kind]
    record = spooled(m)
    got = shortcut(record)
    if got is not None:
        assert got == python(record)
    plain = all(0x20 <= ord(c) < 0x7F and c not in '"\\' for c in
                [*m.host, *m.text, *(m.release or ""), *m.id, *"".join(m.fields), *"".join(
                    m.fields.values())])
    taken = (plain and m.seq is not None and not m.incomplete and m.raw is None and
             m.facility is not None and m.facility < 1000 and m.level is not None and
             m.level < 1000 and m.seq < 10**20 and m.ts_usec is not None and
             m.ts_usec < 10**20 and m.received < Y2200 - 0.000001)
    if kind == "syslog":
        taken = taken and 0 < len(m.host) <= 255 and " " not in m.host
    else:
        taken = taken and m.level is not None and m.level < 8 and m.seq < 2**63 and \
            m.ts_usec is not None and m.ts_usec < 2**63
    if taken:
        assert got is not None, record


@KINDS
@pytest.mark.parametrize(("received", "taken"), [
    ("2096-02-29T12:00:00.000001Z", True), ("2000-02-29T00:00:00.999999Z", True),
    ("2199-12-31T23:59:59.999999Z", True), ("1970-01-01T00:00:00.000000Z", True),
    ("2100-02-29T00:00:00.000000Z", False),  # not a leap year: the Python path refuses it
    ("2026-02-30T00:00:00.000000Z", False), ("2026-12-07T12:00:60.000000Z", False),
    ("2026-12-07T24:00:00.000000Z", False), ("1969-12-31T23:59:59.999999Z", False),
    ("4000-01-01T00:00:00.000001Z", False),  # a float there cannot keep the microsecond
    ("2026-12-07T12:00:00.00000Z", False), ("2026-12-07 12:00:00.000000Z", False),
])
def test_the_shortcut_takes_the_times_the_python_path_gives_back_unchanged(
    kind: str, received: str, taken: bool
) -> None:
    shortcut, python = shortcuts()[kind]
    line = spooled(Message("192.0.2.7", 1, NOW, "t", None, 0, 6, 1, 1, False))
    record = line.replace(b"2023-11-14T22:13:20.250000Z", received.encode())
    got = shortcut(record)
    assert (got is not None) == taken
    if taken:
        assert got == python(record)


@KINDS
@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_the_shortcut_takes_no_line_the_python_path_reads_otherwise(
    kind: str, data: st.DataObject
) -> None:
    """A spooled line with a byte changed, cut or added: what the shortcut still takes is JSON
    that the Python path reads and writes the same."""
    shortcut, python = shortcuts()[kind]
    record = bytearray(spooled(data.draw(spooled_message())))
    at = data.draw(st.integers(0, len(record)))
    edit = data.draw(st.sampled_from(["set", "cut", "add"]))
    byte = data.draw(st.sampled_from(b'0 9,:"{}[]\\n-.eEtnul\x00\xff'))
    if edit == "set" and at < len(record):
        record[at] = byte
    elif edit == "cut":
        del record[at:]
    else:
        record.insert(at, byte)
    got = shortcut(bytes(record))
    if got is not None:
        assert got == python(bytes(record))


def test_relp_answers_acknowledge_in_order_whatever_their_shape() -> None:
    """rsyslog's plain ``200 OK`` answers are taken by comparison, everything else by the
    parser: both in one buffer, cut anywhere, hints skipped; a wrong order or a refusal is an
    error."""
    from netconsolectl.receiver.sinks.relp import RelpTransport, TransportError

    ours, server = socket.socketpair()
    t = RelpTransport("relp://192.0.2.1", "192.0.2.1", 2514)
    t.sock = ours
    try:
        assert t.send([b"m%d" % i for i in range(7)]) == 0
        assert server.recv(1 << 16).startswith(b"1 syslog 2 m0\n2 syslog 2 m1\n")
        server.sendall(b"1 rsp 6 200 OK\n2 rsp 8 200 fine\n0 hint 3 abc\n3 rsp 6 200 OK\n"
                       b"4 rsp 6 200 OK\n5 rsp 6 20")
        assert t.poll(1.0) == 4
        assert t.in_flight() == 3
        server.sendall(b"0 OK\n6 rsp 6 200 OK\n")
        assert t.poll(1.0) == 2
        server.sendall(b"8 rsp 6 200 OK\n")
        with pytest.raises(TransportError, match="unexpected answer 8 rsp"):
            t.poll(1.0)
        t.inflight.clear()
        t.inflight.extend([7, 8])
        t.rbuf.clear()
        server.sendall(b"7 rsp 6 200 OK\n8 rsp 9 500 error\n")
        with pytest.raises(TransportError, match="message refused"):
            t.poll(1.0)
        assert list(t.inflight) == [8]
    finally:
        ours.close()
        server.close()


def test_sd_helpers() -> None:
    assert sd_name("a b=c]d\"e" + "x" * 40) == ("a_b_c_d_e" + "x" * 40)[:32]
    assert sd_value('a"b]c\\') == 'a\\"b\\]c\\\\'


def test_journal_entry_encoding() -> None:
    raw = journal_entry([("MESSAGE", "one\ntwo"), ("PRIORITY", "3")])
    assert raw == b"MESSAGE\n" + struct.pack("<Q", 7) + b"one\ntwo\nPRIORITY=3\n"
    assert journal_field_name("taskname") == "TASKNAME"
    assert journal_field_name("_x-y") == "X_Y"
    assert journal_field_name("1abc") == "F1ABC"


def test_forward_urls() -> None:
    from netconsolectl.errors import InvalidInput, Unavailable

    with pytest.raises(InvalidInput):
        open_forwarder("http://x")
    with pytest.raises(InvalidInput):
        open_forwarder("syslog+udp://")
    with pytest.raises(Unavailable):
        open_forwarder("journald:///nonexistent/socket")
    s = open_forwarder("syslog+udp://127.0.0.1:5140")
    assert s.addr == ("127.0.0.1", 5140)
    s.close()


# -- the crash detector's openers reach both loops ------------------------------------------------


def crash_events(tmp_path: Path, loop: str, lines: list[bytes], table: Any = None) -> list[Any]:
    """Feed ``prio,seq,ts,-;text`` lines of one source (seq from 1) through the fast path."""
    from netconsolectl.receiver.crash import CrashDetector

    cap = Capture(tmp_path, loop)
    sink = JsonSink(cap.writer)
    proc = Processor([sink])
    if table is not None:
        proc.crash = CrashDetector(proc._crash, settle=2.0, table=table)
    fast = fast_path(proc, sink, loop)
    datagrams = [b"%s,%d,%d,-;" % (prio, seq, seq) + text + b"\n"
                 for seq, (prio, text) in enumerate((x.split(b"|", 1) for x in lines), 1)]
    fast.feed_batch(datagrams, [SRC] * len(datagrams), NOW)
    proc.shutdown(NOW + 10)
    return [x for x in cap.lines() if x["type"] == "crash"]


@pytest.mark.parametrize("loop", ["C", "Python"])
def test_an_opener_added_in_python_reaches_both_loops(tmp_path: Path, loop: str) -> None:
    """A new kind of first line is one row of crash.OPENERS: the C loop gets the table at
    start-up and leaves the line to the detector, with no change to the C code."""
    from netconsolectl.receiver.crash import OPENERS, Opener, OpenerTable

    lines = [b"6|hello", b"6|hello", b"3|Frobnicator stalled on cpu 1", b"4| dump+0x1/0x2",
             b"6|after"]
    assert crash_events(tmp_path, loop, lines) == []
    table = OpenerTable((*OPENERS, Opener("frob", "Frobnicator stalled", "F", "bug")))
    [crash] = crash_events(tmp_path, loop, lines, table)
    assert crash["kind"] == "bug" and crash["title"] == "Frobnicator stalled on cpu 1"


@pytest.mark.parametrize("loop", ["C", "Python"])
def test_oom_report_at_any_level_reaches_the_detector(tmp_path: Path, loop: str) -> None:
    """The OOM killer's first line opens a report at any level; the fast path once left it
    out from level 5 on (its own lowest level), so such a report went unseen."""
    lines = [b"6|hello", b"6|hello",
             b"6|stress invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE), order=0",
             b"6|Mem-Info:",
             b"6|Out of memory: Killed process 1234 (stress) total-vm:1024kB, anon-rss:512kB",
             b"6|after"]  # fmt: skip
    [crash] = crash_events(tmp_path, loop, lines)
    assert crash["kind"] == "oom" and crash["complete"] is True


# -- fragments: bad inputs, bounds, incomplete ----------------------------------------------------

PATHS = ["general", "C", "Python"]


def feeder(
    tmp_path: Path, path: str, name: str = "", **kw: Any
) -> tuple[Processor, Capture, Any]:
    """A processor and a function feeding it ``(datagram, source)`` pairs by the given path
    (its output in the file ``name``, by default the path's name)."""
    cap = Capture(tmp_path, name or path)
    sink = JsonSink(cap.writer)
    proc = Processor([sink], **kw)
    if path == "general":
        return proc, cap, lambda pairs: [proc.feed(d, s, NOW) for d, s in pairs]
    fast = fast_path(proc, sink, path)
    return proc, cap, lambda pairs: fast.feed_batch([d for d, _ in pairs], [s for _, s in pairs],
                                                    NOW)


@pytest.mark.parametrize("path", PATHS)
def test_bad_fragments_are_counted(tmp_path: Path, path: str) -> None:
    proc, cap, feed = feeder(tmp_path, path)
    feed([(b"6,1,1,-;ok\n", SRC),
          (b"6,2,2,-,ncfrag=x/10;abc", SRC),  # malformed ncfrag
          (b"6,3,3,-,ncfrag=12/10;abc", SRC),  # offset past the total
          (b"6,4,4,-,ncfrag=0/99999999;abc", SRC),  # total past any message
          (b"6,5,5,-,ncfrag=0/10;", SRC),  # no body
          (b"6,6,6,-,ncfrag=8/10;abcdef", SRC),  # body past the total
          (b"6,7,7,-,ncfrag=0/3;ab\n", SRC)])  # fmt: skip
    proc.shutdown(NOW)
    c = proc.counters
    assert (c["fragment_errors"], c["fragment_overruns"], c["malformed"]) == (4, 1, 5)
    messages = [x["text"] for x in cap.lines() if x["type"] == "message"]
    assert messages == ["ok", "ab"]


@pytest.mark.parametrize("path", PATHS)
def test_a_source_flooding_message_ids_only_displaces_its_own(tmp_path: Path, path: str) -> None:
    """One source opening a new fragment set per datagram keeps at most MAX_SETS_PER_SOURCE
    open (the oldest given up and counted); another source's message still completes."""
    from netconsolectl.receiver.reassembly import ENTRY_OVERHEAD, MAX_SETS_PER_SOURCE

    proc, cap, feed = feeder(tmp_path, path)
    other = ("192.0.2.9", 6665)
    flood = [(b"6,%d,%d,-,ncfrag=0/2000;" % (1000 + k, k) + b"x" * 900, SRC) for k in range(500)]
    feed([(b"6,1,1,-,ncfrag=0/4;ab", other), *flood, (b"6,1,1,-,ncfrag=2/4;c\n", other)])
    assert len(proc.reassembler) == MAX_SETS_PER_SOURCE
    assert proc.reassembler.bytes == MAX_SETS_PER_SOURCE * (900 + ENTRY_OVERHEAD)
    assert proc.counters["fragment_sets_limited"] == 500 - MAX_SETS_PER_SOURCE
    done = [x for x in cap.lines() if x["type"] == "message" and x["host"] == other[0]]
    assert [(x["text"], x["incomplete"]) for x in done] == [("abc", False)]


@pytest.mark.parametrize("path", PATHS)
def test_incomplete_message_is_not_reported_as_reordered(tmp_path: Path, path: str) -> None:
    """A message whose last fragment never came is given up after the timeout, when later
    messages of its source have long passed: it is reported and counted as incomplete, not as
    a reordered datagram, and its seq is not lost either."""
    proc, cap, feed = feeder(tmp_path, path, timeout=1.0)
    feed([(b"6,1,1,-;a\n", SRC), (b"6,2,2,-,ncfrag=0/10;bcd", SRC), (b"6,3,3,-;e\n", SRC)])
    proc.tick(NOW + 5)
    proc.shutdown(NOW + 5)
    lines = cap.lines()
    assert [x["type"] for x in lines] == ["message", "message", "message"]
    assert [(x["seq"], x["incomplete"]) for x in lines] == [(1, False), (3, False), (2, True)]
    c = proc.counters
    assert (c["incomplete"], c["reordered"], c["lost"]) == (1, 0, 0)


@pytest.mark.parametrize("path", PATHS)
def test_a_reboot_is_delivered_not_dropped_as_duplicates(tmp_path: Path, path: str) -> None:
    """The new boot's messages (seqs just below the last seen, kernel timestamps from zero)
    are delivered under a new boot id and the change is counted as a reset."""
    proc, cap, feed = feeder(tmp_path, path)
    old = [(b"6,%d,%d,-;old boot\n" % (s, 500_000_000 + s), SRC) for s in range(1000, 1100)]
    feed(old)
    proc.tick(NOW + 30)
    cap_new = [(b"6,%d,%d,-;new boot\n" % (s, 5_000_000 + s), SRC) for s in range(1090, 1095)]
    if path == "general":
        for d, s in cap_new:
            proc.feed(d, s, NOW + 30)
    else:
        fast = proc.done_hook.__self__  # type: ignore[union-attr]
        fast.feed_batch([d for d, _ in cap_new], [s for _, s in cap_new], NOW + 30)
    proc.shutdown(NOW + 30)
    lines = cap.lines()
    new = [x for x in lines if x["type"] == "message" and x["text"] == "new boot"]
    assert [x["seq"] for x in new] == list(range(1090, 1095))
    old_ids = {x["id"].split("-")[0] for x in lines if x.get("text") == "old boot"}
    assert old_ids.isdisjoint(x["id"].split("-")[0] for x in new)
    c = proc.counters
    assert (c["resets"], c["duplicates"], c["messages"]) == (1, 0, 105)


@pytest.mark.parametrize("path", PATHS)
def test_per_host_counts_count_messages_not_fragments(tmp_path: Path, path: str) -> None:
    """--metrics and --silence count messages per host: a message of three fragments is one,
    whichever loop reassembled it (the first message of a source goes the general way)."""
    proc, _cap, feed = feeder(tmp_path, path, host_stats=True)
    pairs = [(b"6,1,1,-;single\n", SRC)]
    for seq in range(2, 6):
        body = b"x" * 30 + b"\n"
        pairs += [(b"6,%d,%d,-,ncfrag=%d/%d;" % (seq, seq, a, len(body)) + body[a : a + 11], SRC)
                  for a in (0, 11, 22)]
    pairs.append((b"6,6,6,-;single\n", SRC))
    feed(pairs)
    messages, _lost, _crashes, _notes = proc.take_host_stats()
    assert dict(messages) == {SRC[0]: 6}
    assert proc.counters["messages"] == 6 and proc.counters["received"] == 14


@pytest.mark.parametrize("path", PATHS)
def test_oom_line_split_anywhere_over_fragments_reaches_the_detector(
    tmp_path: Path, path: str
) -> None:
    """The OOM killer's words may fall across two fragments (or at the very start or end of the
    text): a message the detector may open a report on never takes the fast way."""
    line = b"bash invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE), order=0\n"
    start = line.index(b" invoked")
    texts = [(b"6| invoked oom-killer: x", []), (b"6|x invoked oom-killer: ", []),
             (b"6| invoked oom-killer: ", [])]
    texts += [(b"", [cut]) for cut in range(start - 1, start + 23)]
    for text, cuts in texts:
        proc, cap, feed = feeder(tmp_path, path, f"{path}-{cuts}-{len(text)}")
        pairs = [(b"6,1,1,-;hello\n", SRC), (b"6,2,2,-;hello\n", SRC)]
        if cuts:
            pieces = [(0, cuts[0]), (cuts[0], len(line))]
            pairs += [(b"6,3,3,-,ncfrag=%d/%d;" % (a, len(line)) + line[a:b], SRC)
                      for a, b in pieces]
        else:
            pairs.append((b"6,3,3,-;" + text[2:] + b"\n", SRC))
        pairs.append((b"6,4,4,-;Out of memory: Killed process 1 (bash)\n", SRC))
        feed(pairs)
        proc.shutdown(NOW + 10)
        kinds = [x["kind"] for x in cap.lines() if x["type"] == "crash"]
        assert kinds == ["oom"], (text, cuts)


@pytest.mark.parametrize("path", PATHS)
def test_a_test_line_reaches_the_delivery_notes_by_every_path(tmp_path: Path, path: str) -> None:
    """``netconsolectl test --expect-listen http://`` asks for a token that only the general
    path notes: the fast loops must hand a test line over (at warning level, where they would
    otherwise write it out themselves), with or without crash detection."""
    token = "netconsolectl-test-0123456789abcdef"
    for crashes in (True, False):
        proc, _cap, feed = feeder(tmp_path, path, f"{path}-{crashes}", host_stats=True,
                                  crashes=crashes)
        feed([(b"6,1,1,-;first\n", SRC), (b"4,2,2,-;warm\n", SRC),
              (b"4,3,3,-;netconsolectl test %s from h to t1\n" % token.encode(), SRC)])
        notes = proc.take_host_stats()[3]
        assert [t[0] for t in notes[SRC[0]]["t"]] == [token], (crashes, notes)


def read_all(fd: int, into: list[bytes]) -> None:
    while chunk := os.read(fd, 1 << 16):
        into.append(chunk)


def test_a_spilling_writer_never_waits_for_a_slow_reader_within_its_bound() -> None:
    """The receiving process's pipe to its forwarding process: when the reader is behind, the
    lines wait in memory (up to ``spill``) and the receive loop goes on; they follow in order."""
    import threading

    r, w = os.pipe()
    os.set_blocking(w, False)
    out = FdWriter(w, spill=8 << 20)
    lines = [b'{"n":%d}\n' % i for i in range(200_000)]  # about 2.2 MiB: more than a pipe holds
    for line in lines:
        out.write(line)
    out.flush()  # nobody reads yet: it would block without the spill
    assert out.held_bytes > 0
    got: list[bytes] = []
    reader = threading.Thread(target=read_all, args=(r, got))
    reader.start()
    out.flush(wait=True)
    assert out.held_bytes == 0
    os.close(w)
    reader.join()
    os.close(r)
    assert b"".join(got) == b"".join(lines)


def test_a_spilling_writer_waits_past_its_bound() -> None:
    import threading

    r, w = os.pipe()
    os.set_blocking(w, False)
    out = FdWriter(w, spill=256 << 10)
    got: list[bytes] = []
    started = threading.Event()

    def slow_reader() -> None:
        started.wait()
        read_all(r, got)

    reader = threading.Thread(target=slow_reader)
    reader.start()
    data = b"x" * 1023 + b"\n"
    threading.Timer(0.3, started.set).start()
    for _ in range(1024):  # 1 MiB: past the bound, it waits for the reader
        out.write(data)
        assert out.held_bytes <= 256 << 10
    assert started.is_set()
    out.flush(wait=True)
    os.close(w)
    reader.join()
    os.close(r)
    assert b"".join(got) == data * 1024


def test_a_terminal_that_hung_up_is_a_closed_output_not_a_failing_disk() -> None:
    """``listen`` printing to the terminal of an ssh session that ended: writes to the tty fail
    with EIO, which on a file means a failing disk (lines counted, a warning, writing tried
    again). On a terminal the output is gone, as a pipe whose reader closed."""
    from netconsolectl.receiver.output import DiskTrouble

    said: list[str] = []
    trouble = DiskTrouble("output", said.append)
    master, slave = os.openpty()
    try:
        out = FdWriter(slave, trouble=trouble)
        out.write(b"before\n")
        out.flush()
        assert os.read(master, 100).startswith(b"before")
        os.close(master)  # the terminal hangs up
        master = -1
        out.write(b"after\n")
        out.flush()
        assert out.broken
        assert (trouble.dropped, said) == (0, [])
    finally:
        os.close(slave)
        if master >= 0:
            os.close(master)

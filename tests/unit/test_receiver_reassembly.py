"""ncfrag reassembly: any order, duplicates, timeouts, memory bounds."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netconsolectl.receiver.reassembly import Reassembler
from netconsolectl.receiver.wire import Extended, Header, parse_datagram

SRC = ("192.0.2.1", 6665)


def fragments(body: bytes, cuts: list[int], *, seq: int = 7, release: str = "") -> list[bytes]:
    """Datagrams the way netconsole splits ``body``: header repeated, ncfrag=off/total."""
    points = sorted({c for c in cuts if 0 < c < len(body)})
    bounds = [0, *points, len(body)]
    rel = f"{release}," if release else ""
    return [
        f"{rel}6,{seq},1000,-,ncfrag={a}/{len(body)};".encode() + body[a:b]
        for a, b in itertools.pairwise(bounds)
    ]


def feed(r: Reassembler, datagrams: list[bytes], now: float = 0.0) -> list[bytes]:
    out = []
    for d in datagrams:
        p = parse_datagram(d)
        assert isinstance(p, Extended) and p.header.frag is not None
        for done in r.add(SRC, p.header, p.body, now):
            assert done.complete
            out.append(done.body)
    return out


def test_in_order() -> None:
    body = b"x" * 2500 + b"\n cpu=1\n"
    r = Reassembler()
    assert feed(r, fragments(body, [900, 1800])) == [body]
    assert len(r) == 0 and r.bytes == 0


def test_reverse_order_and_duplicates() -> None:
    body = b"abcdefghij\n"
    frags = fragments(body, [3, 6])
    r = Reassembler()
    assert feed(r, [frags[2], frags[2], frags[1], frags[1]]) == []
    assert r.duplicates == 2
    assert feed(r, [frags[0]]) == [body]


def test_timeout_emits_incomplete() -> None:
    body = b"0123456789\n"
    frags = fragments(body, [4, 8])
    r = Reassembler(timeout=1.0)
    feed(r, [frags[0], frags[2]], now=10.0)
    assert r.expire(10.5) == []
    [done] = r.expire(11.0)
    assert not done.complete and done.reason == "timeout"
    assert done.body == b"0123" + b"89\n"
    assert len(r) == 0 and r.bytes == 0


def test_limits_evict_oldest() -> None:
    r = Reassembler(max_messages=2)
    h = [parse_datagram(f"6,{s},1,-,ncfrag=0/10;ab".encode()) for s in range(3)]
    out = []
    for p in h:
        assert isinstance(p, Extended)
        out += r.add(SRC, p.header, p.body, 0.0)
    assert len(out) == 1 and out[0].header.seq == 0 and out[0].reason == "evicted"
    assert r.evicted == 1
    r2 = Reassembler(max_bytes=2000)
    big = parse_datagram(b"6,1,1,-,ncfrag=0/5000;" + b"z" * 900)
    big2 = parse_datagram(b"6,2,1,-,ncfrag=0/5000;" + b"z" * 900)
    assert isinstance(big, Extended) and isinstance(big2, Extended)
    assert r2.add(SRC, big.header, big.body, 0.0) == []
    [ev] = r2.add(SRC, big2.header, big2.body, 0.0)
    assert ev.header.seq == 1
    assert r2.bytes <= 2000


def test_same_seq_different_message_supersedes() -> None:
    r = Reassembler()
    a = parse_datagram(b"6,5,100,-,ncfrag=0/10;abc")
    b = parse_datagram(b"6,5,200,-,ncfrag=0/4;ab")
    assert isinstance(a, Extended) and isinstance(b, Extended)
    r.add(SRC, a.header, a.body, 0.0)
    [old] = r.add(SRC, b.header, b.body, 0.0)
    assert old.reason == "superseded" and not old.complete


def test_flush() -> None:
    r = Reassembler()
    p = parse_datagram(b"6,5,100,-,ncfrag=3/10;abc")
    assert isinstance(p, Extended)
    r.add(SRC, p.header, p.body, 0.0)
    [d] = r.flush()
    assert d.reason == "shutdown" and d.body == b"abc"


def test_header_fields_are_kept() -> None:
    body = b"hello\n"
    frags = fragments(body, [2], release="6.12.0")
    r = Reassembler()
    p = parse_datagram(frags[1])
    assert isinstance(p, Extended)
    r.add(SRC, p.header, p.body, 0.0)
    p0 = parse_datagram(frags[0])
    assert isinstance(p0, Extended)
    [done] = r.add(SRC, p0.header, p0.body, 0.0)
    assert done.header.release == "6.12.0" and done.header.seq == 7


@settings(max_examples=300, deadline=None)
@given(
    body=st.binary(min_size=1, max_size=4000).map(lambda b: b.replace(b";", b":")),
    cuts=st.lists(st.integers(min_value=1, max_value=3999), max_size=12),
    data=st.data(),
)
def test_any_split_any_order_reassembles(body: bytes, cuts: list[int], data: st.DataObject) -> None:
    frags = fragments(body, cuts)
    order = data.draw(st.permutations(frags))
    dups = data.draw(st.lists(st.sampled_from(frags), max_size=4))
    r = Reassembler()
    out = feed(r, [*order, *dups])
    assert out == [body]
    assert len(r) == 0


def test_header_dataclass_properties() -> None:
    h = Header(None, 30, 1, 2, False)
    assert (h.facility, h.level) == (3, 6)


# -- the C module's reassembler follows this one --------------------------------------------------

op_st = st.one_of(
    st.tuples(st.just("add"), st.integers(0, 3), st.integers(0, 12), st.integers(0, 1),
              st.integers(0, 40), st.integers(1, 40), st.binary(min_size=1, max_size=30)),
    st.tuples(st.just("expire"), st.floats(0, 3)),
)


@settings(max_examples=300, deadline=None)
@given(ops=st.lists(op_st, max_size=80), limits=st.tuples(st.integers(1, 6), st.integers(1, 4),
                                                          st.integers(400, 3000),
                                                          st.integers(1, 6)))
def test_c_reassembler_follows_the_reference(
    ops: list[tuple[Any, ...]], limits: tuple[int, int, int, int]
) -> None:
    """The same pieces (any order, duplicates, overlaps, superseded messages, several sources)
    and clock give the same messages, in the same order, with the same counts, from the C
    module's reassembler as from this module's, with the limits small enough to be reached."""
    from netconsolectl.receiver import reassembly

    max_messages, per_source, max_bytes, max_pieces = limits
    with pytest.MonkeyPatch.context() as m:
        m.setattr(reassembly, "MAX_SETS_PER_SOURCE", per_source)
        m.setattr(reassembly, "MAX_PIECES", max_pieces)
        m.setattr(reassembly, "RECENT_PER_SOURCE", 2)
        m.setattr(reassembly, "SOURCE_RECORDS", 3)
        ref = Reassembler(timeout=1.0, max_messages=max_messages, max_bytes=max_bytes)
        c = reassembly.c_reassembler(ref)
        assert c is not None, "the C module is not built"
        now = 0.0
        for op in ops:
            if op[0] == "expire":
                now += op[1]
                outs = [r.expire(now) for r in (ref, c)]
            else:
                _, src, seq, ts, off, extra, body = op
                total = off + len(body) + extra - 1
                h = Header(None, 6, seq, ts, False, (off, total))
                source = (f"10.0.0.{src}", 6665)
                outs = [r.add(source, h, body, now) for r in (ref, c)]
            assert outs[0] == outs[1]
            assert (len(ref), ref.bytes, ref.duplicates, ref.evicted, ref.limited) == (
                len(c), c.bytes, c.duplicates, c.evicted, c.limited)
        assert ref.flush() == c.flush()


@pytest.mark.parametrize("impl", ["Python", "C"])
def test_a_flood_of_tiny_pieces_is_given_up_at_the_piece_limit(impl: str) -> None:
    """One-byte pieces of the largest message taken, all different: each set is given up as
    incomplete (reason ``limited``) at the piece past MAX_PIECES, which is dropped, so no set
    ever holds more pieces than that (the C reassembler's duplicate test looks at every piece
    held)."""
    from netconsolectl.receiver import reassembly
    from netconsolectl.receiver.wire import MAX_FRAGMENTED_TOTAL

    n = reassembly.MAX_PIECES
    ref = Reassembler()
    r = ref if impl == "Python" else reassembly.c_reassembler(ref)
    out = []
    for off in range(2 * n + 2):
        h = Header(None, 6, 7, 1000, False, (off, MAX_FRAGMENTED_TOTAL))
        out += r.add(SRC, h, b"x", 0.0)
    assert [(d.complete, d.reason, d.body) for d in out] == [(False, "limited", b"x" * n)] * 2
    assert (r.limited, len(r), r.duplicates) == (2, 0, 0)

"""A fast path for the common datagram when the only output is ``--json``.

Most traffic is one extended message per datagram, no release prefix, printable ASCII text, no
key/value lines, in sequence; the rest is mostly messages of a few ``ncfrag`` fragments of the
same shape. For those the JSON line is assembled from slices of the datagram(s): the kernel has
already escaped every byte JSON would need escaped except ``"``, and one regular expression
(``wire.COMMON``, ``wire.FRAGMENT``) checks the datagram in C. The pieces go straight into the
output buffer. Anything else (release changes, escapes, quotes, key/value lines, the first
message of a source, a gap, a line the crash detector may take as the start of a report)
goes through the general :class:`~netconsolectl.receiver.core.Processor`, and the bytes
written are exactly what the general path writes (a property test checks this).

The loop also exists in C (``_fastjson.c``, built when the machine has a compiler): it takes a
batch from a given index while messages are of the common shape and stops at the first that is
not, which the Python loop then handles. It reassembles fragments itself, in the C module's
``Reassembler`` (the same rules and limits as :mod:`~netconsolectl.receiver.reassembly`, which
becomes the processor's reassembler so that both paths share what is pending), and hands a
completed message that is not of the common shape to the general path. What the C loop is
given rather than copies: the crash detector's opener table (``crash.OpenerTable``), the
reassembly limits, the message line's constant pieces (:data:`LINE_PIECES`). Per message it
takes about a tenth of the Python loop's CPU time (``bench/fastpath.py``); without it the
Python loop does everything.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from netconsolectl.receiver.core import Processor
from netconsolectl.receiver.delivery import MARK
from netconsolectl.receiver.reassembly import Done, c_reassembler
from netconsolectl.receiver.server import ADDRESS_CACHE
from netconsolectl.receiver.sinks.jsonl import JsonSink
from netconsolectl.receiver.sources import Source, in_sequence
from netconsolectl.receiver.wire import (
    COMMON,
    FRAGMENT,
    MAX_FRAGMENTED_TOTAL,
    MAX_U64,
    Header,
)

_common: Callable[..., tuple[int, int, int, int, int]] | None
try:
    from netconsolectl.receiver._fastjson import common as _common
    from netconsolectl.receiver._fastjson import set_line as _set_line
except ImportError:  # built without a compiler: the Python loop does it all
    _common = None

# The message line of the fast paths, between the pieces that vary: the source's prefix (from
# the sink), receive time, release, prio, seq, ts_usec, text, id. This is its one definition:
# the C loop gets it at import (LINE_PIECES); the differential test holds it to JsonSink.encode.
_CONT = {b"-": b',"cont":false,"text":"', b"c": b',"cont":true,"text":"'}
_TAIL = b'","fields":{},"incomplete":false,"id":"'
_END = b'"}\n'
_TS = b',"ts_usec":'
_NO_RELEASE = b'","release":null'
_RELEASE_OPEN = b'","release":"'
#: In the order of the C module's pieces (``_fastjson.c``, ``set_line``).
LINE_PIECES = (_NO_RELEASE, _RELEASE_OPEN, _TS, _CONT[b"-"], _CONT[b"c"], _TAIL, _END)
if _common is not None:
    _set_line(LINE_PIECES)


def line(
    prefix: bytes, received: bytes, release: bytes, prio: bytes, seq: bytes, ts: bytes,
    flag: bytes, text: bytes, idb: bytes,
) -> tuple[bytes, ...]:
    """The pieces of one message line (both Python loops; the C loop writes the same)."""
    return (prefix, received, release, prio, seq, _TS, ts, _CONT[flag], text, _TAIL, idb, seq,
            _END)  # fmt: skip
#: Bytes that may be copied into a JSON string as they are.
_SAFE = bytes(c for c in range(0x20, 0x7F) if c not in b'"\\')


class JsonFastPath:
    """``feed_batch`` handles a batch of payloads and their address keys."""

    def __init__(
        self,
        processor: Processor,
        sink: JsonSink,
        resolve: Callable[[Hashable], Source],
    ) -> None:
        self.processor = processor
        self.sink = sink
        self.resolve = resolve
        self._sources: dict[Hashable, tuple[Source, bytes]] = {}
        self._prio = {b"%d" % p: b',"facility":%d,"level":%d,"seq":' % (p >> 3, p & 7)
                      for p in range(256)}  # fmt: skip
        #: The same table by value, for the C loop.
        self._prio_by_value = tuple(self._prio.get(b"%d" % p) for p in range(256))
        #: With crash detection on, a message that may open a report goes to the general path
        #: (the detector); the table comes from the detector (crash.OpenerTable), for both loops.
        #: With per-host figures on, so does a ``netconsolectl test`` line, whose token the
        #: general path notes for the delivery check (receiver/delivery.py).
        self._crash_rule = _hand_over_rule(processor)
        self._may_open: Callable[[bytes, bytes], bool] | None = None
        if self._crash_rule is not None:
            self._may_open = _opener_test(*self._crash_rule)
        #: The C loop; it stops at anything else, and at every message when ``--ignore`` is on
        #: (the Python loop below applies it).
        self._common = _common if processor.ignore_pattern is None else None
        #: Fragments reassembled by the C loop: the processor's reassembler becomes the C one
        #: (same rules and limits), so the general path and the C loop share what is pending.
        self._frags: Any = None
        if self._common is not None and not len(processor.reassembler):
            self._frags = c_reassembler(processor.reassembler)
            if self._frags is not None:
                processor.reassembler = self._frags
        #: Sources with an open crash report: all their messages take the general path.
        self._crashing: Mapping[Source, object] = (
            processor.crash.open if processor.crash is not None else {}
        )
        #: ``--ignore`` on the raw text: the fast path only takes printable ASCII without a
        #: backslash, which is the decoded text byte for byte.
        self._ignore: Callable[[bytes], object] | None = None
        if processor.ignore_pattern is not None:
            try:
                self._ignore = re.compile(processor.ignore_pattern.encode()).search
            except re.error:  # a pattern only str can express: decode first
                search = processor.ignore
                assert search is not None
                self._ignore = lambda b: search(b.decode("ascii"))
        processor.resolve_key = resolve
        self._releases: dict[bytes, bytes] = {}
        self._by_source: dict[Source, bytes] = {}
        processor.done_hook = self.reassembled

    def _source(self, key: Hashable) -> tuple[Source, bytes]:
        if len(self._sources) > ADDRESS_CACHE:
            self._sources.clear()
        src = self.resolve(key)
        info = (src, ('{"type":"message",' + self.sink.prefix(*src)).encode())
        self._sources[key] = info
        return info

    def reassembled(self, done: Done, now: float) -> bool:
        """Output a completed reassembly of the common shape (text only, printable ASCII, no
        release, in sequence) directly; False leaves it to the general path."""
        h = done.header
        body = done.body
        end = len(body) - 1
        if (
            h.release is not None
            or h.extra
            or end < 0
            or body[end] != 0x0A
            or body.find(b"\n", 0, end) >= 0
            or body[:end].translate(None, _SAFE)
        ):
            return False
        p = b"%d" % h.prio
        prio = self._prio.get(p)
        src = done.source
        st = self.processor.tracker.states.get(src)
        if (
            prio is None
            or src in self._crashing
            or (self._may_open is not None and self._may_open(p, body[:end]))
            or self.processor.ignore is not None
            or st is None
            or not in_sequence(st, h.seq, h.ts_usec)
        ):
            return False
        self.processor.tracker.states.move_to_end(src)
        st.last_seq = st.counter = h.seq
        st.last_ts = h.ts_usec
        prefix = self._by_source.get(src)
        if prefix is None:
            if len(self._by_source) > ADDRESS_CACHE:
                self._by_source.clear()
            prefix = ('{"type":"message",' + self.sink.prefix(*src)).encode()
            self._by_source[src] = prefix
        self.sink.out.parts.extend(
            line(prefix, self.sink.iso(now).encode(), _NO_RELEASE, prio, b"%d" % h.seq,
                 b"%d" % h.ts_usec, b"c" if h.cont else b"-", body[:end], st.idb)
        )
        self.sink.out.size += 256 + end
        return True

    def feed_batch(self, payloads: list[bytes], keys: list[Hashable], now: float) -> None:
        total = len(payloads)
        if len(keys) != total:
            raise ValueError("payloads and keys differ in length")
        b = _Batch(self.sink.iso(now).encode(), now)
        common = self._common
        i = 0
        while i < total:
            if common is not None:
                i, handed_over = self._c_loop(payloads, keys, i, b)
                if i == total:
                    break
                if handed_over:  # it stopped after a datagram it took: it goes on from there
                    continue
            i = self._py_loop(payloads, keys, i, b, common is not None)
        c = self.processor.counters.values
        c["received"] += b.messages - b.reassembled + b.ignored + b.fragments
        c["messages"] += b.messages + b.ignored
        c["fragments"] += b.fragments
        c["reassembled"] += b.reassembled
        if b.ignored:
            c["ignored"] += b.ignored
        if self.processor.host_stats:
            # per batch, in C: datagrams per address, less those the general path counted
            counts = self.processor.key_counts
            counts.update(keys)
            if b.slow_keys:
                counts.subtract(b.slow_keys)
            if b.done_keys:
                counts.update(b.done_keys)
        out = self.sink.out
        out.size += b.written
        if out.size >= out.limit:
            out.flush()

    def _c_loop(
        self, payloads: list[bytes], keys: list[Hashable], i: int, b: _Batch
    ) -> tuple[int, bool]:
        """The C loop from ``i``: the index it stopped at, and whether it stopped after a
        fragment it took whose message (or others given up on the way) it handed over to the
        general path, rather than at a datagram it leaves to the Python loop."""
        assert self._common is not None
        frags = self._frags
        dups = frags.duplicates if frags is not None else 0
        track = self.processor.host_stats
        i, k, size, nfrag, nre = self._common(
            payloads, keys, i, self._sources, self.processor.tracker.states,
            self._prio_by_value, self._crashing, b.received, self.sink.out.parts,
            self.processor.tracker.states.move_to_end, self._crash_rule, frags, b.now,
            b.slow_keys if track else None, b.done_keys if track else None,
        )  # fmt: skip
        b.messages += k
        b.written += size
        b.fragments += nfrag
        b.reassembled += nre
        ready = []
        if frags is not None:
            self.processor.counters.values["duplicates"] += frags.duplicates - dups
            ready = frags.take_ready()
            for done in ready:
                self.processor.done(done, b.now)
        return int(i), bool(ready)

    def _py_loop(
        self, payloads: list[bytes], keys: list[Hashable], i: int, b: _Batch, one: bool
    ) -> int:
        """The Python loop from ``i``: one message when ``one`` (the C loop takes the next),
        else to the end of the batch. Returns the next index."""
        match = COMMON.fullmatch
        sources = self._sources
        states = self.processor.tracker.states
        slow = self.processor.feed
        prio_tab = self._prio
        parts = self.sink.out.parts
        received = b.received
        now = b.now
        releases = self._releases
        crashing = self._crashing
        may_open = self._may_open
        ignore = self._ignore
        slow_keys = b.slow_keys
        total = len(payloads)
        n = written = ignored = 0
        while i < total:
            data = payloads[i]
            key = keys[i]
            i += 1
            info = sources.get(key)
            if info is None:
                info = self._source(key)
            src = info[0]
            m = match(data)
            if m is None:
                slow_keys.append(key)
                self._not_common(data, src, now)
            else:
                r, p, s, t, f, text = m.groups()
                st = states.get(src)
                prio = prio_tab.get(p)
                seq = int(s)
                ts = int(t)
                if (
                    st is None
                    or prio is None
                    or (crashing and src in crashing)
                    or (may_open is not None and may_open(p, text))
                    or not in_sequence(st, seq, ts, None if r is None else r.decode())
                ):
                    slow_keys.append(key)
                    slow(data, src, now)
                else:
                    states.move_to_end(src)
                    st.last_seq = st.counter = seq
                    st.last_ts = ts
                    if ignore is not None and ignore(text):
                        ignored += 1
                    else:
                        if r is None:
                            rel = _NO_RELEASE
                        else:
                            rel = releases.get(r)  # type: ignore[assignment]
                            if rel is None:
                                if len(releases) > 256:
                                    releases.clear()
                                rel = releases[r] = _RELEASE_OPEN + r + b'"'
                        parts += line(info[1], received, rel, prio, s, t, f, text, st.idb)
                        n += 1
                        written += 256 + len(text)
            if one:
                break
        b.messages += n
        b.written += written
        b.ignored += ignored
        return i

    def _not_common(self, data: bytes, src: Source, now: float) -> None:
        """A datagram that is not a single message of the common shape: a fragment of the
        common header goes to reassembly without the general parser, anything else to it."""
        fm = FRAGMENT.match(data)
        if fm is not None:
            body = data[fm.end() :]
            p, s, t, f, o, tot = fm.groups()
            off = int(o)
            whole = int(tot)
            seq = int(s)
            ts = int(t)
            if (
                body
                and off < whole <= MAX_FRAGMENTED_TOTAL
                and off + len(body) <= whole
                and seq <= MAX_U64
                and ts <= MAX_U64
            ):
                proc = self.processor
                if off and proc.fragment_fast(src, seq, ts, off, whole, body, now):
                    return
                h = Header(None, int(p), seq, ts, f == b"c", (off, whole))
                proc.fragment(src, h, body, now)
                return
        self.processor.feed(data, src, now)


class _Batch:
    """What one ``feed_batch`` call counted."""

    __slots__ = ("done_keys", "fragments", "ignored", "messages", "now", "reassembled",
                 "received", "slow_keys", "written")  # fmt: skip

    def __init__(self, received: bytes, now: float) -> None:
        self.received = received
        self.now = now
        self.messages = self.ignored = self.written = self.fragments = self.reassembled = 0
        #: Keys of datagrams the general path counted per host; of messages the C loop
        #: reassembled (one per message).
        self.slow_keys: list[Hashable] = []
        self.done_keys: list[Hashable] = []


def _hand_over_rule(processor: Processor) -> tuple[bytes, tuple[bytes, ...], int] | None:
    """What the fast loops leave to the general path: (first-byte flags, needles found
    anywhere, least severe level for the first-byte test), as crash.OpenerTable has it."""
    rule = processor.crash.table.for_fast_path() if processor.crash is not None else None
    if not processor.host_stats:
        return rule
    first, needles, level = rule or (bytes(256), (), -1)
    return first, (*needles, MARK.encode()), level


def _opener_test(
    first: bytes, needles: tuple[bytes, ...], max_level: int
) -> Callable[[bytes, bytes], bool]:
    """``(prio digits, text) -> may the crash detector open a report on it`` (crash.may_open on
    bytes, as the C loop has it)."""
    low = frozenset(b"%d" % p for p in range(256) if p & 7 <= max_level)
    if len(needles) == 1:  # the usual table: one needle, no regular expression needed
        needle = needles[0]

        def may_open(prio: bytes, text: bytes) -> bool:
            return needle in text or (bool(text) and prio in low and first[text[0]] == 1)

        return may_open
    search = re.compile(b"|".join(re.escape(n) for n in needles)).search if needles else None

    def may_open_any(prio: bytes, text: bytes) -> bool:
        if search is not None and search(text):
            return True
        return bool(text) and prio in low and first[text[0]] == 1

    return may_open_any

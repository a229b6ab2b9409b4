"""A fast path for the common datagram when the only output is ``--json``.

Most traffic is one extended message per datagram, no release prefix, printable ASCII text, no
key/value lines, in sequence. For that case the JSON line is assembled from slices of the
datagram: the kernel has already escaped every byte JSON would need escaped except ``"``, and
one regular expression checks the whole datagram (canonical numbers, safe text) in C. The pieces
go straight into the output buffer. Anything else (fragments, release prefix, escapes, quotes,
key/value lines, the first message of a source, a gap) goes through the general
:class:`~netconsolectl.receiver.core.Processor`, and the bytes written are exactly what the
general path writes (a property test checks this).

The loop over the common case also exists in C (``_fastjson.c``, built when the machine has a
compiler): it takes a batch from a given index while messages are of the common shape and stops
at the first that is not, which the Python loop then handles. Per message it takes about a ninth
of the Python loop's CPU time (``bench/fastpath.py``); without it the Python loop does everything.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable

from netconsolectl.receiver.core import Processor
from netconsolectl.receiver.reassembly import Done
from netconsolectl.receiver.server import ADDRESS_CACHE
from netconsolectl.receiver.sinks.jsonl import JsonSink
from netconsolectl.receiver.sources import Source
from netconsolectl.receiver.wire import MAX_FRAGMENTED_TOTAL, Header

_common: Callable[..., tuple[int, int, int]] | None
try:
    from netconsolectl.receiver._fastjson import common as _common
except ImportError:  # built without a compiler: the Python loop does it all
    _common = None

_NUM = rb"(0|[1-9][0-9]{0,19})"
#: Release strings copied as they are: printable ASCII without space , ; " and backslash.
_RELEASE = rb'(?:([!#-+\--:<-\[\]-~]{1,64}),)?'
#: [release,]prio,seq,ts_usec,flag;text\n with text of printable ASCII minus '"' and '\'.
COMMON = re.compile(
    _RELEASE + rb"([0-9]{1,3})," + _NUM + b"," + _NUM + rb",([-c]);([ !#-\[\]-~]*)\n"
)
#: prio,seq,ts_usec,flag,ncfrag=off/total; (numbers as the general parser accepts them)
FRAGMENT = re.compile(
    rb"([0-9]{1,20}),([0-9]{1,20}),([0-9]{1,20}),([-c]),ncfrag=([0-9]{1,20})/([0-9]{1,20});"
)
_CONT = {b"-": b',"cont":false,"text":"', b"c": b',"cont":true,"text":"'}
_TAIL = b'","fields":{},"incomplete":false,"id":"'
_END = b'"}\n'
_TS = b',"ts_usec":'
_NO_RELEASE = b'","release":null'
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
        # With crash detection on, levels warning and worse (every line that can open a crash
        # report) are left to the general path: a missing entry here sends them there, so the
        # common info-level message pays nothing for the detector.
        lowest = 5 if processor.crash is not None else 0
        self._prio = {
            b"%d" % p: b',"facility":%d,"level":%d,"seq":' % (p >> 3, p & 7)
            for p in range(256)
            if p & 7 >= lowest
        }
        #: The same table by value, for the C loop.
        self._prio_by_value = tuple(self._prio.get(b"%d" % p) for p in range(256))
        #: The C loop of the common case; it stops at anything else, and at every message when
        #: ``--ignore`` is on (the Python loop below applies it).
        self._common = _common if processor.ignore_pattern is None else None
        #: Sources with an open crash report: all their messages take the general path.
        self._crashing: dict[Source, object] = (
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
        prio = self._prio.get(b"%d" % h.prio)
        src = done.source
        st = self.processor.tracker.states.get(src)
        if (
            prio is None
            or src in self._crashing
            or self.processor.ignore is not None
            or st is None
            or st.use_msgid
            or h.seq != st.last_seq + 1
            or h.ts_usec < st.last_ts
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
            (prefix, self.sink.iso(now).encode(), _NO_RELEASE, prio, b"%d" % h.seq, _TS,
             b"%d" % h.ts_usec, _CONT[b"c" if h.cont else b"-"], body[:end], _TAIL, st.idb,
             b"%d" % h.seq, _END)
        )
        self.sink.out.size += 256 + end
        return True

    def feed_batch(self, payloads: list[bytes], keys: list[Hashable], now: float) -> None:
        match = COMMON.fullmatch
        sources = self._sources
        states = self.processor.tracker.states
        slow = self.processor.feed
        prio_tab = self._prio
        out = self.sink.out
        parts = out.parts
        received = self.sink.iso(now).encode()
        n = 0
        frag_match = FRAGMENT.match
        releases = self._releases
        fragment = self.processor.fragment
        fragment_fast = self.processor.fragment_fast
        crashing = self._crashing
        ignore = self._ignore
        ignored = 0
        slow_keys: list[Hashable] = []
        total = len(payloads)
        if len(keys) != total:
            raise ValueError("payloads and keys differ in length")
        common = self._common
        prio_by_value = self._prio_by_value
        move_to_end = states.move_to_end
        written = 0
        i = 0
        while i < total:
            if common is not None:
                i, k, size = common(payloads, keys, i, sources, states, prio_by_value, crashing,
                                    received, parts, move_to_end)
                n += k
                written += size
                if i == total:
                    break
            data = payloads[i]
            key = keys[i]
            i += 1
            info = sources.get(key)
            if info is None:
                info = self._source(key)
            src = info[0]
            m = match(data)
            if m is None:
                fm = frag_match(data)
                if fm is not None:
                    body = data[fm.end() :]
                    p, s, t, f, o, tot = fm.groups()
                    off = int(o)
                    whole = int(tot)
                    if body and off < whole <= MAX_FRAGMENTED_TOTAL and off + len(body) <= whole:
                        seq = int(s)
                        ts = int(t)
                        slow_keys.append(key)
                        if off and fragment_fast(src, seq, ts, off, whole, body, now):
                            continue
                        h = Header(None, int(p), seq, ts, f == b"c", (off, whole))
                        fragment(src, h, body, now)
                        continue
                slow_keys.append(key)
                slow(data, src, now)
                continue
            r, p, s, t, f, text = m.groups()
            st = states.get(src)
            prio = prio_tab.get(p)
            if prio is None or st is None or st.use_msgid or (crashing and src in crashing):
                slow_keys.append(key)
                slow(data, src, now)
                continue
            seq = int(s)
            ts = int(t)
            if seq != st.last_seq + 1 or ts < st.last_ts:
                slow_keys.append(key)
                slow(data, src, now)
                continue
            states.move_to_end(src)
            st.last_seq = seq
            st.last_ts = ts
            st.counter = seq
            if ignore is not None and ignore(text):
                ignored += 1
                continue
            if r is None:
                rel = _NO_RELEASE
            else:
                rel = releases.get(r)  # type: ignore[assignment]
                if rel is None:
                    if len(releases) > 256:
                        releases.clear()
                    rel = releases[r] = b'","release":"' + r + b'"'
            parts += (info[1], received, rel, prio, s, _TS, t, _CONT[f], text, _TAIL, st.idb, s,
                      _END)
            n += 1
            written += 256 + len(text)
        c = self.processor.counters.values
        c["received"] += n + ignored
        c["messages"] += n + ignored
        if ignored:
            c["ignored"] += ignored
        if self.processor.host_stats:
            # per batch, in C: datagrams per address, less those the general path counted
            counts = self.processor.key_counts
            counts.update(keys)
            if slow_keys:
                counts.subtract(slow_keys)
        out.size += written
        if out.size >= out.limit:
            out.flush()

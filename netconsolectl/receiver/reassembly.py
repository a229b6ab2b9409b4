"""ncfrag reassembly with bounded memory.

Fragments of one message share the source and the header (same seq); each carries
``ncfrag=<offset>/<total>`` counted in body bytes. They may arrive in any order and more than once.
A message completes when its pieces cover ``[0, total)``. Pending messages are kept in arrival
order of their first fragment; the oldest is given up (emitted marked incomplete) when it times
out, or when the count or byte limits are reached, so a flood of never-completed fragments from
spoofed sources costs at most the configured memory. One source holds at most
:data:`MAX_SETS_PER_SOURCE` pending messages (its oldest is given up, reason ``limited``), so a
source flooding new message ids only ever pushes out its own; one message has at most
:data:`MAX_PIECES` pieces (given up past that, reason ``limited`` too), so a flood of tiny
pieces costs a bounded time per piece.

:class:`Reassembler` is the reference. The C module has the same class (``_fastjson.Reassembler``,
used with the C loop of the JSON fast path); :func:`c_reassembler` gives it the limits defined
here, and the differential test of ``tests/unit/test_receiver_output.py`` holds the two together.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from netconsolectl.receiver.wire import MAX_FRAGMENTED_TOTAL, Header

#: Bookkeeping bytes charged per pending message on top of its payload (dict, key, object).
ENTRY_OVERHEAD = 400
#: Pending messages one source may have at once. The kernel sends the pieces of one message
#: back to back, so more than one or two open at a time means loss or reordering on the way.
MAX_SETS_PER_SOURCE = 8
#: Pieces of one pending message. The kernel fills datagrams of up to 1,000 bytes, so even the
#: longest message taken (MAX_FRAGMENTED_TOTAL) comes in about 1,100; past this bound (pieces of
#: 512 bytes on average) it is a flood of tiny pieces, each of which would cost the C loop a
#: look at all those before it (quadratic time for one message).
MAX_PIECES = 2048
#: Completed messages remembered per source, so a late duplicate fragment is not taken for a new
#: message.
RECENT_PER_SOURCE = 16
#: Sources whose recent messages are remembered; past this, those with nothing pending are
#: forgotten.
SOURCE_RECORDS = 65536


@dataclass(slots=True)
class Pending:
    header: Header
    total: int
    first_seen: float
    chunks: dict[int, bytes] = field(default_factory=dict)
    have: int = 0

    def body(self) -> tuple[bytes, bool]:
        """The body assembled from what arrived, and whether it covers ``[0, total)``."""
        out: list[bytes] = []
        pos = 0
        complete = True
        for off in sorted(self.chunks):
            chunk = self.chunks[off]
            end = off + len(chunk)
            if end <= pos:
                continue
            if off > pos:
                complete = False
            elif off < pos:
                chunk = chunk[pos - off :]
            out.append(chunk)
            pos = end
        if pos < self.total:
            complete = False
        return b"".join(out), complete


#: Key of a pending message: source (host, port) and its sequence number.
Key = tuple[tuple[str, int], int]


@dataclass(slots=True)
class Done:
    """A message that left reassembly, complete or not."""

    source: tuple[str, int]
    header: Header
    body: bytes
    complete: bool
    #: Why an incomplete message was given up: "timeout", "evicted" (the limits), "limited"
    #: (its source had too many pending), "superseded" or "shutdown".
    reason: str = ""


class _SourceSets:
    """What one source has in reassembly: its pending seqs (oldest first), its recent ones."""

    __slots__ = ("open", "recent")

    def __init__(self) -> None:
        self.open: list[int] = []
        self.recent: deque[tuple[int, int]] = deque(maxlen=RECENT_PER_SOURCE)


class Reassembler:
    """Collects fragments; returns finished messages from :meth:`add` and :meth:`expire`."""

    def __init__(
        self, *, timeout: float = 2.0, max_messages: int = 4096, max_bytes: int = 32 << 20
    ) -> None:
        self.timeout = timeout
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.pending: OrderedDict[Key, Pending] = OrderedDict()
        self.bytes = 0
        self.duplicates = 0
        self.evicted = 0
        #: Messages given up because their source had too many pending.
        self.limited = 0
        self.sources: dict[tuple[str, int], _SourceSets] = {}

    def __len__(self) -> int:
        return len(self.pending)

    def _sets(self, source: tuple[str, int]) -> _SourceSets:
        sets = self.sources.get(source)
        if sets is None:
            if len(self.sources) >= SOURCE_RECORDS:
                for s in [s for s, v in self.sources.items() if not v.open]:
                    del self.sources[s]
            sets = self.sources[source] = _SourceSets()
        return sets

    def _remove(self, key: Key) -> Pending:
        entry = self.pending.pop(key)
        self.sources[key[0]].open.remove(key[1])
        self.bytes -= entry.have + ENTRY_OVERHEAD
        return entry

    def _give_up(self, key: Key, reason: str) -> Done:
        entry = self._remove(key)
        b, complete = entry.body()
        return Done(key[0], entry.header, b, complete, reason)

    def add(
        self, source: tuple[str, int], header: Header, body: bytes, now: float
    ) -> list[Done]:
        """Add one fragment (``header.frag`` set). Returns messages finished by it (any given up
        to make room or superseded, then the message itself when complete), possibly none."""
        assert header.frag is not None
        off, total = header.frag
        key = (source, header.seq)
        out: list[Done] = []
        sets = self._sets(source)
        if (header.seq, header.ts_usec) in sets.recent:
            self.duplicates += 1
            return out
        entry = self.pending.get(key)
        if entry is not None and (entry.total != total or entry.header.ts_usec != header.ts_usec):
            # Same seq, different message: the sender restarted mid-message. Give up the old one.
            out.append(self._give_up(key, "superseded"))
            entry = None
        if entry is None:
            if len(sets.open) >= MAX_SETS_PER_SOURCE:
                self.limited += 1
                out.append(self._give_up((source, sets.open[0]), "limited"))
            entry = Pending(header, total, now)
            self.pending[key] = entry
            sets.open.append(header.seq)
            self.bytes += ENTRY_OVERHEAD
        elif off in entry.chunks:
            self.duplicates += 1
            return out
        done = self._put(key, entry, off, body)
        if done is not None:
            out.append(done)
            return out
        while self.pending and (
            len(self.pending) > self.max_messages or self.bytes > self.max_bytes
        ):
            out.append(self._pop_oldest("evicted"))
        return out

    def _put(self, key: Key, entry: Pending, off: int, body: bytes) -> Done | None:
        """Store a piece; the message when it is now complete, or given up (incomplete) when
        it has :data:`MAX_PIECES` already."""
        if len(entry.chunks) >= MAX_PIECES:
            self.limited += 1
            return self._give_up(key, "limited")
        entry.chunks[off] = body
        entry.have += len(body)
        self.bytes += len(body)
        if entry.have < entry.total:
            return None
        b, complete = entry.body()
        if not complete:
            return None
        self._remove(key)
        self.sources[key[0]].recent.append((key[1], entry.header.ts_usec))
        return Done(key[0], entry.header, b, True)

    def add_to_pending(
        self, source: tuple[str, int], seq: int, ts_usec: int, off: int, total: int,
        body: bytes, now: float,
    ) -> list[Done] | None:
        """:meth:`add` for a fragment of a message already pending with the same timestamp and
        total, without building its header; None when there is no such message (call
        :meth:`add` with a header then)."""
        key = (source, seq)
        entry = self.pending.get(key)
        if entry is None or entry.total != total or entry.header.ts_usec != ts_usec:
            return None
        if off in entry.chunks:
            self.duplicates += 1
            return []
        done = self._put(key, entry, off, body)
        if done is not None:
            return [done]
        out: list[Done] = []
        while self.pending and self.bytes > self.max_bytes:
            out.append(self._pop_oldest("evicted"))
        return out

    def _pop_oldest(self, reason: str) -> Done:
        if reason == "evicted":
            self.evicted += 1
        return self._give_up(next(iter(self.pending)), reason)

    def expire(self, now: float) -> list[Done]:
        """Give up messages whose first fragment is older than the timeout."""
        out: list[Done] = []
        limit = now - self.timeout
        while self.pending:
            entry = next(iter(self.pending.values()))
            if entry.first_seen > limit:
                break
            out.append(self._pop_oldest("timeout"))
        return out

    def flush(self) -> list[Done]:
        """Give up everything still pending (shutdown)."""
        out: list[Done] = []
        while self.pending:
            out.append(self._pop_oldest("shutdown"))
        return out


def c_reassembler(like: Reassembler) -> Any:
    """The C module's reassembler with the limits of ``like`` and of this module, or None when
    the module is not built."""
    try:
        from netconsolectl.receiver._fastjson import Reassembler as CReassembler
    except ImportError:
        return None
    return CReassembler(
        Done, Header, like.timeout, like.max_messages, like.max_bytes, MAX_SETS_PER_SOURCE,
        RECENT_PER_SOURCE, SOURCE_RECORDS, ENTRY_OVERHEAD, MAX_FRAGMENTED_TOTAL, MAX_PIECES,
    )

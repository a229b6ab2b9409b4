"""ncfrag reassembly with bounded memory.

Fragments of one message share the source and the header (same seq); each carries
``ncfrag=<offset>/<total>`` counted in body bytes. They may arrive in any order and more than once.
A message completes when its pieces cover ``[0, total)``. Pending messages are kept in arrival
order of their first fragment; the oldest is given up (emitted marked incomplete) when it times
out, or when the count or byte limits are reached, so a flood of never-completed fragments from
spoofed sources costs at most the configured memory.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from netconsolectl.receiver.wire import Header

#: Bookkeeping bytes charged per pending message on top of its payload (dict, key, object).
ENTRY_OVERHEAD = 400
#: Completed messages remembered so a late duplicate fragment is not taken for a new message.
RECENT_COMPLETED = 1024


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
    #: Why an incomplete message was given up: "timeout", "evicted" or "shutdown".
    reason: str = ""


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
        self.recent: OrderedDict[tuple[tuple[str, int], int, int], None] = OrderedDict()

    def __len__(self) -> int:
        return len(self.pending)

    def add(
        self, source: tuple[str, int], header: Header, body: bytes, now: float
    ) -> list[Done]:
        """Add one fragment (``header.frag`` set). Returns messages finished by it (the message
        itself when complete, and any evicted to make room), possibly none."""
        assert header.frag is not None
        off, total = header.frag
        key = (source, header.seq)
        out: list[Done] = []
        if (source, header.seq, header.ts_usec) in self.recent:
            self.duplicates += 1
            return out
        entry = self.pending.get(key)
        if entry is not None and (entry.total != total or entry.header.ts_usec != header.ts_usec):
            # Same seq, different message: the sender restarted mid-message. Give up the old one.
            del self.pending[key]
            self.bytes -= entry.have + ENTRY_OVERHEAD
            b, complete = entry.body()
            out.append(Done(source, entry.header, b, complete, "superseded"))
            entry = None
        if entry is None:
            entry = Pending(header, total, now)
            self.pending[key] = entry
            self.bytes += ENTRY_OVERHEAD
        elif off in entry.chunks:
            self.duplicates += 1
            return out
        entry.chunks[off] = body
        entry.have += len(body)
        self.bytes += len(body)
        if entry.have >= total:
            b, complete = entry.body()
            if complete:
                del self.pending[key]
                self.bytes -= entry.have + ENTRY_OVERHEAD
                self.recent[(source, header.seq, header.ts_usec)] = None
                if len(self.recent) > RECENT_COMPLETED:
                    self.recent.popitem(last=False)
                out.append(Done(source, entry.header, b, True))
                return out
        while self.pending and (
            len(self.pending) > self.max_messages or self.bytes > self.max_bytes
        ):
            out.append(self._pop_oldest("evicted"))
        return out

    def add_to_pending(
        self, source: tuple[str, int], seq: int, ts_usec: int, off: int, total: int,
        body: bytes, now: float,
    ) -> list[Done] | None:
        """:meth:`add` for a fragment of a message already pending with the same timestamp and
        total, without building its header; None when there is no such message (call
        :meth:`add` with a header then)."""
        entry = self.pending.get((source, seq))
        if entry is None or entry.total != total or entry.header.ts_usec != ts_usec:
            return None
        if off in entry.chunks:
            self.duplicates += 1
            return []
        entry.chunks[off] = body
        entry.have += len(body)
        self.bytes += len(body)
        if entry.have >= total:
            b, complete = entry.body()
            if complete:
                del self.pending[(source, seq)]
                self.bytes -= entry.have + ENTRY_OVERHEAD
                self.recent[(source, seq, ts_usec)] = None
                if len(self.recent) > RECENT_COMPLETED:
                    self.recent.popitem(last=False)
                return [Done(source, entry.header, b, True)]
        out: list[Done] = []
        while self.pending and self.bytes > self.max_bytes:
            out.append(self._pop_oldest("evicted"))
        return out

    def _pop_oldest(self, reason: str) -> Done:
        (source, _seq), entry = self.pending.popitem(last=False)
        self.bytes -= entry.have + ENTRY_OVERHEAD
        if reason == "evicted":
            self.evicted += 1
        b, complete = entry.body()
        return Done(source, entry.header, b, complete, reason)

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

"""Per-source stream state: lost messages, out-of-order arrival, sequence resets.

A source is one (address, port) pair; a kernel target sends from one fixed local port, so this
is one netconsole target. Each extended message carries the printk ``seq`` (which also advances
for records the console never sent, e.g. below ``console_loglevel``) and, when the target has
sysdata ``msgid`` enabled, a per-target u32 ``msgid`` that advances exactly once per message sent.
Loss is therefore counted on ``msgid`` when present, else on ``seq``.

A gap is not reported at once: it stays pending for ``timeout`` seconds so a datagram that was
merely reordered can fill it (reported as ``reorder``). What is still missing then is reported as
``lost``. A ``reset`` is a new boot of the sender: a sequence that jumps back (or forward while
the kernel timestamp goes back), another kernel release, or a boot time (receive time less the
kernel timestamp) later than the stream's, which also catches a new boot whose first seqs fall
just behind the last one seen, where a late duplicate would be.

State is bounded: at most ``max_sources`` sources, least recently heard evicted first, and at most
``MAX_GAPS`` pending gaps per source (the oldest reported lost early).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from netconsolectl.receiver.boots import BootTable

#: Pending gaps kept per source.
MAX_GAPS = 32
#: A seq at most this far behind the newest seen, with an older timestamp, is a late datagram,
#: not a reboot.
LATE_WINDOW = 64
#: A newer seq whose timestamp is this much older than the newest seen means a new boot (us).
RESET_TS_SLACK = 1_000_000
#: Seconds a datagram may be late and still be of the same boot: one whose boot time (receive
#: time less its kernel timestamp) is later than the stream's by more is from a new boot, even
#: with a seq inside the late window.
LATE_LIMIT = 10.0
#: This many duplicates from one source within SHARED_WINDOW seconds: two senders share its
#: address and port (two targets of one host to one receiver, both from the default local port
#: 6665, send every record twice). The receiver cannot tell their datagrams apart (the records
#: are the same; only userdata or msgid may differ), so it warns once per stream
#: (``shared_source``) and keeps taking the second copy of each record as a duplicate.
SHARED_DUPLICATES = 16
SHARED_WINDOW = 10.0
U32 = 1 << 32

Source = tuple[str, int]
EventTuple = tuple[str, Source, dict[str, Any]]


class Gap:
    """Missing counter values ``[first, last]``, bracketed by the seqs seen around them."""

    __slots__ = ("deadline", "first", "first_seq", "last", "last_seq")

    def __init__(self, first: int, last: int, first_seq: int, last_seq: int, deadline: float):
        self.first = first
        self.last = last
        self.first_seq = first_seq
        self.last_seq = last_seq
        self.deadline = deadline


class StreamState:
    __slots__ = ("counter", "dup_since", "dups", "gaps", "idb", "idp", "last_seq", "last_ts",
                 "release", "use_msgid")

    def __init__(
        self, seq: int, ts: int, counter: int, use_msgid: bool, idp: str,
        release: str | None = None,
    ) -> None:
        #: The kernel release the stream named last (header prefix or sysdata), if any.
        self.release = release
        #: Duplicates since ``dup_since`` (-1 once ``shared_source`` was reported).
        self.dups = 0
        self.dup_since = 0.0
        self.last_seq = seq
        self.last_ts = ts
        self.counter = counter
        self.use_msgid = use_msgid
        self.gaps: list[Gap] | None = None
        #: Prefix of this boot's message ids (see :mod:`netconsolectl.receiver.boots`).
        self.idp = idp
        self.idb = idp.encode()

    def new_boot(self, idp: str) -> None:
        self.idp = idp
        self.idb = idp.encode()


def in_sequence(st: StreamState, seq: int, ts: int, release: str | None = None) -> bool:
    """The message is the next of its stream as the fast paths take it: seq one more, time not
    going back, loss counted on seq, the release (when it names one) the stream's (the C loop
    has the same test, ``in_sequence`` and ``same_release``)."""
    return (
        not st.use_msgid
        and seq == st.last_seq + 1
        and ts >= st.last_ts
        and (release is None or release == st.release)
    )


class SourceTracker:
    """Feed every extended message with :meth:`see`; collect events it and :meth:`expire` return.

    Events are tuples ``(type, source, data)``.
    """

    def __init__(
        self, *, timeout: float = 2.0, max_sources: int = 65536, boots: BootTable | None = None
    ) -> None:
        self.boots = boots or BootTable()
        self.timeout = timeout
        self.max_sources = max_sources
        self.states: OrderedDict[Source, StreamState] = OrderedDict()
        self.with_gaps: set[Source] = set()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self.states)

    def see(
        self,
        source: Source,
        seq: int,
        ts: int,
        msgid: int | None,
        now: float,
        *,
        partial: bool = False,
        release: str | None = None,
    ) -> list[EventTuple] | None:
        """Account one message. Returns events, or None for the usual in-order case.

        ``partial`` marks an incomplete reassembly, whose msgid line may be missing: it is then
        not taken as the sender switching msgid off, and when it fills a gap (it waited for
        its missing fragments while later messages passed) that is no reordering. ``release``
        is the kernel release the message names (header prefix or sysdata), if any.
        """
        st = self.states.get(source)
        use_msgid = msgid is not None
        if partial and st is not None and st.use_msgid and msgid is None:
            return None
        counter = msgid if msgid is not None else seq
        if st is None:
            idp = self.boots.start(source, seq, ts, now)
            self.states[source] = StreamState(seq, ts, counter, use_msgid, idp, release)
            if len(self.states) > self.max_sources:
                self._evict()
            return None
        self.states.move_to_end(source)
        if st.use_msgid != use_msgid:
            return self._switched(source, st, seq, ts, counter, now) or None
        if seq == st.last_seq + 1 and ts >= st.last_ts and self._delta(st, counter) == 1 and (
            release is None or release == st.release
        ):  # the common case
            st.last_seq = seq
            st.last_ts = ts
            st.counter = counter
            return None
        events: list[EventTuple] = []
        rebooted = self._rebooted(source, st, ts, now, release)
        last_seq = st.last_seq
        if not rebooted and seq < last_seq and self._fill(source, st, counter, seq, events,
                                                          partial=partial):
            return events
        if rebooted or self._went_back(st, seq, ts):
            events.extend(self._drop_gaps(source, st))
            events.append(("reset", source, {"seq": seq, "previous_seq": last_seq}))
            st.new_boot(self.boots.start(source, seq, ts, now, self.boots.boot_of(source)))
            st.use_msgid = use_msgid
        elif seq <= last_seq:
            # a late or duplicate datagram of this boot
            events.append(("duplicate", source, {"seq": seq}))
            self._shared(source, st, now, events)
            return events
        else:
            self._note_gap(source, st, counter, seq, now, events)
        if release is not None:
            st.release = release
        st.last_seq = seq
        st.last_ts = ts
        st.counter = counter
        return events or None

    @staticmethod
    def _shared(source: Source, st: StreamState, now: float, events: list[EventTuple]) -> None:
        """Count a duplicate; report once when they come as two senders sharing the source
        make them (:data:`SHARED_DUPLICATES`)."""
        if st.dups < 0:
            return
        if now - st.dup_since > SHARED_WINDOW:
            st.dups = 0
            st.dup_since = now
        st.dups += 1
        if st.dups >= SHARED_DUPLICATES:
            st.dups = -1
            events.append(("shared_source", source, {
                "duplicates": SHARED_DUPLICATES, "seconds": SHARED_WINDOW,
                "hint": "two targets of one host send here from the same address and port: "
                        "give each its own local port or remote port",
            }))  # fmt: skip

    @staticmethod
    def _delta(st: StreamState, counter: int) -> int:
        return (counter - st.counter) % U32 if st.use_msgid else counter - st.counter

    @staticmethod
    def _went_back(st: StreamState, seq: int, ts: int) -> bool:
        """A sequence reset: seq far behind (or behind with a newer timestamp), or ahead with a
        timestamp well behind."""
        if seq < st.last_seq:
            return st.last_seq - seq > LATE_WINDOW or ts > st.last_ts
        return seq > st.last_seq and ts + RESET_TS_SLACK < st.last_ts

    def _rebooted(
        self, source: Source, st: StreamState, ts: int, now: float, release: str | None
    ) -> bool:
        """Signs of a new boot that hold wherever the new seq falls (even just behind the last
        one, inside the late window): another kernel release, or a boot time (receive time less
        the kernel timestamp) later than this boot's by more than a late datagram can be
        (:data:`LATE_LIMIT`, plus the sender clock's drift)."""
        if release is not None and st.release is not None and release != st.release:
            return True
        boot = self.boots.boot_of(source)
        if boot is None or ts > st.last_ts:
            return False
        return now - ts / 1e6 - boot > LATE_LIMIT + st.last_ts / 1e9

    def _switched(
        self, source: Source, st: StreamState, seq: int, ts: int, counter: int, now: float
    ) -> list[EventTuple]:
        """msgid switched on or off on the sender: restart counting, no verdict possible. A
        reboot is still recognisable from seq and the timestamp."""
        dropped = self._drop_gaps(source, st)
        if (seq < st.last_seq and (st.last_seq - seq > LATE_WINDOW or ts > st.last_ts)) or (
            ts + RESET_TS_SLACK < st.last_ts
        ):
            dropped.append(("reset", source, {"seq": seq, "previous_seq": st.last_seq}))
            st.new_boot(self.boots.start(source, seq, ts, now, self.boots.boot_of(source)))
        st.use_msgid = not st.use_msgid
        st.counter = counter
        st.last_seq = seq
        st.last_ts = ts
        return dropped

    def _note_gap(
        self, source: Source, st: StreamState, counter: int, seq: int, now: float,
        events: list[EventTuple],
    ) -> None:
        """Newer than anything seen: note a counter gap, if any."""
        if st.use_msgid:
            delta = (counter - st.counter) % U32
            if delta >= U32 // 2:  # msgid went back while seq went forward: sender restarted
                delta = 1
        else:
            delta = counter - st.counter
        if delta <= 1:
            return
        first = (st.counter + 1) % U32 if st.use_msgid else st.counter + 1
        last = (counter - 1) % U32 if st.use_msgid else counter - 1
        gap = Gap(first, last, st.last_seq + 1, seq - 1, now + self.timeout)
        if st.gaps is None:
            st.gaps = []
            self.with_gaps.add(source)
        st.gaps.append(gap)
        if len(st.gaps) > MAX_GAPS:
            events.append(self._lost(source, st, st.gaps.pop(0)))

    def _lost(self, source: Source, st: StreamState, gap: Gap) -> EventTuple:
        if st.use_msgid:
            count = (gap.last - gap.first) % U32 + 1
            data: dict[str, Any] = {
                "first_seq": gap.first_seq,
                "last_seq": gap.last_seq,
                "count": count,
                "first_msgid": gap.first,
                "last_msgid": gap.last,
            }
        else:
            data = {"first_seq": gap.first, "last_seq": gap.last, "count": gap.last - gap.first + 1}
        return ("lost", source, data)

    def _fill(
        self, source: Source, st: StreamState, counter: int, seq: int, events: list[EventTuple],
        *, partial: bool = False,
    ) -> bool:
        """A late datagram: if it falls in a pending gap, shrink the gap and report a reorder
        (not for an incomplete message: it was late waiting for its fragments, and is reported
        as incomplete)."""
        if not st.gaps:
            return False
        for i, gap in enumerate(st.gaps):
            if st.use_msgid:
                inside = (counter - gap.first) % U32 <= (gap.last - gap.first) % U32
            else:
                inside = gap.first <= counter <= gap.last
            if not inside:
                continue
            if not partial:
                events.append(("reorder", source, {"seq": seq}))
            pieces = []
            if counter != gap.first:
                pieces.append(Gap(gap.first, (counter - 1) % U32 if st.use_msgid else counter - 1,
                                  gap.first_seq, seq - 1, gap.deadline))
            if counter != gap.last:
                pieces.append(Gap((counter + 1) % U32 if st.use_msgid else counter + 1, gap.last,
                                  seq + 1, gap.last_seq, gap.deadline))
            st.gaps[i : i + 1] = pieces
            if not st.gaps:
                st.gaps = None
                self.with_gaps.discard(source)
            return True
        return False

    def _drop_gaps(self, source: Source, st: StreamState) -> list[EventTuple]:
        """Report every pending gap of a source as lost (reset, eviction, shutdown)."""
        if not st.gaps:
            return []
        events = [self._lost(source, st, g) for g in st.gaps]
        st.gaps = None
        self.with_gaps.discard(source)
        return events

    def _evict(self) -> None:
        source, st = self.states.popitem(last=False)
        self.evicted += 1
        if st.gaps:
            # Its gaps can no longer be judged; they are forgotten rather than guessed at.
            self.with_gaps.discard(source)

    def expire(self, now: float) -> list[EventTuple]:
        """Report gaps whose reorder window has passed as lost."""
        events: list[EventTuple] = []
        for source in list(self.with_gaps):
            st = self.states.get(source)
            if st is None or not st.gaps:
                self.with_gaps.discard(source)
                continue
            keep = []
            for gap in st.gaps:
                if gap.deadline <= now:
                    events.append(self._lost(source, st, gap))
                else:
                    keep.append(gap)
            st.gaps = keep or None
            if not keep:
                self.with_gaps.discard(source)
        return events

    def flush(self) -> list[EventTuple]:
        """Report every pending gap as lost (shutdown)."""
        events: list[EventTuple] = []
        for source in list(self.with_gaps):
            st = self.states.get(source)
            if st is not None:
                events.extend(self._drop_gaps(source, st))
        self.with_gaps.clear()
        return events

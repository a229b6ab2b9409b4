"""The receiver's logic without sockets: datagrams in, messages and events out to sinks."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, Protocol

from netconsolectl.receiver.boots import BootTable, reception_prefix
from netconsolectl.receiver.delivery import MARK, Notes
from netconsolectl.receiver.model import Counters, Event, Message
from netconsolectl.receiver.reassembly import Done, Reassembler
from netconsolectl.receiver.sinks import SINK_COUNTERS, Sink
from netconsolectl.receiver.sources import EventTuple, Source, SourceTracker
from netconsolectl.receiver.wire import (
    FRAGMENT_HEADER_ERRORS,
    FRAGMENT_OVERRUN,
    Extended,
    Header,
    Malformed,
    parse_body,
    parse_datagram,
    parse_plain,
)

if TYPE_CHECKING:
    from netconsolectl.receiver.crash import CrashDetector


class CrashHook(Protocol):
    """``--on-crash`` (:class:`~netconsolectl.receiver.oncrash.CrashCommands`): gets every
    crash event after the outputs, never makes the receiver wait."""

    #: Commands that failed or were skipped (the ``on_crash_errors`` counter).
    errors: int

    def submit(self, e: Event) -> None: ...

    def close(self, wait: float = 5.0) -> None: ...


#: Bytes of a malformed datagram reported (hex) in its event.
MALFORMED_SAMPLE = 64


class Processor:
    """Parses, reassembles and tracks; hands results to every sink in order."""

    def __init__(
        self,
        sinks: list[Sink],
        *,
        timeout: float = 2.0,
        max_sources: int = 65536,
        max_pending: int = 4096,
        max_pending_bytes: int = 32 << 20,
        counters: Counters | None = None,
        boots: BootTable | None = None,
        crashes: bool = True,
        ignore: list[str] | None = None,
        host_stats: bool = False,
    ) -> None:
        self.sinks = sinks
        self.counters = counters or Counters()
        self.reassembler = Reassembler(
            timeout=timeout, max_messages=max_pending, max_bytes=max_pending_bytes
        )
        self.tracker = SourceTracker(timeout=timeout, max_sources=max_sources, boots=boots)
        self.reception = reception_prefix()
        self._received_plain = 0
        #: Offered each completed reassembly first; returns True when it has output the message
        #: itself (the JSON fast path), after which only the counters are updated here.
        self.done_hook: Callable[[Done, float], bool] | None = None
        #: Crash report detection (None when switched off).
        self.crash: CrashDetector | None = None
        if crashes:
            from netconsolectl.receiver.crash import CrashDetector

            self.crash = CrashDetector(self._crash, settle=timeout)
        #: ``--ignore``: messages whose text matches are dropped (after loss tracking).
        self.ignore_pattern = "|".join(f"(?:{p})" for p in ignore) if ignore else None
        self.ignore = re.compile(self.ignore_pattern).search if self.ignore_pattern else None
        #: ``--on-crash``: its ``submit`` gets each crash event after the sinks; ``errors``
        #: counts the commands that failed.
        self.crash_hook: CrashHook | None = None
        #: Per-host deltas since :meth:`take_host_stats` (``--metrics``, ``--silence``): the
        #: general path counts per message, the fast path per batch in ``key_counts`` (address
        #: keys, resolved when taken).
        self.host_stats = host_stats
        self.host_messages: Counter[str] = Counter()
        self.host_lost: Counter[str] = Counter()
        self.host_crashes: dict[tuple[str, str], int] = {}
        #: Senders' names and ``netconsolectl test`` tokens (receiver/delivery.py).
        self.notes = Notes()
        self.key_counts: Counter[Hashable] = Counter()
        self.resolve_key: Callable[[Hashable], Source] | None = None

    # -- output ----------------------------------------------------------------------------

    def _message(self, m: Message) -> None:
        self.counters.values["messages"] += 1
        if self.host_stats:
            self.host_messages[m.host] += 1
            # names: once per host and second; tokens: marker lines only (receiver/delivery.py)
            if MARK in m.text or (m.fields and m.host not in self.notes.names):
                self.notes.see(m)
        if self.ignore is not None and self.ignore(m.text):
            self.counters.values["ignored"] += 1
            return
        for s in self.sinks:
            s.message(m)
        if self.crash is not None:
            self.crash.message(m)

    def _crash(self, e: Event) -> None:
        self.counters.values["crashes"] += 1
        if self.host_stats:
            key = (e.host, e.data["kind"])
            self.host_crashes[key] = self.host_crashes.get(key, 0) + 1
        self._event(e)
        if self.crash_hook is not None:
            self.crash_hook.submit(e)

    def _event(self, e: Event) -> None:
        for s in self.sinks:
            s.event(e)

    def emit_event(self, e: Event) -> None:
        """Hand an event from outside the stream (``silent``, ``resumed``) to every sink."""
        self._event(e)

    def _events(self, events: list[EventTuple], now: float) -> None:
        c = self.counters.values
        for kind, (host, port), data in events:
            if kind == "lost":
                c["lost"] += data["count"]
                if self.crash is not None:
                    self.crash.lost((host, port))
                if self.host_stats:
                    self.host_lost[host] += data["count"]
            elif kind == "reorder":
                c["reordered"] += 1
            elif kind == "duplicate":
                c["duplicates"] += 1
            elif kind == "reset":
                c["resets"] += 1
            elif kind == "shared_source":
                c["shared_sources"] += 1
            self._event(Event(kind, host, port, now, data))

    # -- input -----------------------------------------------------------------------------

    def feed(self, data: bytes, source: Source, now: float) -> None:
        """Handle one datagram from ``source`` (host, port) received at ``now``."""
        c = self.counters.values
        c["received"] += 1
        p = parse_datagram(data)
        if isinstance(p, Extended):
            h = p.header
            if h.frag is None:
                self._extended(source, h, p.body, now, complete=True)
                return
            self._fragment(source, h, p.body, now)
            return
        if isinstance(p, Malformed):
            c["malformed"] += 1
            if p.reason in FRAGMENT_HEADER_ERRORS:
                c["fragment_errors"] += 1
            elif p.reason == FRAGMENT_OVERRUN:
                c["fragment_overruns"] += 1
            self.malformed(source, p.reason, data, now)
            return
        text, raw = parse_plain(data)
        self._received_plain += 1
        self._message(
            Message(
                source[0], source[1], now, text, raw=raw,
                id=f"{self.reception}{self._received_plain}",
            )
        )

    def fragment(self, source: Source, h: Header, body: bytes, now: float) -> None:
        """Handle one validated fragment datagram (the fast path's entry point)."""
        self.counters.values["received"] += 1
        self._fragment(source, h, body, now)

    def fragment_fast(
        self, source: Source, seq: int, ts: int, off: int, total: int, body: bytes, now: float
    ) -> bool:
        """A later fragment of a pending message, without a header object; False when the
        message is not pending (the caller then uses :meth:`fragment`)."""
        r = self.reassembler
        dups = r.duplicates
        done = r.add_to_pending(source, seq, ts, off, total, body, now)
        if done is None:
            return False
        c = self.counters.values
        c["received"] += 1
        c["fragments"] += 1
        c["duplicates"] += r.duplicates - dups
        for d in done:
            self.done(d, now)
        return True

    def _fragment(self, source: Source, h: Header, body: bytes, now: float) -> None:
        c = self.counters.values
        c["fragments"] += 1
        dups = self.reassembler.duplicates
        for done in self.reassembler.add(source, h, body, now):
            self.done(done, now)
        c["duplicates"] += self.reassembler.duplicates - dups

    def malformed(self, source: Source, reason: str, data: bytes, now: float) -> None:
        """Report a datagram that could not be used (counted by the caller)."""
        self._event(
            Event(
                "malformed",
                source[0],
                source[1],
                now,
                {"reason": reason, "size": len(data), "head": data[:MALFORMED_SAMPLE].hex()},
            )
        )

    def done(self, done: Done, now: float) -> None:
        """A message that left reassembly (complete or given up)."""
        c = self.counters.values
        if done.complete:
            c["reassembled"] += 1
            if self.done_hook is not None and self.done_hook(done, now):
                c["messages"] += 1
                if self.host_stats:
                    self.host_messages[done.source[0]] += 1
                return
        else:
            c["incomplete"] += 1
            if done.reason == "evicted":
                c["evicted_fragments"] += 1
            elif done.reason == "limited":
                c["fragment_sets_limited"] += 1
            if self.crash is not None:
                self.crash.lost(done.source)
        self._extended(done.source, done.header, done.body, now, complete=done.complete)

    def _extended(
        self, source: Source, h: Header, body: bytes, now: float, *, complete: bool
    ) -> None:
        text, fields, raw = parse_body(body)
        if h.extra:
            fields = {**h.extra, **fields}
        msgid_s = fields.get("msgid")
        msgid = int(msgid_s) if msgid_s is not None and msgid_s.isdigit() else None
        events = self.tracker.see(source, h.seq, h.ts_usec, msgid, now, partial=not complete,
                                  release=h.release or fields.get("release"))
        if events:
            self._events(events, now)
            if any(e[0] == "duplicate" for e in events):
                # Reported as an event; the message itself was already delivered.
                return
        self._message(
            Message(
                source[0],
                source[1],
                now,
                text,
                h.release,
                h.prio >> 3,
                h.prio & 7,
                h.seq,
                h.ts_usec,
                h.cont,
                fields,
                not complete,
                raw,
                self.tracker.states[source].idp + str(h.seq),
            )
        )

    # -- time ------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Expire reassembly and reorder windows; call a few times a second."""
        self.forward_events()
        for done in self.reassembler.expire(now):
            self.done(done, now)
        events = self.tracker.expire(now)
        if events:
            self._events(events, now)
        if self.crash is not None:
            self.crash.tick(now)
        self.sync_counters()
        self.tracker.boots.save()

    def forward_events(self) -> None:
        """State changes of the reliable forwarders (lost, back), to the outputs that want
        them (``--json``)."""
        for s in self.sinks:
            for e in s.take_events():
                for out in self.sinks:
                    if out.wants_forward_events:
                        out.event(e)

    def take_host_stats(
        self,
    ) -> tuple[Counter[str], Counter[str], dict[tuple[str, str], int], dict[str, Any]]:
        """Per-host (messages, lost, crashes by (host, kind), notes) since the last call."""
        msgs = self.host_messages
        if self.key_counts:
            resolve = self.resolve_key
            assert resolve is not None
            for key, n in self.key_counts.items():
                if n:
                    msgs[resolve(key)[0]] += n
            self.key_counts = Counter()
        out = (msgs, self.host_lost, self.host_crashes, self.notes.take())
        self.host_messages = Counter()
        self.host_lost = Counter()
        self.host_crashes = {}
        return out

    def reopen_sinks(self) -> None:
        """SIGHUP: outputs that write files close them, to reopen them by name (logrotate)."""
        for s in self.sinks:
            s.reopen()

    def sync_counters(self) -> None:
        c = self.counters.values
        c["evicted_sources"] = self.tracker.evicted
        sums: Counter[str] = Counter()
        for s in self.sinks:
            sums.update(s.counts())
        for name in SINK_COUNTERS:
            c[name] = sums[name]
        if self.crash_hook is not None:
            c["on_crash_errors"] = self.crash_hook.errors

    def flush_sinks(self) -> None:
        for s in self.sinks:
            s.flush()

    @property
    def outputs_gone(self) -> bool:
        """Every output's reader went away (``listen | head`` finished): time to stop."""
        return bool(self.sinks) and all(s.broken for s in self.sinks)

    def shutdown(self, now: float) -> None:
        """Give up pending fragments and gaps, flush and close every sink."""
        for done in self.reassembler.flush():
            self.done(done, now)
        events = self.tracker.flush()
        if events:
            self._events(events, now)
        if self.crash is not None:
            self.crash.flush()
        for s in self.sinks:
            s.flush()
        # Forwarders (every output that does not take their events) first: their last events
        # go to the outputs that do.
        for s in self.sinks:
            if not s.wants_forward_events:
                s.close()
        self.forward_events()
        for s in self.sinks:
            if s.wants_forward_events:
                s.close()
        self.sync_counters()
        self.tracker.boots.save(force=True)

    def stats(self) -> dict[str, Any]:
        return {
            "sources": len(self.tracker),
            "pending_fragments": len(self.reassembler),
            "pending_bytes": self.reassembler.bytes,
        }

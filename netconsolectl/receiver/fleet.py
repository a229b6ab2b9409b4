"""Per-host figures for a fleet: message, loss and crash totals, last heard, silent hosts.

The receiving loop counts per host cheaply (see :meth:`Processor.take_host_stats
<netconsolectl.receiver.core.Processor.take_host_stats>`) and hands the deltas here about once
a second: directly with one process, through a pipe from each worker to the parent with
several. :class:`FleetStats` is the one place that knows every host, so silence is judged and
metrics are rendered from it, whatever the number of workers.

Bounds: at most ``max_hosts`` hosts keep their own figures, the most recently heard ones. A host
pushed out has its totals folded into the host ``other`` (so every total stays monotonic and
the sums stay right), and a flood of spoofed source addresses costs at most ``max_hosts``
entries and series. Silence is tracked for the same hosts.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from netconsolectl.receiver.delivery import Health, Tokens
from netconsolectl.receiver.model import Event
from netconsolectl.receiver.output import IsoTime

#: Label value of the host that sums every host beyond the per-host limit.
OTHER = "other"


@dataclass(slots=True)
class HostFigures:
    messages: int = 0
    lost: int = 0
    crashes: dict[str, int] = field(default_factory=dict)
    #: Receive time of the last message, seconds since the epoch (0: never).
    last: float = 0.0
    #: Reported silent and not heard since.
    silent: bool = False
    #: Listed in ``--expect`` and never heard yet.
    expected_only: bool = False
    #: The name the sender gives itself (``hostname`` userdata), when it does.
    name: str | None = None


def iso(t: float) -> str:
    return IsoTime()(t)


#: One interval's deltas: host -> [messages, lost, {kind: crashes}] and, when there is
#: something to note, a fourth item (name and test tokens, see receiver/delivery.py).
Delta = dict[str, list[Any]]


def make_delta(
    messages: dict[str, int],
    lost: dict[str, int],
    crashes: dict[tuple[str, str], int],
    notes: dict[str, dict[str, Any]] | None = None,
) -> Delta:
    out: Delta = {}
    for host, n in messages.items():
        out[host] = [n, 0, {}]
    for host, n in lost.items():
        out.setdefault(host, [0, 0, {}])[1] += n
    for (host, kind), n in crashes.items():
        d = out.setdefault(host, [0, 0, {}])[2]
        d[kind] = d.get(kind, 0) + n
    for host, note in (notes or {}).items():
        out.setdefault(host, [0, 0, {}]).append(note)
    return out


class FleetStats:
    """Every host's totals (bounded), the receiver's counters, and silence."""

    def __init__(
        self,
        *,
        max_hosts: int = 4096,
        silence: float | None = None,
        expect: list[str] | None = None,
        now: float = 0.0,
    ) -> None:
        self.max_hosts = max_hosts
        self.silence = silence
        self.hosts: OrderedDict[str, HostFigures] = OrderedDict()
        self.other = HostFigures()
        self.other_used = False
        self._counters: dict[str, int] = {}
        self.lock = threading.Lock()
        #: ``netconsolectl test`` tokens seen, for the HTTP server's ``/delivery``.
        self.tokens = Tokens()
        #: Receiving processes' reports and the counters' recent history, for ``/healthz``.
        self.health = Health()
        #: ``--reverse-dns``: names of hosts that do not send a ``hostname`` (receiver/names.py).
        self.reverse: Any = None
        for host in expect or ():
            self.hosts[host] = HostFigures(last=now, expected_only=True)

    @property
    def counters(self) -> dict[str, int]:
        return self._counters

    @counters.setter
    def counters(self, values: dict[str, int]) -> None:
        self._counters = values
        with self.lock:
            self.health.counters(dict(values), time.time())

    def add(self, delta: Delta, now: float, worker: int = 0) -> list[Event]:
        """Merge one interval's deltas (``now``: when they were taken) from receiving process
        ``worker``; returns ``resumed`` events for silent hosts heard again."""
        events: list[Event] = []
        with self.lock:
            self.health.beat(worker, time.time())
            hosts = self.hosts
            for host, (messages, lost, crashes, *notes) in delta.items():
                f = hosts.get(host)
                if f is None:
                    f = HostFigures()
                    hosts[host] = f
                    if len(hosts) > self.max_hosts:
                        self._fold(*hosts.popitem(last=False))
                f.messages += messages
                f.lost += lost
                for kind, n in crashes.items():
                    f.crashes[kind] = f.crashes.get(kind, 0) + n
                if notes:
                    self._note(host, f, notes[0])
                if not f.last:
                    f.last = now
                if messages:
                    hosts.move_to_end(host)
                    f.expected_only = False
                    if f.silent:
                        f.silent = False
                        events.append(
                            Event("resumed", host, 0, now, {"last_received": iso(f.last)})
                        )
                    f.last = now
        return events

    def _note(self, host: str, f: HostFigures, note: dict[str, Any]) -> None:
        name = note.get("n")
        if isinstance(name, str) and name:
            f.name = name
        for token, port, received, seq in note.get("t", ()):
            self.tokens.add(host, token, port, received, seq)

    def delivery(self, token: str, sender: str | None = None) -> list[dict[str, Any]]:
        """Where ``token`` was seen (from ``sender`` only, when given), each sighting with its
        host's figures: never the message's text."""
        with self.lock:
            out = self.tokens.lookup(token, sender)
            for s in out:
                f = self.hosts.get(s["host"])
                s["received"] = iso(s["received"])
                s["name"] = f.name if f is not None else None
                s["stream"] = None if f is None else {
                    "messages": f.messages, "lost": f.lost,
                    "crashes": sum(f.crashes.values()), "last_message": iso(f.last),
                }
        return out

    def _reverse(self, host: str) -> str | None:
        return self.reverse.name(host) if self.reverse is not None else None

    def _fold(self, host: str, f: HostFigures) -> None:
        o = self.other
        self.other_used = True
        o.messages += f.messages
        o.lost += f.lost
        for kind, n in f.crashes.items():
            o.crashes[kind] = o.crashes.get(kind, 0) + n
        o.last = max(o.last, f.last)

    def check_silence(self, now: float) -> list[Event]:
        """``silent`` events for hosts not heard for ``silence`` seconds (each once)."""
        if self.silence is None:
            return []
        events = []
        limit = now - self.silence
        with self.lock:
            # hosts are ordered by last message: stop at the first recent one
            for host, f in self.hosts.items():
                if f.last > limit:
                    if not f.expected_only:
                        break
                    continue
                if not f.silent:
                    f.silent = True
                    last = None if f.expected_only else iso(f.last)
                    events.append(Event("silent", host, 0, now, {"last_received": last}))
        return events

    def snapshot(self) -> tuple[dict[str, int], list[tuple[str, HostFigures]]]:
        """Counters and per-host figures (``other`` last when used), copied under the lock."""
        with self.lock:
            rows = [
                (h, HostFigures(f.messages, f.lost, dict(f.crashes), f.last,
                                name=f.name or self._reverse(h)))
                for h, f in self.hosts.items()
                if not f.expected_only
            ]
            if self.other_used:
                o = self.other
                rows.append((OTHER, HostFigures(o.messages, o.lost, dict(o.crashes), o.last)))
            return dict(self.counters), rows

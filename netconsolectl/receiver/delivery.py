"""Proof of delivery and the sender's name: what the receiver notes about a host besides counts.

``netconsolectl test --expect-listen http://COLLECTOR:PORT`` writes a line with a fresh random
token to the sending machine's kernel log (``netconsolectl test netconsolectl-test-<16 hex>
from ...``) and asks the receiver's HTTP server (``--metrics``) whether that token arrived. The
receiver records tokens cheaply: only lines that start with the fixed marker (after the printk
timestamp of the basic format) are looked at, each token keeps its sightings (source address and
port, receive time, sequence number, never the text), and the table is bounded (the oldest
tokens go first), so a flood of marker lines costs a fixed amount of memory.

Per host it also notes the name the sender gives itself, the ``hostname`` userdata key
(``add --userdata hostname=web1``), for the ``netconsole_host_info`` metric.

Both are gathered where messages are handled (:class:`Notes`, one per receiving process; see
``Processor._message``) and travel with the per-host deltas once a second to the one
:class:`Tokens` table the HTTP server reads (see :mod:`netconsolectl.receiver.fleet`).

``/healthz`` (:func:`health`) tells whether every receiving process still reports and whether
the pipeline keeps up (no forwarder failing, no spool dropping) over the last
:data:`HEALTH_WINDOW` seconds.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict, deque
from typing import Any

#: Every test line carries this; the receiver checks for it before anything else.
MARK = "netconsolectl-test-"
#: A test line as ``netconsolectl test`` writes it, after the basic format's printk timestamp.
_LINE = re.compile(r"(?:\[ *[0-9]+\.[0-9]+\] )?netconsolectl test (netconsolectl-test-[0-9a-f]{16})"
                   r"(?: |$)")
#: A token as the HTTP endpoint accepts it.
TOKEN = re.compile(r"netconsolectl-test-[0-9a-f]{16}")
#: Userdata key naming the sender.
NAME_KEY = "hostname"
#: Longest name kept (the kernel allows 200 bytes of userdata value).
MAX_NAME = 64
#: Tokens kept by the table the HTTP server reads; the oldest go first.
MAX_TOKENS = 4096
#: Sightings kept per token (one per target that delivered it, normally).
MAX_SIGHTINGS = 8
#: Tokens one receiving process passes on per interval; more are counted, not kept.
MAX_NOTED = 256
#: Seconds after which a receiving process that stopped reporting counts as dead.
STALE = 5.0
#: Seconds over which ``/healthz`` looks for trouble in the counters.
HEALTH_WINDOW = 30.0
#: Counters whose growth means messages are not being handed on in time.
TROUBLE = ("forward_errors", "spool_dropped")


def token_of(text: str) -> str | None:
    """The token of a ``netconsolectl test`` line, or None for any other text."""
    m = _LINE.match(text)
    return m.group(1) if m else None


class Notes:
    """One receiving process's notes since the last :meth:`take`: names and tokens per host."""

    __slots__ = ("names", "overflow", "tokens")

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.tokens: list[tuple[str, str, int, float, int | None]] = []
        self.overflow = 0

    def see(self, m: Any) -> None:
        """A message with the marker in its text, or the first with fields of its host since
        :meth:`take` (the caller checks that much)."""
        fields = m.fields
        if fields and m.host not in self.names:
            # "" when it has none: looked at once per interval all the same
            self.names[m.host] = (fields.get(NAME_KEY) or "")[:MAX_NAME]
        if MARK in m.text:
            token = token_of(m.text)
            if token is None:
                return
            if len(self.tokens) >= MAX_NOTED:
                self.overflow += 1
                return
            self.tokens.append((m.host, token, m.port, m.received, m.seq))

    def take(self) -> dict[str, dict[str, Any]]:
        """Per host: ``{"n": name, "t": [[token, port, received, seq], ...]}`` (JSON-ready)."""
        out: dict[str, dict[str, Any]] = {}
        for host, name in self.names.items():
            if name:
                out[host] = {"n": name}
        for host, token, port, received, seq in self.tokens:
            out.setdefault(host, {}).setdefault("t", []).append([token, port, received, seq])
        self.names = {}
        self.tokens = []
        return out


class Tokens:
    """Every token seen (bounded), with where and when; read by the HTTP server's thread."""

    def __init__(self, max_tokens: int = MAX_TOKENS) -> None:
        self.max_tokens = max_tokens
        self.seen: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()

    def add(self, host: str, token: str, port: int, received: float, seq: int | None) -> None:
        if not TOKEN.fullmatch(token):
            return
        sightings = self.seen.get(token)
        if sightings is None:
            sightings = self.seen[token] = []
            if len(self.seen) > self.max_tokens:
                self.seen.popitem(last=False)
        if len(sightings) < MAX_SIGHTINGS:
            sightings.append({"host": host, "port": port, "received": received, "seq": seq})

    def lookup(self, token: str, sender: str | None = None) -> list[dict[str, Any]]:
        out = self.seen.get(token, [])
        return [dict(s) for s in out if sender is None or s["host"] == sender]


class Health:
    """When each receiving process last reported, and the counters over the last minute."""

    def __init__(self) -> None:
        self.beats: dict[int, float] = {}
        self.history: deque[tuple[float, dict[str, int]]] = deque()

    def beat(self, worker: int, now: float) -> None:
        self.beats[worker] = now

    def counters(self, values: dict[str, int], now: float) -> None:
        h = self.history
        h.append((now, values))
        while len(h) > 2 and h[1][0] < now - HEALTH_WINDOW:
            h.popleft()

    def report(self, now: float | None = None) -> tuple[bool, dict[str, Any]]:
        """(healthy, the JSON body of ``/healthz``)."""
        now = time.time() if now is None else now
        late = sorted(w for w, t in self.beats.items() if now - t > STALE)
        alive = bool(self.beats) and not late
        growing: list[str] = []
        if len(self.history) >= 2:
            (_, first), (_, last) = self.history[0], self.history[-1]
            growing = [k for k in TROUBLE if last.get(k, 0) > first.get(k, 0)]
        ok = alive and not growing
        body = {
            "status": "ok" if ok else ("failing" if self.beats else "starting"),
            "workers": {"reporting": len(self.beats) - len(late), "late": late,
                        "alive": alive},
            "pipeline": {"keeps_up": not growing, "growing": growing,
                         "window_seconds": HEALTH_WINDOW},
        }
        return ok, body

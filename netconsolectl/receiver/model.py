"""What the receiver hands to its outputs: messages, events and counters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Counter names, in the order they are printed.
COUNTER_NAMES = (
    "received",
    "messages",
    "fragments",
    "reassembled",
    "incomplete",
    "lost",
    "reordered",
    "duplicates",
    "resets",
    "shared_sources",
    "dropped",
    "malformed",
    "evicted_sources",
    "evicted_fragments",
    "fragment_errors",
    "fragment_overruns",
    "fragment_sets_limited",
    "forward_errors",
    "forward_resent",
    "forward_rejected",
    "spool_dropped",
    "output_dropped",
    "ignored",
    "crashes",
    "on_crash_errors",
)


@dataclass(slots=True)
class Message:
    """One netconsole message (a printk record), reassembled if it came in fragments.

    Fields a basic-format message lacks (release, facility, level, seq, ts_usec, cont) are None.
    ``text`` is always valid Unicode; ``raw`` keeps the bytes when they were not UTF-8.
    """

    host: str
    port: int
    #: Receive time, seconds since the epoch.
    received: float
    text: str
    release: str | None = None
    facility: int | None = None
    level: int | None = None
    seq: int | None = None
    ts_usec: int | None = None
    cont: bool | None = None
    fields: dict[str, str] = field(default_factory=dict)
    incomplete: bool = False
    #: The text's bytes when they are not valid UTF-8 (``text`` then has U+FFFD for each
    #: invalid byte); None for valid UTF-8, the usual case.
    raw: bytes | None = None
    #: Stable id: the same for the same kernel record (see netconsolectl.receiver.boots).
    id: str = ""

    @property
    def extended(self) -> bool:
        return self.seq is not None


@dataclass(slots=True)
class Event:
    """Something the receiver noticed about a stream: ``lost``, ``reorder``, ``duplicate``,
    ``reset``, ``shared_source`` (two senders share one address and port), ``malformed``,
    ``crash`` (a whole kernel crash report), ``silent`` or
    ``resumed``. ``data`` holds the type-specific keys (``first_seq``...)."""

    type: str
    host: str
    port: int
    received: float
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Counters:
    """Totals since start; :data:`COUNTER_NAMES` lists them."""

    values: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTER_NAMES, 0))

    def __getitem__(self, name: str) -> int:
        return self.values[name]

    def add(self, name: str, n: int = 1) -> None:
        self.values[name] += n

    def merge(self, other: dict[str, int]) -> None:
        for k, v in other.items():
            self.values[k] = self.values.get(k, 0) + v

    def line(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.values.items())

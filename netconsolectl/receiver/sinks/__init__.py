"""Outputs of the receiver: JSON lines, human lines, per-host files, syslog, journald.

Every output is a :class:`Sink`; mypy checks each one against it. :class:`SinkBase` gives the
members most outputs do not need (no files to reopen, no forwarding events, no counters).
"""

from __future__ import annotations

from typing import Protocol

from netconsolectl.receiver.model import Event, Message

#: The counters the outputs keep (summed over them into the receiver's counters).
SINK_COUNTERS = ("forward_errors", "forward_resent", "forward_rejected", "spool_dropped",
                 "output_dropped")


class Sink(Protocol):
    """An output. ``flush`` is called whenever the socket has been drained and on shutdown."""

    #: ``forward`` events (a pipeline lost or back) are written to this output too.
    wants_forward_events: bool

    def message(self, m: Message) -> None: ...

    def event(self, e: Event) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...

    def reopen(self) -> None:
        """SIGHUP: files are closed, to be opened again by name (after logrotate)."""

    def take_events(self) -> list[Event]:
        """A forwarder's state changes since the last call (``forward`` events)."""

    @property
    def broken(self) -> bool:
        """The reader went away (``listen | head`` finished): nothing more can be written."""

    def counts(self) -> dict[str, int]:
        """This output's counters, by name from :data:`SINK_COUNTERS`."""


class SinkBase:
    """Defaults for the members of :class:`Sink` an output does not need."""

    wants_forward_events = False

    def reopen(self) -> None:
        pass

    def take_events(self) -> list[Event]:
        return []

    @property
    def broken(self) -> bool:
        return False

    def counts(self) -> dict[str, int]:
        return {}

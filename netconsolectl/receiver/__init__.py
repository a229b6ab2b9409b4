"""The netconsole receiver behind ``netconsolectl listen``, usable as a library.

Importing it pulls in neither typer nor rich (rich only for coloured terminal output).

* :func:`~netconsolectl.receiver.wire.parse_datagram`: one UDP payload to a parsed record;
* :class:`~netconsolectl.receiver.core.Processor`: datagrams in, messages and events out to
  sinks, with ncfrag reassembly and per-source loss/reorder/reset tracking;
* :func:`~netconsolectl.receiver.run.run`: the whole receiver (sockets, workers, signals).
"""

from __future__ import annotations

from netconsolectl.receiver.core import Processor
from netconsolectl.receiver.model import COUNTER_NAMES, Counters, Event, Message
from netconsolectl.receiver.sinks import Sink
from netconsolectl.receiver.wire import parse_body, parse_datagram

__all__ = [
    "COUNTER_NAMES",
    "Counters",
    "Event",
    "Message",
    "Processor",
    "Sink",
    "parse_body",
    "parse_datagram",
]

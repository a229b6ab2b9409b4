"""The common half of every forwarder that must not lose messages (RELP, OTLP, syslog over TCP).

Receiving and forwarding are decoupled: the sink only appends each message to a
:class:`~netconsolectl.receiver.spool.Spool` (a buffered write, never a network call), encoded,
or as the JSON line the receiving process sent (:meth:`ReliableSink.ingest`, in the forwarding
process of :mod:`netconsolectl.receiver.sinks.process`); a thread of the forwarder reads the
spool in order, encodes what is not yet, and hands the records to a :class:`Transport`, which
says how many were delivered. A slow or absent pipeline therefore only
grows the spool (up to ``--spool-max-mib``, then the oldest are dropped and counted); it never
holds up the receive loop, so it never costs datagrams.

Connection trouble is reported while running: one line on stderr when the pipeline is lost and
one when it is back (at most one line per :data:`NOTICE_INTERVAL` seconds per forwarder; what
was held back is summed in the next line), and ``forward`` events for the other outputs
(``--json``): ``{"type": "forward", "state": "down"|"up"|"rejected", "url": ..., "error": ...}``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Protocol

from netconsolectl.errors import InvalidInput
from netconsolectl.receiver.model import Event, Message
from netconsolectl.receiver.sinks import SinkBase
from netconsolectl.receiver.spool import FSYNC_INTERVAL, Spool, SpoolBusy, record

#: Seconds between two stderr lines of one forwarder.
NOTICE_INTERVAL = 10.0
#: Reconnection back-off, seconds: first wait, and the most it grows to.
BACKOFF_MIN = 0.2
BACKOFF_MAX = 10.0
#: Seconds ``close`` spends delivering what is still spooled before giving up.
CLOSE_TIMEOUT = 5.0


def frame_lines(data: bytes, events: bool) -> tuple[bytes, int, int]:
    """The lines of ``data`` up to its last newline (``used`` bytes) that a forwarder spools,
    framed as spool records one after the other: ``(records, count, used)``. The messages, and
    with ``events`` the events but a forwarder's own (``forward``). The C module has the same
    function (``_fastjson.frame_lines``); ingesting is the forwarding process's work per
    message while the receiver is busiest."""
    used = data.rfind(b"\n") + 1
    out = bytearray()
    count = 0
    for line in data[:used].split(b"\n")[:-1]:
        if line.startswith(b'{"type":"message"') or (
                events and line and not line.startswith(b'{"type":"forward"')):
            out += record(line)
            count += 1
    return bytes(out), count, used


#: frame_lines in C when the module is built (what the forwarding process uses).
fast_frame_lines: Callable[[bytes, bool], tuple[bytes, int, int]]
try:
    from netconsolectl.receiver._fastjson import frame_lines as fast_frame_lines
except ImportError:  # built without a compiler
    fast_frame_lines = frame_lines


class TransportError(Exception):
    """The pipeline cannot take records now (connection lost, refused, 5xx, 429). The records
    not acknowledged are sent again after ``retry_after`` seconds (or the back-off)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _wait(e: TransportError, backoff: float) -> float:
    """The back-off, or what the pipeline asked for (Retry-After), never less than the first
    step (a collector answering ``Retry-After: 0`` is not hammered)."""
    return backoff if e.retry_after is None else max(e.retry_after, BACKOFF_MIN)


class Transport(Protocol):
    """A pipeline protocol, driven by one thread.

    ``send`` hands over records (in spool order) and returns how many of the oldest records not
    yet acknowledged are now acknowledged (some may be acknowledged by a later call: windowed
    protocols). ``rejected`` counts records the pipeline refused for good (not retried).
    """

    url: str
    #: The pipeline's address, for events.
    host: str
    port: int
    rejected: int

    def connect(self) -> None: ...

    def send(self, records: list[bytes]) -> int: ...

    def in_flight(self) -> int: ...

    def poll(self, timeout: float) -> int: ...

    def disconnect(self) -> None: ...

    def close_session(self) -> None: ...

    def batch_size(self) -> int: ...


class Notifier:
    """Rate-limited lines on stderr, and events for the other outputs."""

    def __init__(self, url: str, err: Callable[[str], None] | None) -> None:
        self.url = url
        self.err = err
        self.last = -NOTICE_INTERVAL
        self.held = 0
        self.told_down = False
        self.lock = threading.Lock()
        self.events: list[tuple[str, dict[str, object]]] = []

    def note(self, state: str, line: str, **data: object) -> None:
        with self.lock:
            self.events.append((state, data))
        if self.err is None:
            return
        now = time.monotonic()
        # A recovery is always told when the loss was; otherwise one line per interval.
        if now - self.last < NOTICE_INTERVAL and not (state == "up" and self.told_down):
            self.held += 1
            return
        more = f" ({self.held} more notices held back)" if self.held else ""
        self.held = 0
        self.last = now
        self.told_down = state == "down"
        with contextlib.suppress(Exception):
            self.err(f"netconsolectl: forward {self.url}: {line}{more}")

    def take(self) -> list[tuple[str, dict[str, object]]]:
        with self.lock:
            ev, self.events = self.events, []
        return ev


def spool_label(url: str) -> str:
    """A directory name for one forwarder's spool: the URL with unsafe characters replaced."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", url).strip("_")[:120] or "forward"


def orphaned_spools(spool_dir: str, workers: int) -> list[str]:
    """Worker spools (``LABEL/wN``) with N >= ``workers`` that still hold records: left by a
    run with more workers, and not replayed by this one."""
    found = []
    try:
        labels = sorted(os.listdir(spool_dir))
    except OSError:
        return []
    for label in labels:
        base = os.path.join(spool_dir, label)
        if not os.path.isdir(base):
            continue
        for name in sorted(os.listdir(base)):
            if not (name.startswith("w") and name[1:].isdigit() and int(name[1:]) >= workers):
                continue
            path = os.path.join(base, name)
            with contextlib.suppress(OSError):
                if any(f.endswith(".seg") and os.path.getsize(os.path.join(path, f))
                       for f in os.listdir(path)):
                    found.append(path)
    return found


class ReliableSink(SinkBase):
    """A sink that spools encoded messages and delivers them from its own thread."""

    def __init__(
        self,
        url: str,
        transport: Transport,
        encode: Callable[[Message], bytes],
        encode_event: Callable[[Event], bytes] | None,
        *,
        spool_dir: str | None,
        spool_max_bytes: int,
        worker: int = 0,
        err: Callable[[str], None] | None = None,
    ) -> None:
        self.url = url
        self.transport = transport
        self.encode = encode
        self.encode_event = encode_event
        self.errors = 0
        self.forward_resent = 0
        self.notifier = Notifier(url, err)
        self.temporary = spool_dir is None
        if spool_dir is None:
            base = tempfile.mkdtemp(prefix="netconsolectl-spool-")
            path = base
        else:
            base = ""
            path = os.path.join(spool_dir, spool_label(url), f"w{worker}")
        self._tmp_base = base
        try:
            self.spool = Spool(path, spool_max_bytes, warn=self._warn)
        except SpoolBusy:
            raise InvalidInput(
                f"--spool-dir: {path} is in use by another listen process",
                hint="give each listen process its own --spool-dir",
            ) from None
        except OSError as e:
            raise InvalidInput(
                f"--spool-dir: cannot use {path}: {e.strerror}", errno=e.errno
            ) from None
        self.replayed = self.spool.pending()
        if self.replayed and err is not None:
            err(f"netconsolectl: forward {url}: {self.replayed} spooled messages to deliver "
                "from the last run")
        self._stop = threading.Event()
        self._deadline = 0.0
        self.connected = False
        self.thread = threading.Thread(target=self._run, name=f"forward {url}", daemon=True)
        self.thread.start()
        # fsync in a thread of its own: the delivering thread may wait long for the CPU (the
        # forwarding process runs it as SCHED_IDLE) and the promise of at most about a second
        # lost on a power cut must not wait with it
        self._sync_stop = threading.Event()
        self.syncer = threading.Thread(target=self._sync, name=f"spool sync {url}", daemon=True)
        self.syncer.start()

    def _warn(self, line: str) -> None:
        self.notifier.note("spool", line)

    # -- counters ----------------------------------------------------------------------------

    @property
    def spool_dropped(self) -> int:
        return self.spool.dropped

    @property
    def forward_rejected(self) -> int:
        return self.transport.rejected

    def counts(self) -> dict[str, int]:
        return {"forward_errors": self.errors, "forward_resent": self.forward_resent,
                "forward_rejected": self.forward_rejected, "spool_dropped": self.spool_dropped}

    # -- receiving thread ----------------------------------------------------------------------

    def message(self, m: Message) -> None:
        self.spool.append(self.encode(m))

    def event(self, e: Event) -> None:
        if self.encode_event is not None and e.type != "forward":
            self.spool.append(self.encode_event(e))

    def flush(self) -> None:
        self.spool.flush()

    @property
    def spools_events(self) -> bool:
        """Events are spooled too (the ``events`` of :func:`frame_lines` for this sink)."""
        return self.encode_event is not None

    def ingest(self, records: bytes, count: int) -> None:
        """JSON lines (``--json``'s) from the receiving process, framed by :func:`frame_lines`,
        spooled as they are: encoding waits for the forwarding thread (:meth:`encoded`)."""
        self.spool.append_framed(records, count)
        self.spool.flush()

    def encoded(self, record: bytes) -> bytes:
        """A record read from the spool as the pipeline takes it."""
        if not record.startswith(b"{"):
            return record  # encoded when it was spooled (RFC 5424 starts with "<")
        import json

        from netconsolectl.receiver.sinks.jsonl import event_from_json, message_from_json

        d = json.loads(record)
        if d["type"] == "message":
            return self.encode(message_from_json(d))
        assert self.encode_event is not None  # ingest spools events only with an encoder
        return self.encode_event(event_from_json(d))

    def take_events(self) -> list[Event]:
        """Forward state changes since the last call, as events for ``--json``."""
        now = time.time()
        t = self.transport
        return [
            Event("forward", t.host, t.port, now, {"state": state, "url": self.url, **data})
            for state, data in self.notifier.take()
        ]

    def close(self) -> None:
        """Deliver what is spooled for up to :data:`CLOSE_TIMEOUT` s, then stop. With a spool
        directory the rest waits there for the next run; without, it is counted as lost."""
        self.spool.flush()
        self._deadline = time.monotonic() + CLOSE_TIMEOUT
        self._stop.set()
        with self.spool.cond:
            self.spool.cond.notify_all()
        self.thread.join(CLOSE_TIMEOUT + 5.0)
        self._sync_stop.set()
        self.syncer.join()
        left = self.spool.pending()
        self.spool.close()
        if self.temporary:
            self.errors += left
            with contextlib.suppress(OSError):
                shutil.rmtree(self._tmp_base)
            if left:
                self.notifier.note("down", f"{left} messages not delivered (no --spool-dir)")
        elif left:
            self.notifier.note("spooled", f"{left} messages kept in the spool for the next run")

    # -- forwarding thread ---------------------------------------------------------------------

    def _stopping(self) -> bool:
        """Stop once everything is delivered, or at the deadline; at once when the pipeline is
        down and a spool directory keeps the rest for the next run."""
        return self._stop.is_set() and (
            time.monotonic() >= self._deadline
            or self.spool.pending() == 0
            or (not self.temporary and not self.connected)
        )

    def _run(self) -> None:
        backoff = BACKOFF_MIN
        t = self.transport
        spool = self.spool
        down_since = 0.0
        while not self._stopping():
            spool.save_cursor()
            if not self.connected:
                if self._stop.is_set() and spool.pending() == 0:
                    break
                try:
                    t.connect()
                except TransportError as e:
                    self.errors += 1
                    if not down_since:
                        down_since = time.monotonic()
                        self.notifier.note("down", f"cannot connect: {e}", error=str(e))
                    self._sleep(_wait(e, backoff))
                    backoff = min(BACKOFF_MAX, backoff * 2)
                    continue
                self.connected = True
                if down_since:
                    self.notifier.note(
                        "up",
                        f"connected again after {time.monotonic() - down_since:.1f} s; "
                        f"{spool.pending()} messages to deliver",
                    )
                    down_since = 0.0
            try:
                room = t.batch_size() - t.in_flight()
                records = [self.encoded(r) for r in spool.read(room)] if room > 0 else []
                if records:
                    done = t.send(records)
                elif t.in_flight():
                    done = t.poll(0.2)
                else:
                    if self._stop.is_set():
                        break
                    spool.wait(0.2)
                    continue
                if done:
                    spool.ack(done)
                backoff = BACKOFF_MIN
            except TransportError as e:
                self.errors += 1
                t.disconnect()
                self.connected = False
                resent = spool.rewind()
                self.forward_resent += resent
                down_since = time.monotonic()
                self.notifier.note(
                    "down", f"{e}; {spool.pending()} messages spooled, retrying", error=str(e)
                )
                self._sleep(_wait(e, backoff))
                backoff = min(BACKOFF_MAX, backoff * 2)
        with contextlib.suppress(Exception):
            if self.connected:
                t.close_session()
            t.disconnect()
        spool.save_cursor(force=True)

    def _sync(self) -> None:
        while not self._sync_stop.wait(FSYNC_INTERVAL):
            self.spool.sync()

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._stopping():
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.1))

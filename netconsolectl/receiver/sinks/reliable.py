"""The common half of every forwarder that must not lose messages (RELP, OTLP, syslog over TCP).

Receiving and forwarding are decoupled: in the forwarding process of
:mod:`netconsolectl.receiver.sinks.process`, the sink only appends the JSON lines the receiving
process sent to a disk spool (:meth:`ReliableSink.ingest`: a buffered write, never a network
call); a delivery process of the forwarder's own (:class:`Deliverer`) reads the spool in order
(:mod:`netconsolectl.receiver.spool`), encodes each record, and hands them to a
:class:`Transport`, which says how many were delivered. A slow or absent pipeline therefore
only grows the spool (up to ``--spool-max-mib``, then the oldest are dropped and counted); it
never holds up the receive loop, so it never costs datagrams.

Connection trouble is reported while running: one line on stderr when the pipeline is lost and
one when it is back (at most one line per :data:`NOTICE_INTERVAL` seconds per forwarder; what
was held back is summed in the next line), and ``forward`` events for the other outputs
(``--json``): ``{"type": "forward", "state": "down"|"up"|"rejected", "url": ..., "error": ...}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from typing import NoReturn, Protocol

from netconsolectl.errors import InvalidInput
from netconsolectl.receiver.model import Event, Message
from netconsolectl.receiver.sinks.jsonl import Reports
from netconsolectl.receiver.spool import SpoolBusy, SpoolReader, SpoolWriter, record

#: Seconds between two stderr lines of one forwarder.
NOTICE_INTERVAL = 10.0
#: Reconnection back-off, seconds: first wait, and the most it grows to.
BACKOFF_MIN = 0.2
BACKOFF_MAX = 10.0
#: Seconds ``close`` spends delivering what is still spooled before giving up.
CLOSE_TIMEOUT = 5.0
#: Seconds between two reports of a delivery process (and of the forwarding process).
REPORT_INTERVAL = 0.5


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
    #: Told, one line each, of the records the pipeline refused for good (set by Deliverer).
    err: Callable[[str], None] | None

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


def child(body: Callable[[], int]) -> NoReturn:
    """The rest of a forked process's life: ``body``, then its exit code (1 and the traceback
    on standard error if it raised; ``os._exit``, so nothing of the parent's runs at exit)."""
    code = 1
    try:
        code = body()
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def close_all_but(keep: set[int]) -> None:
    """Close every descriptor of this process but ``keep``: a process forked from the
    receiver holds nothing of its (its UDP socket above all: a socket held by a process that
    never reads it would keep taking its share of the datagrams)."""
    for name in os.listdir("/proc/self/fd"):
        if int(name) not in keep:
            with contextlib.suppress(OSError):
                os.close(int(name))


class ReliableSink:
    """In the forwarding process: one forwarder's spool, written here, and the delivery
    process (:class:`Deliverer`, forked here) that reads it and talks to the pipeline.

    The delivery process runs as ``SCHED_IDLE``: it gets the CPU time nothing else on the host
    wants (a waking receive loop or forwarding process takes the CPU from it at once), so while
    the receiver is busy the spool grows rather than datagrams being lost at the socket, and it
    catches up when it is quiet. (At ``nice`` 10 delivery still took about a fifth of a 2-core
    machine from the receive loops at full rate, measured with ``bench/forward.py``.) It is a
    process, not a thread, so that waiting for a CPU it can never hold up the writing here.

    It reports to this one on a pipe: ``{"counts": {...}, "events": [[state, data], ...]}``
    every :data:`REPORT_INTERVAL` seconds and at the end; it stops at the end of its control
    pipe (:meth:`stop`)."""

    def __init__(
        self,
        deliverer: Deliverer,
        *,
        spool_dir: str | None,
        spool_max_bytes: int,
        worker: int = 0,
        err: Callable[[str], None] | None = None,
    ) -> None:
        self.url = url = deliverer.url
        self.host, self.port = deliverer.transport.host, deliverer.transport.port
        #: Events are spooled too (the ``events`` of :func:`frame_lines` for this sink).
        self.spools_events = deliverer.encode_event is not None
        self.notifier = Notifier(url, err)
        deliverer.temporary = spool_dir is None
        if spool_dir is None:
            path = self._tmp_base = tempfile.mkdtemp(prefix="netconsolectl-spool-")
        else:
            self._tmp_base = ""
            path = os.path.join(spool_dir, spool_label(url), f"w{worker}")
        try:
            self.spool = SpoolWriter(path, spool_max_bytes, warn=self._warn)
        except SpoolBusy:
            raise InvalidInput(
                f"--spool-dir: {path} is in use by another listen process",
                hint="give each listen process its own --spool-dir",
            ) from None
        except OSError as e:
            raise InvalidInput(
                f"--spool-dir: cannot use {path}: {e.strerror}", errno=e.errno
            ) from None
        self.replayed = self.spool.shared.pending()
        if self.replayed and err is not None:
            err(f"netconsolectl: forward {url}: {self.replayed} spooled messages to deliver "
                "from the last run")
        self._delivery = deliverer
        self._counts: dict[str, int] = {}
        self._events: list[tuple[str, dict[str, object]]] = []
        self._before: dict[str, int] = {}  # counted by delivery processes that ended
        self._stopped = False
        self._respawn_at = 0.0
        self._spawn()

    def _spawn(self) -> None:
        ctl_r, self._ctl = os.pipe()
        report_r, report_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            shared = self.spool.shared

            def deliver() -> int:
                close_all_but({0, 1, 2, ctl_r, report_w, shared.wake_r, shared.wake_w})
                return self._delivery.serve(SpoolReader(self.spool), ctl_r, report_w)

            child(deliver)
        os.close(ctl_r)
        os.close(report_w)
        self._reports = Reports(report_r)

    def _warn(self, line: str) -> None:
        self.notifier.note("spool", line)

    def ingest(self, records: bytes, count: int) -> None:
        """JSON lines (``--json``'s) from the receiving process, framed by :func:`frame_lines`,
        spooled as they are: encoding waits for the delivery process (:meth:`Deliverer.encoded`)."""
        self.spool.append_framed(records, count)
        self.spool.flush()

    # -- what the delivery process reports -------------------------------------------------------

    def _poll(self, timeout: float = 0.0) -> None:
        for report in self._reports.read(timeout):
            self._counts = report["counts"]
            self._events += [(state, data) for state, data in report["events"]]
        if self._stopped or not self._reports.ended:
            return
        if self._ctl >= 0:
            self._ended()
        elif time.monotonic() >= self._respawn_at:
            self._spawn()

    def _ended(self) -> None:
        """The delivery process ended before it was told to stop (killed, or a defect it told
        on standard error): said as a ``down`` notice, and another one starts
        :data:`BACKOFF_MAX` seconds later, from the acknowledged position."""
        _, status = os.waitpid(self.pid, 0)
        os.close(self._ctl)
        self._ctl = -1
        code = os.waitstatus_to_exitcode(status)
        how = f"was killed by signal {-code}" if code < 0 else f"ended with exit status {code}"
        self.notifier.note("down", f"the delivery process {how}; another starts in "
                           f"{BACKOFF_MAX:.0f} s", error=f"the delivery process {how}")
        for k, v in self._counts.items():  # the next one counts from zero
            self._before[k] = self._before.get(k, 0) + v
        self._counts = {}
        self._respawn_at = time.monotonic() + BACKOFF_MAX

    def counts(self) -> dict[str, int]:
        self._poll()
        out = {k: self._before.get(k, 0) + self._counts.get(k, 0)
               for k in ("forward_errors", "forward_resent", "forward_rejected")}
        return {**out, "spool_dropped": self.spool.dropped}

    def take_events(self) -> list[Event]:
        """Forward state changes since the last call, as events for ``--json``."""
        self._poll()
        now = time.time()
        taken, self._events = self._events + self.notifier.take(), []
        return [Event("forward", self.host, self.port, now, {"state": state, "url": self.url,
                                                              **data})
                for state, data in taken]

    def stop(self) -> None:
        """Tell the delivery process to deliver what is spooled for up to
        :data:`CLOSE_TIMEOUT` s, then stop."""
        self.spool.flush()
        self._stopped = True
        if self._ctl >= 0:
            os.close(self._ctl)
            self._ctl = -1

    def close(self) -> None:
        """:meth:`stop`, wait for the delivery process's last report, close the spool. With a
        spool directory the rest waits there for the next run; without, it is counted as
        lost (by the delivery process)."""
        self.stop()
        deadline = time.monotonic() + CLOSE_TIMEOUT + 10.0
        while not self._reports.ended and time.monotonic() < deadline:
            self._poll(0.5)
        if not self._reports.ended:  # stuck in a call to the pipeline: it has had its time
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        self.spool.close()
        if self._tmp_base:
            with contextlib.suppress(OSError):
                shutil.rmtree(self._tmp_base)


class Deliverer:
    """What a delivery process does (made by the forwarding process, run in each delivery
    process it forks): reads the spool in order, encodes, sends, acknowledges."""

    def __init__(
        self,
        url: str,
        transport: Transport,
        encode: Callable[[Message], bytes],
        encode_event: Callable[[Event], bytes] | None,
        err: Callable[[str], None] | None = None,
        *,
        encode_json: Callable[[bytes], bytes | None] | None = None,
    ) -> None:
        self.url = url
        self.transport = transport
        self.encode = encode
        self.encode_event = encode_event
        #: What ``encode`` makes of a spooled message line, straight from its bytes, or None
        #: when the line is not of the shape it takes (forward.syslog_json, otlp.otlp_json).
        self.encode_json = encode_json
        #: Without a spool directory (set by ReliableSink): what is left at the end is lost.
        self.temporary = False
        self.errors = 0
        self.forward_resent = 0
        self.notifier = Notifier(url, err)
        transport.err = lambda line: self.notifier.note("rejected", line, error=line)
        self._stop = threading.Event()
        self._deadline = 0.0
        self.connected = False
        self.spool: SpoolReader  # in the delivery process (serve)

    def counts(self) -> dict[str, int]:
        return {"forward_errors": self.errors, "forward_resent": self.forward_resent,
                "forward_rejected": self.transport.rejected}

    def serve(self, spool: SpoolReader, ctl: int, report: int) -> int:
        """The delivery process's life: until the end of ``ctl``, then up to
        :data:`CLOSE_TIMEOUT` s more to deliver what is spooled."""
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        self.spool = spool
        reporter = threading.Thread(target=self._watch, args=(ctl, report), daemon=True)
        reporter.start()
        self._run()
        left = spool.pending()
        if self.temporary:
            self.errors += left
            if left:
                self.notifier.note("down", f"{left} messages not delivered (no --spool-dir)")
        elif left:
            self.notifier.note("spooled", f"{left} messages kept in the spool for the next run")
        spool.close()
        self._report(report)
        return 0

    def _watch(self, ctl: int, report: int) -> None:
        """Reports every :data:`REPORT_INTERVAL` s; the end of ``ctl`` starts the end."""
        while not self._stop.is_set():
            if select.select([ctl], [], [], REPORT_INTERVAL)[0] and not os.read(ctl, 64):
                self._deadline = time.monotonic() + CLOSE_TIMEOUT
                self._stop.set()
                self.spool.wake()
            self._report(report)

    def _report(self, fd: int) -> None:
        line = json.dumps({"counts": self.counts(), "events": self.notifier.take()},
                          separators=(",", ":")) + "\n"
        view = memoryview(line.encode())
        with contextlib.suppress(OSError):
            while view:
                view = view[os.write(fd, view):]

    def encoded(self, record: bytes) -> bytes:
        """A record read from the spool as the pipeline takes it.

        One this version cannot read (the spool of an older one, a defect) goes as a basic
        message whose text is the record, counted in ``forward_errors``: were it to raise, the
        delivery process would end, and the next one would stop at the same record again, with
        nothing after it ever delivered."""
        if not record.startswith(b"{"):
            return record  # encoded when it was spooled (RFC 5424 starts with "<")
        if self.encode_json is not None:
            line = self.encode_json(record)
            if line is not None:
                return line

        from netconsolectl.receiver.sinks.jsonl import event_from_json, message_from_json

        try:
            d = json.loads(record)
            if d["type"] == "message":
                return self.encode(message_from_json(d))
            assert self.encode_event is not None  # ingest spools events only with an encoder
            return self.encode_event(event_from_json(d))
        except MemoryError:
            raise
        except Exception as e:
            self.errors += 1
            why = f"{type(e).__name__}: {e}"
            self.notifier.note("rejected", f"a spooled record could not be read ({why}); sent "
                               "as the text of a message", error=why)
            return self.encode(Message("", 0, time.time(), record.decode("utf-8", "replace")))

    # -- delivering ---------------------------------------------------------------------

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

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._stopping():
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.1))

"""The forwarders that spool (syslog+tcp, relp, otlp) in a process of their own.

A forwarder thread inside the receiving process shares its interpreter lock: encoding every
message for the pipeline and talking to it costs the receive loop time, which at high rates
means datagrams lost at the socket. Here the receiving process only writes each message as a
JSON line (the same line ``--json`` prints, so the C fast path makes it) into a pipe. The
forwarding process (forked when the outputs are opened, one per receiving process) appends the
lines to each forwarder's disk spool as they are (:meth:`ReliableSink.ingest`), and each
forwarder's delivery process (forked by it in turn) encodes them for its pipeline when it reads
them back. A collector slower than the senders only grows the spool; the receive loop never
waits for it.

Back from the forwarding process, on a second pipe, come JSON lines: ``{"ready": true}`` or
``{"error": "..."}`` once at start, then about twice a second and at the end
``{"counts": {...}, "events": [...]}`` (the forwarders' counters and ``forward`` events).

The forwarding process stops at the end of its pipe (the receiving process closed the output,
or died): its delivery processes deliver what they can for up to ``CLOSE_TIMEOUT`` seconds,
and with ``--spool-dir`` the rest is kept for the next run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from netconsolectl.errors import InvalidInput
from netconsolectl.receiver.model import Event
from netconsolectl.receiver.output import FdWriter
from netconsolectl.receiver.sinks.jsonl import JsonSink, Reports, event_from_json

#: Bytes the pipe to the forwarding process may hold (with CAP_SYS_RESOURCE; otherwise the
#: system's fs.pipe-max-size, 1 MiB by default), and bytes the receiving process holds itself
#: when the pipe is full: bursts wait there, as compact JSON lines, while the forwarding process
#: is short of CPU, instead of the receive loop waiting on a full pipe.
PIPE_BYTES = 64 << 20


#: Bytes taken off the pipe at a time.
READ_SIZE = 1 << 20
#: Seconds the forwarding process lets lines gather in the pipe after a read that found it
#: less than a quarter full (or a quarter of READ_SIZE). Woken for every batch the receive loop
#: wrote (a few dozen lines under load), it spent about as much time per line on waking,
#: reading and writing the spool as on the lines themselves. Lines wait in the pipe, not lost
#: if the receiving process ends, and reach the spool up to 10 ms later (more when the CPUs are
#: busy: the thread wakes late); the receiving process holds what a full pipe cannot take.
GATHER = 0.01


def _widen(fd: int) -> None:
    for size in (PIPE_BYTES, 1 << 20):
        try:
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)
            return
        except OSError:
            continue


class ForwardProcess(JsonSink):
    """In the receiving process: the output that hands messages to the forwarding process."""

    #: A forwarder: its own ``forward`` events go to the other outputs, not into the pipe.
    wants_forward_events = False

    def __init__(self, urls: list[str], *, spool_dir: str | None, spool_max_bytes: int | None,
                 worker: int, err: Callable[[str], None] | None) -> None:
        data_r, data_w = os.pipe()
        _widen(data_w)
        back_r, back_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            from netconsolectl.receiver.sinks.reliable import child

            os.close(data_w)
            os.close(back_r)
            child(lambda: _forwarding_process(urls, data_r, back_w, spool_dir=spool_dir,
                                              spool_max_bytes=spool_max_bytes, worker=worker,
                                              err=err))
        os.close(data_r)
        os.close(back_w)
        os.set_blocking(data_w, False)
        super().__init__(FdWriter(data_w, spill=PIPE_BYTES))
        self.pid = pid
        self.back = Reports(back_r)
        self._counts: dict[str, int] = {}
        self._events: list[Event] = []
        lines: list[dict[str, Any]] = []
        while not lines and not self.back.ended:
            lines = self.back.read(None)
        first = lines.pop(0) if lines else None
        if first is None or "error" in first:
            self._reap()
            raise InvalidInput((first or {}).get("error") or "--forward: the forwarding "
                               "process did not start")
        self._take(lines)

    # -- the answers ---------------------------------------------------------------------------

    def _take(self, reports: list[dict[str, Any]]) -> None:
        for report in reports:
            self._counts = report["counts"]
            self._events += [event_from_json(e) for e in report["events"]]

    def _poll(self) -> None:
        self._take(self.back.read())

    def counts(self) -> dict[str, int]:
        self._poll()
        return self._counts

    def take_events(self) -> list[Event]:
        self._poll()
        events, self._events = self._events, []
        return events

    @property
    def broken(self) -> bool:
        return False  # a receiver that forwards keeps receiving (and spooling) regardless

    def event(self, e: Event) -> None:
        if e.type != "forward":
            super().event(e)

    def reopen(self) -> None:
        pass

    def close(self) -> None:
        """End of the pipe: the forwarding process delivers what it can, then reports."""
        self.out.flush(wait=True)
        with contextlib.suppress(OSError):
            os.close(self.out.fd)
        while not self.back.ended:
            self._take(self.back.read(None))
        self._reap()

    def _reap(self) -> None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


# -- the forwarding process -------------------------------------------------------------------


def _send(fd: int, obj: dict[str, Any]) -> None:
    view = memoryview((json.dumps(obj, separators=(",", ":")) + "\n").encode())
    while view:
        view = view[os.write(fd, view):]


def _forwarding_process(urls: list[str], data: int, back: int, *, spool_dir: str | None,
                        spool_max_bytes: int | None, worker: int,
                        err: Callable[[str], None] | None) -> int:
    """Spool what comes on ``data`` into a forwarder per URL until the pipe ends."""
    from netconsolectl.errors import NetconsoleError
    from netconsolectl.receiver.sinks.forward import open_forwarder
    from netconsolectl.receiver.sinks.reliable import ReliableSink, close_all_but
    from netconsolectl.receiver.spool import sync_every

    # The receiving process decides when this one ends (by closing the pipe), whatever the
    # signals sent to the whole group.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_IGN)
    close_all_but({0, 1, 2, data, back})
    _keep_heap()  # before the delivery processes are forked: they read the spool a MiB a time
    sinks: list[ReliableSink] = []
    try:
        for url in urls:  # each forks its delivery process
            sink = open_forwarder(url, spool_dir=spool_dir, spool_max_bytes=spool_max_bytes,
                                  worker=worker, err=err)
            assert isinstance(sink, ReliableSink)
            sinks.append(sink)
    except NetconsoleError as e:
        for s in sinks:
            s.close()
        _send(back, {"error": str(e)})
        return 1
    _send(back, {"ready": True})
    stop = threading.Event()
    syncer = sync_every([s.spool for s in sinks], stop)
    _pump(data, sinks, lambda: _report(back, sinks))
    for s in sinks:  # all deliver what is left at once, then each is waited for
        s.stop()
    stop.set()
    syncer.join()  # before the spools close (each syncs a last time then)
    for s in sinks:
        s.close()
    _report(back, sinks)
    return 0


def _keep_heap() -> None:
    """Each read of the pipe (and each batch of spool records made from it) is a buffer of
    about a MiB: glibc maps one that size afresh and unmaps it when freed, and trims the heap
    top, so every read paid page faults on fresh memory (about 15 % of this process's time in a
    profile of ``bench/forward.py``). Kept in the heap instead."""
    import ctypes

    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameters
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        libc.mallopt(m_mmap_threshold, 16 << 20)
        libc.mallopt(m_trim_threshold, 64 << 20)


def _pump(data: int, sinks: list[Any], report: Callable[[], None]) -> None:
    from netconsolectl.receiver.sinks.reliable import REPORT_INTERVAL, fast_frame_lines

    buf = b""
    quarter = min(READ_SIZE, fcntl.fcntl(data, fcntl.F_GETPIPE_SZ)) // 4
    next_report = time.monotonic() + REPORT_INTERVAL
    while True:
        ready, _, _ = select.select([data], [], [], REPORT_INTERVAL)
        if ready:
            chunk = os.read(data, READ_SIZE)
            if not chunk:
                return
            buf += chunk
            # framed once for every forwarder that spools the same lines
            framed: dict[bool, tuple[bytes, int, int]] = {}
            used = 0
            for s in sinks:
                events = s.spools_events
                if events not in framed:
                    framed[events] = fast_frame_lines(buf, events)
                records, count, used = framed[events]
                s.ingest(records, count)
            buf = buf[used:]
            if len(chunk) < quarter:  # the lines come slowly: let the next ones gather
                time.sleep(GATHER)
        if time.monotonic() >= next_report:
            next_report = time.monotonic() + REPORT_INTERVAL
            report()


def _report(back: int, sinks: list[Any]) -> None:
    counts: dict[str, int] = {}
    events = []
    for s in sinks:
        for k, v in s.counts().items():
            counts[k] = counts.get(k, 0) + v
        events += [{"type": e.type, "host": e.host, "port": e.port, "received": e.received,
                    **e.data} for e in s.take_events()]
    with contextlib.suppress(OSError):
        _send(back, {"counts": counts, "events": events})

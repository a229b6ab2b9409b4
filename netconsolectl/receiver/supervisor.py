"""``listen --workers N``: the parent process that starts, watches, restarts and stops workers.

Each worker is a forked process running its own receive loop. Between a worker and the parent
runs one :class:`Channel`: a pipe of JSON lines, each an object with a ``kind``:

* ``{"kind": "counters", "final": bool, "counters": {...}}``: the worker's totals, on SIGUSR1
  (``final`` false) and when it stops (``final`` true);
* ``{"kind": "stats", "counters": {...}, "delta": {...}}``: once a second with the fleet
  features on (per-host figures since the last line, see :mod:`netconsolectl.receiver.fleet`).

A pipe per worker means a line of any length arrives whole, and the end of the pipe tells the
parent that the worker is gone with every line it wrote already read.

The :class:`Supervisor` owns the processes: it forwards signals (SIGINT/SIGTERM stop, SIGUSR1
asks every worker for its counters and prints the sum once all answered, SIGHUP reopens files),
restarts a worker that died (with a back-off when it keeps dying, so a worker that cannot start
does not spin), keeps the counters of the workers it replaced, and drains the last lines at
exit. The signal handlers are in place before the first worker is forked and signals are blocked
around each fork, so a Ctrl-C at any moment of start-up stops the whole receiver.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from netconsolectl.receiver.model import COUNTER_NAMES

#: Restart back-off: the first restart is at once; a worker that dies again within
#: :data:`STABLE_SECONDS` of its start waits twice as long as the last time, up to the cap.
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
STABLE_SECONDS = 10.0
#: Seconds the parent waits for every worker's answer to SIGUSR1 before printing what it has.
ROUND_TIMEOUT = 2.0
#: Longest sleep of the parent's loop (timers: restarts, rounds, the fleet tick).
POLL = 0.2

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGHUP)


class Channel:
    """The line channel of one worker: the worker writes, the parent reads."""

    def __init__(self) -> None:
        self.rfd, self.wfd = os.pipe()
        with contextlib.suppress(OSError):  # room for a second of fleet figures of many hosts
            fcntl.fcntl(self.wfd, fcntl.F_SETPIPE_SZ, 1 << 20)
        self._buf = b""

    @staticmethod
    def send(fd: int, obj: dict[str, Any]) -> None:
        """Write one line (the whole of it, even past the pipe's buffer: the parent reads)."""
        view = memoryview((json.dumps(obj, separators=(",", ":")) + "\n").encode())
        while view:
            view = view[os.write(fd, view):]

    def read(self) -> list[dict[str, Any]] | None:
        """The whole lines available now; None once the worker's end is closed."""
        try:
            chunk = os.read(self.rfd, 1 << 20)
        except OSError:
            chunk = b""
        if not chunk:
            return None
        *lines, self._buf = (self._buf + chunk).split(b"\n")
        return [json.loads(line) for line in lines if line]

    def close(self) -> None:
        for fd in (self.rfd, self.wfd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.rfd = self.wfd = -1


@dataclass
class Worker:
    index: int
    pid: int
    channel: Channel
    started: float
    #: The latest counters the worker reported.
    counters: dict[str, int] = field(default_factory=dict)
    exited: bool = False


def add_counters(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    """Sum two counter sets, in the order of :data:`COUNTER_NAMES`."""
    return {k: a.get(k, 0) + b.get(k, 0) for k in (*COUNTER_NAMES, *(set(a) | set(b)))}


class Supervisor:
    """Start ``n`` workers running ``body(index, channel_fd)``, watch them until stopped.

    ``on_line(index, line)`` gets every ``stats`` line; ``on_tick()`` runs on every turn of the
    loop (at least every :data:`POLL` seconds); ``on_round(totals)`` prints the counters of a
    SIGUSR1 round; ``on_hup()`` runs in the parent after SIGHUP went to the workers.
    ``keep_fds`` are the parent's descriptors a worker must not hold (closed after fork).
    """

    def __init__(
        self,
        n: int,
        body: Callable[[int, int], None],
        *,
        err: Callable[[str], None],
        on_line: Callable[[int, dict[str, Any]], None] | None = None,
        on_tick: Callable[[], None] | None = None,
        on_round: Callable[[dict[str, int]], None] | None = None,
        on_hup: Callable[[], None] | None = None,
    ) -> None:
        self.n = n
        self.body = body
        self.err = err
        self.on_line = on_line
        self.on_tick = on_tick
        self.on_round = on_round
        self.on_hup = on_hup
        self.keep_fds: list[int] = []
        self.workers: dict[int, Worker] = {}  # by index: the current process of each
        self.carried: dict[str, int] = {}  # counters of workers that died and were replaced
        self.stopping = False
        self._backoff: dict[int, float] = {}
        self._restart_at: dict[int, float] = {}
        self._round_wanted = False
        self._round: set[int] = set()
        self._round_deadline = 0.0
        self._hup = False
        self._previous: dict[int, Any] = {}
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)

    # -- signals -----------------------------------------------------------------------------

    def install_signals(self) -> None:
        """In place before the first fork: a signal during start-up is never lost."""
        self._previous = {s: signal.getsignal(s) for s in SIGNALS}
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGUSR1, self._on_usr1)
        signal.signal(signal.SIGHUP, self._on_hup)

    def restore_signals(self) -> None:
        signal.set_wakeup_fd(-1)
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _on_stop(self, signum: int, frame: object) -> None:
        self.stop()

    def _on_usr1(self, signum: int, frame: object) -> None:
        self._round_wanted = True

    def _on_hup(self, signum: int, frame: object) -> None:
        self._hup = True
        self.signal_workers(signal.SIGHUP)

    def signal_workers(self, sig: int) -> None:
        for w in list(self.workers.values()):
            if not w.exited:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w.pid, sig)

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Fork every worker (stops early when a stop signal came meanwhile)."""
        for i in range(self.n):
            if self.stopping:
                break
            self._spawn(i)

    def stop(self) -> None:
        """Ask every worker to stop (SIGTERM); :meth:`watch` returns once all have."""
        self.stopping = True
        self._restart_at.clear()
        self.signal_workers(signal.SIGTERM)

    def _spawn(self, i: int) -> None:
        channel = Channel()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        pid = -1
        try:
            pid = os.fork()
            if pid == 0:
                self._child(i, channel)  # never returns
            self.workers[i] = Worker(i, pid, channel, time.monotonic())
        finally:
            if pid != 0:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        os.close(channel.wfd)
        channel.wfd = -1

    def _child(self, i: int, channel: Channel) -> None:
        code = 0
        try:
            # Until the worker's own loop takes them: SIGTERM ends it at once (nothing to
            # flush yet), the others are the parent's business.
            signal.set_wakeup_fd(-1)
            for s in SIGNALS:
                signal.signal(s, signal.SIG_DFL if s == signal.SIGTERM else signal.SIG_IGN)
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            _die_with_parent()
            for fd in (self._wake_r, self._wake_w, channel.rfd, *self.keep_fds,
                       *(w.channel.rfd for w in self.workers.values())):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self.body(i, channel.wfd)
        except BaseException as e:  # a worker never returns into the CLI
            with contextlib.suppress(Exception):
                self.err(f"netconsolectl: error: worker {i}: {type(e).__name__}: {e}")
            code = 1
        finally:
            os._exit(code)

    def watch(self) -> None:
        """Run until every worker is gone and none is due for a restart."""
        while self.workers or self._restart_at:
            if self._round_wanted and not self._round:
                self._start_round()
            self._wait()
            if self._hup:
                self._hup = False
                if self.on_hup is not None:
                    self.on_hup()
            if self.on_tick is not None:
                self.on_tick()
            self._end_round_if_due()
            self._reap()
            self._restart_due()

    def _wait(self) -> None:
        fds = [w.channel.rfd for w in self.workers.values() if w.channel.rfd >= 0]
        ready, _, _ = select.select([self._wake_r, *fds], [], [], POLL)
        if self._wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 256)
        for w in list(self.workers.values()):
            if w.channel.rfd in ready:
                self._read(w)

    def _read(self, w: Worker) -> bool:
        """Take the worker's lines; False at the end of its channel."""
        lines = w.channel.read()
        if lines is None:
            w.channel.close()
            return False
        for line in lines:
            w.counters = line["counters"]
            if line["kind"] == "stats" and self.on_line is not None:
                self.on_line(w.index, line)
            elif line["kind"] == "counters" and not line["final"]:
                self._round.discard(w.index)
        return True

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            w = next((x for x in self.workers.values() if x.pid == pid), None)
            if w is not None:
                self._exited(w, os.waitstatus_to_exitcode(status))

    def _exited(self, w: Worker, code: int) -> None:
        w.exited = True
        while self._read(w):  # every line it wrote, up to the end of its channel
            pass
        del self.workers[w.index]
        self._round.discard(w.index)
        self.carried = add_counters(self.carried, w.counters)
        if self.stopping:
            return
        if code == 0:
            # A worker ends by itself only when its outputs are gone (standard output's reader
            # closed): the others face the same, so stop them all.
            self.stop()
            return
        self.restart(w, code)

    def restart(self, w: Worker, code: int) -> None:
        """Start the worker again: at once the first time, later when it keeps dying."""
        lived = time.monotonic() - w.started
        delay = 0.0 if lived >= STABLE_SECONDS else self._backoff.get(w.index, 0.0)
        self._backoff[w.index] = min(BACKOFF_MAX, max(BACKOFF_FIRST, delay * 2))
        when = f" in {delay:.1f} s" if delay else ""
        self.err(f"netconsolectl: warning: worker {w.index} exited (status {code}); "
                 f"restarting it{when}")
        self._restart_at[w.index] = time.monotonic() + delay

    def _restart_due(self) -> None:
        now = time.monotonic()
        for i, at in sorted(self._restart_at.items()):
            if at <= now and not self.stopping:
                del self._restart_at[i]
                self._spawn(i)

    # -- counters ----------------------------------------------------------------------------

    def totals(self) -> dict[str, int]:
        """The sum over the workers, those replaced included."""
        sums = add_counters(self.carried, {})
        for w in self.workers.values():
            sums = add_counters(sums, w.counters)
        return sums

    def _start_round(self) -> None:
        self._round_wanted = False
        self._round = set(self.workers)
        self._round_deadline = time.monotonic() + ROUND_TIMEOUT
        self.signal_workers(signal.SIGUSR1)

    def _end_round_if_due(self) -> None:
        if not self._round_deadline:
            return
        if self._round and time.monotonic() < self._round_deadline:
            return
        self._round = set()
        self._round_deadline = 0.0
        if self.on_round is not None:
            self.on_round(self.totals())

    def close(self) -> None:
        for w in self.workers.values():
            w.channel.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)


def _die_with_parent() -> None:
    """Ask Linux to send this worker SIGTERM if the supervising parent dies (even by SIGKILL),
    so no orphaned worker keeps the port. Best effort: without prctl the worker still stops
    when told to."""
    import ctypes
    import ctypes.util

    pr_set_pdeathsig = 1
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        pass

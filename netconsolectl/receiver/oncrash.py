"""``--on-crash CMD``: run a command for every crash event, off the receiving path.

The command is an argument vector (no shell). It gets the event's JSON on standard input and
``NETCONSOLE_HOST``, ``NETCONSOLE_KIND``, ``NETCONSOLE_TITLE`` (and ``NETCONSOLE_NAME`` when the
sender named itself) in its environment. At most :data:`PARALLEL` run at once, each killed after
``timeout`` seconds; events beyond :data:`QUEUE` waiting ones are skipped. A command that cannot
start, exits non-zero, times out or is skipped counts in ``errors`` (the ``on_crash_errors``
counter). Receiving never waits for a command: :meth:`CrashCommands.submit` only queues.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading

from netconsolectl.receiver.model import Event
from netconsolectl.receiver.output import IsoTime

PARALLEL = 4
QUEUE = 256
TIMEOUT = 60.0


class CrashCommands:
    def __init__(self, argv: list[str], *, timeout: float = TIMEOUT) -> None:
        self.argv = argv
        self.timeout = timeout
        self.errors = 0
        self.done = 0
        self._lock = threading.Lock()
        self._queue: queue.Queue[Event | None] = queue.Queue(QUEUE)
        self._iso = IsoTime()
        self._threads: list[threading.Thread] = []

    def submit(self, e: Event) -> None:
        if len(self._threads) < PARALLEL:
            t = threading.Thread(target=self._run, name="on-crash", daemon=True)
            self._threads.append(t)
            t.start()
        try:
            self._queue.put_nowait(e)
        except queue.Full:
            with self._lock:
                self.errors += 1

    def _run(self) -> None:
        while True:
            e = self._queue.get()
            if e is None:
                return
            ok = self._one(e)
            with self._lock:
                self.done += 1
                if not ok:
                    self.errors += 1

    def _one(self, e: Event) -> bool:
        obj = {"type": e.type, "host": e.host, "port": e.port, "received": self._iso(e.received),
               **e.data}
        env = dict(os.environ)
        env["NETCONSOLE_HOST"] = e.host
        env["NETCONSOLE_KIND"] = str(e.data.get("kind", ""))
        env["NETCONSOLE_TITLE"] = str(e.data.get("title", ""))
        if e.data.get("name"):
            env["NETCONSOLE_NAME"] = str(e.data["name"])
        try:
            r = subprocess.run(
                self.argv,
                input=(json.dumps(obj) + "\n").encode(),
                stdout=subprocess.DEVNULL,
                env=env,
                timeout=self.timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired, subprocess.SubprocessError):
            return False
        return r.returncode == 0

    def close(self, wait: float = 5.0) -> None:
        """Let running commands finish (at most ``wait`` seconds); queued ones still run."""
        for _ in self._threads:
            try:
                self._queue.put(None, timeout=wait)
            except queue.Full:
                break
        for t in self._threads:
            t.join(timeout=wait)

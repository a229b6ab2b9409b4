"""``listen --reverse-dns``: senders' names from the resolver (PTR records), for the metrics'
``netconsole_host_info`` and the ``by-name`` links of ``--output-dir``, when a sender does not
name itself with a ``hostname`` userdata key.

Nothing on the receiving path waits for the resolver: :meth:`ReverseNames.name` answers from the
cache and queues an address it has not looked up yet for a background thread, so a name appears a
moment after the first message of its host. The cache is bounded (the oldest entries go first),
and an address without a PTR record is remembered as such and asked again after
:data:`RETRY` seconds.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

#: Seconds before an address whose lookup failed is asked again.
RETRY = 300.0
#: Addresses remembered.
MAX_ENTRIES = 4096
#: Addresses waiting for the resolver; more are dropped (and asked again later).
MAX_QUEUED = 1024


class ReverseNames:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        #: address -> (name or None, when it was looked up)
        self.cache: OrderedDict[str, tuple[str | None, float]] = OrderedDict()
        self.lock = threading.Lock()
        self.todo: queue.Queue[str] = queue.Queue(MAX_QUEUED)
        self.asked: set[str] = set()
        threading.Thread(target=self._run, name="reverse-dns", daemon=True).start()

    def name(self, host: str) -> str | None:
        """The cached name of ``host``; None while it is being looked up or has none."""
        hit = self.cache.get(host)
        if hit is not None and (hit[0] is not None or time.monotonic() - hit[1] < RETRY):
            return hit[0]
        with self.lock:
            if host in self.asked:
                return hit[0] if hit else None
            try:
                self.todo.put_nowait(host)
            except queue.Full:
                return None
            self.asked.add(host)
        return hit[0] if hit else None

    def _run(self) -> None:
        while True:
            host = self.todo.get()
            try:
                name: str | None = socket.gethostbyaddr(host)[0].rstrip(".") or None
            except (OSError, UnicodeError):
                name = None
            with self.lock:
                self.asked.discard(host)
                self.cache[host] = (name, time.monotonic())
                self.cache.move_to_end(host)
                while len(self.cache) > self.max_entries:
                    self.cache.popitem(last=False)


def safe_name(name: str) -> str:
    """A sender's name as a file name: letters, digits, ``.`` and ``-``, at most 64."""
    safe = "".join(c if c.isascii() and (c.isalnum() or c in ".-") else "_" for c in name)
    return safe.strip(".")[:64] or "unknown"


class NameLinks:
    """``--output-dir DIR/by-name/NAME.log``: a symbolic link to the file of the address that
    last called itself NAME (its ``hostname`` userdata, else its reverse DNS name with
    ``--reverse-dns``). The data stays in the file named from the address, so a sender claiming
    another's name cannot write into that one's file; logrotate's ``DIR/*.log`` does not see
    the links."""

    def __init__(self, directory: str, filename: Callable[[str], str],
                 reverse: ReverseNames | None) -> None:
        self.dir = directory
        self.filename = filename
        self.reverse = reverse
        self.done: dict[str, str] = {}

    def see(self, host: str, fields: dict[str, str] | None) -> None:
        name = fields.get("hostname") if fields else None
        if name is None and self.reverse is not None:
            name = self.reverse.name(host)
        if name is None or self.done.get(host) == name:
            return
        if len(self.done) > MAX_ENTRIES * 16:
            self.done.clear()
        self.done[host] = name
        links = os.path.join(self.dir, "by-name")
        path = os.path.join(links, safe_name(name) + ".log")
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            os.makedirs(links, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            os.symlink(os.path.join("..", self.filename(host)), tmp)
            os.replace(tmp, path)
        except OSError:
            pass  # a name is a convenience: the address's file has everything

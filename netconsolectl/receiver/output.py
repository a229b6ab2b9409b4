"""A buffered writer on a file descriptor, and the time formats every output shares."""

from __future__ import annotations

import errno
import os
import stat
import time

#: Largest write that a pipe keeps whole when several processes write to it (Linux PIPE_BUF).
PIPE_BUF = 4096


class FdWriter:
    """Collects output and writes it with few system calls.

    ``flush`` writes everything collected. With ``atomic_lines`` (several processes sharing a
    pipe), each write stays within PIPE_BUF and ends on a line boundary so lines never interleave.
    A closed reader (EPIPE) makes the writer drop output from then on and sets ``broken``.
    """

    def __init__(self, fd: int, *, atomic_lines: bool = False, limit: int = 1 << 16) -> None:
        self.fd = fd
        self.parts: list[bytes] = []
        self.size = 0
        self.limit = limit
        self.broken = False
        try:
            mode = os.fstat(fd).st_mode
            is_pipe = stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)
        except OSError:
            is_pipe = False
        self.chunked = atomic_lines and is_pipe

    def write(self, data: bytes) -> None:
        self.parts.append(data)
        self.size += len(data)
        if self.size >= self.limit:
            self.flush()

    def flush(self) -> None:
        if not self.parts:
            return
        data = b"".join(self.parts)
        self.parts.clear()  # in place: the fast path holds a reference to this list
        self.size = 0
        if self.broken:
            return
        if self.chunked and len(data) > PIPE_BUF:
            start = 0
            while start < len(data):
                end = start + PIPE_BUF
                if end < len(data):
                    cut = data.rfind(b"\n", start, end)
                    end = cut + 1 if cut >= start else end
                self._write_all(memoryview(data)[start:end])
                start = end
        else:
            self._write_all(memoryview(data))

    def _write_all(self, view: memoryview) -> None:
        while view and not self.broken:
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:
                import select

                select.select([], [self.fd], [], 1.0)
                continue
            except OSError as e:
                if e.errno == errno.EPIPE:
                    self.broken = True
                    return
                raise
            view = view[n:]


class IsoTime:
    """``2026-01-02T03:04:05.678901Z`` with the date part formatted once per second."""

    def __init__(self) -> None:
        self._sec = -1
        self._prefix = ""
        self._last = -1.0
        self._last_s = ""

    def __call__(self, t: float) -> str:
        if t == self._last:
            return self._last_s
        sec = int(t)
        if sec != self._sec:
            self._sec = sec
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        s = f"{self._prefix}.{int((t - sec) * 1e6):06d}Z"
        self._last = t
        self._last_s = s
        return s


class LocalTime:
    """``03:04:05.678``, the local time of day (``TZ``), for lines a person reads."""

    def __init__(self) -> None:
        self._sec = -1
        self._prefix = ""

    def __call__(self, t: float) -> str:
        sec = int(t)
        if sec != self._sec:
            self._sec = sec
            self._prefix = time.strftime("%H:%M:%S", time.localtime(sec))
        return f"{self._prefix}.{int((t - sec) * 1000):03d}"


def local_iso(stamp: str) -> str:
    """A UTC time as JSON carries it (``2026-01-02T03:04:05.678901Z``) in the local time zone
    (``TZ``) with its offset, to the second (``2026-01-02T04:04:05+01:00``), for lines a person
    reads; anything else is returned as it is."""
    from datetime import datetime

    try:
        t = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    if t.tzinfo is None:
        return stamp
    return t.astimezone().isoformat(timespec="seconds")

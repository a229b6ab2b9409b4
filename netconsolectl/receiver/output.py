"""A buffered writer on a file descriptor, and the time formats every output shares."""

from __future__ import annotations

import errno
import os
import stat
import time
from collections import deque
from collections.abc import Callable

#: Largest write that a pipe keeps whole when several processes write to it (Linux PIPE_BUF).
PIPE_BUF = 4096


#: Write errors that leave the receiver running: the lines are counted as dropped and writing
#: resumes when the disk can take them again (a full or failing disk must not stop receiving).
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG)


class DiskTrouble:
    """What a full or failing disk did to one output: the lines it did not take, counted
    (``dropped``), said once on ``err`` when it starts and once when writing works again."""

    def __init__(self, what: str, err: Callable[[str], None] | None) -> None:
        self.what = what
        self.err = err
        self.dropped = 0
        self.failing: str | None = None

    def __call__(self, lines: int, error: OSError | None) -> None:
        """``lines`` dropped by ``error``; ``error`` None: a write went through."""
        if error is None:
            if self.failing is not None:
                self.failing = None
                self._say(f"writing again (output_dropped={self.dropped} so far)")
            return
        self.dropped += lines
        if self.failing is None:
            self.failing = error.strerror or str(error)
            self._say(f"{self.failing}: lines are dropped and counted (output_dropped) until "
                      "the disk takes them again")

    def _say(self, text: str) -> None:
        if self.err is not None:
            self.err(f"netconsolectl: warning: {self.what}: {text}")


class FdWriter:
    """Collects output and writes it with few system calls.

    ``flush`` writes everything collected. With ``atomic_lines`` (several processes sharing a
    pipe), each write stays within PIPE_BUF and ends on a line boundary so lines never interleave.
    A closed reader (EPIPE), or a terminal that hung up (EIO on a tty: the ssh session that
    ran ``listen`` ended), makes the writer drop output from then on and sets ``broken``.
    With ``spill`` (``fd`` non-blocking, a pipe to a process of this program's), what the
    reader has no room for yet waits in memory, up to ``spill`` bytes, and goes with the next
    flush: the receive loop goes back to its socket instead of waiting on the reader; past
    ``spill`` it waits, and ``flush(wait=True)`` writes everything. A full or failing disk
    (:data:`DISK_ERRORS`) drops the lines it did not take, counted by ``trouble`` (which also
    hears of every write that went through, and may be shared by the writers of one output); a
    line cut by it is ended before the next write, so every later line is whole.
    """

    def __init__(self, fd: int, *, atomic_lines: bool = False, limit: int = 1 << 16,
                 trouble: DiskTrouble | None = None, spill: int = 0) -> None:
        self.fd = fd
        self.spill = spill
        #: What the reader had no room for yet (``spill``), oldest first.
        self.held: deque[memoryview] = deque()
        self.held_bytes = 0
        self.parts: list[bytes] = []
        self.size = 0
        self.limit = limit
        self.broken = False
        self.trouble = trouble if trouble is not None else DiskTrouble("output", None)
        #: The last write stopped inside a line: the next one starts with a newline.
        self._cut = False
        try:
            mode = os.fstat(fd).st_mode
            is_pipe = stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)
        except OSError:
            is_pipe = False
        self.chunked = atomic_lines and is_pipe
        #: EIO here is a hang-up, not a failing disk.
        self.terminal = os.isatty(fd)

    def write(self, data: bytes) -> None:
        self.parts.append(data)
        self.size += len(data)
        if self.size >= self.limit:
            self.flush()

    def flush(self, wait: bool = False) -> None:
        if self.spill:
            self._flush_held(wait)
            return
        if not self.parts:
            return
        data = b"".join(self.parts)
        self.parts.clear()  # in place: the fast path holds a reference to this list
        self.size = 0
        if self.broken:
            return
        prefixed = self._cut
        if prefixed:
            data = b"\n" + data
        start = 0
        while start < len(data):
            end = len(data)
            if self.chunked and end - start > PIPE_BUF:
                cut = data.rfind(b"\n", start, start + PIPE_BUF)
                end = cut + 1 if cut >= start else start + PIPE_BUF
            start, error = self._write_all(data, start, end)
            if error is not None:
                self._dropped(data, start, prefixed, error)
                return
        self._cut = False
        self.trouble(0, None)

    def _flush_held(self, wait: bool) -> None:
        if self.parts:
            data = b"".join(self.parts)
            self.held.append(memoryview(data))
            self.held_bytes += len(data)  # (size is the fast path's estimate)
            self.parts.clear()
            self.size = 0
        held = self.held
        while held and not self.broken:
            head = held[0]
            n, error = self._write_all(head, 0, len(head),
                                       block=wait or self.held_bytes > self.spill)
            if error is not None:
                raise error  # a pipe: no disk to wait for
            self.held_bytes -= n
            if n == len(head):
                held.popleft()
            else:  # the pipe is full and what is held within the bound
                held[0] = head[n:]
                return
        held.clear()
        self.held_bytes = 0

    def _write_all(self, data: bytes | memoryview, start: int, end: int, *,
                   block: bool = True) -> tuple[int, OSError | None]:
        """Write data[start:end]: (where it stopped, the disk error that stopped it). A
        non-blocking ``fd`` that is full is waited for, or with ``block`` False stops it."""
        view = memoryview(data)
        while start < end and not self.broken:
            try:
                start += os.write(self.fd, view[start:end])
            except BlockingIOError:
                if not block:
                    break
                import select

                select.select([], [self.fd], [], 1.0)
            except OSError as e:
                if e.errno == errno.EPIPE or (e.errno == errno.EIO and self.terminal):
                    self.broken = True
                elif e.errno in DISK_ERRORS:
                    return start, e
                else:
                    raise
        return (len(data) if self.broken else start), None

    def _dropped(self, data: bytes, written: int, prefixed: bool, error: OSError) -> None:
        lines = data.count(b"\n", written) - (prefixed and not written)
        if written:
            self._cut = data[written - 1] != 0x0A
        self.trouble(lines, error)

    @property
    def dropped(self) -> int:
        """Lines a full or failing disk did not take (over every writer sharing ``trouble``)."""
        return self.trouble.dropped


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

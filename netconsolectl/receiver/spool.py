"""A bounded, append-only disk spool: what a reliable forwarder has not delivered yet.

One spool is one directory holding numbered segment files (``0000000000000001.seg`` ...) and a
``cursor`` file. Each record in a segment is framed as::

    u32 length (little endian) | u32 crc32 of the payload | payload

The receiving thread appends (:meth:`Spool.append`, buffered; :meth:`Spool.flush` writes the
buffer to the current segment with one ``write``); the forwarder's thread reads records in order
(:meth:`Spool.read`) and acknowledges them (:meth:`Spool.ack`) once the pipeline has them. After a
reconnect it calls :meth:`Spool.rewind` and the unacknowledged records are read again (at least
once, in order). Segments wholly acknowledged are deleted.

Durability policy: every flush (the receiver flushes whenever its socket is drained, and
:meth:`Spool.append` every quarter segment or 256 KiB) is written to the file at once, so a
crash or kill of ``listen`` loses at most the burst being received (the kernel's page cache has
the rest). ``fsync`` (:meth:`Spool.sync`) runs once per :data:`FSYNC_INTERVAL` seconds, from a
thread of the forwarder that does nothing else (never the receiving one, and not the
delivering one, which may wait long for the CPU), and on each segment that is finished: a power
loss or kernel crash of the collecting host loses about one second. The cursor is saved every
:data:`CURSOR_INTERVAL` seconds and at close; a cursor older than the truth only means some
records are sent again (duplicates, never loss).

Bound: when the segments together exceed ``max_bytes``, the oldest segments are deleted whole,
delivered or not; records deleted unsent are counted in :attr:`Spool.dropped`.

A segment whose tail is not a whole valid record (the host crashed in the middle of a write, the
disk filled up) is cut back to its last valid record when the spool is opened, with a warning
naming the file, the offset and the bytes dropped.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

HEADER = struct.Struct("<II")
#: Largest record accepted back from disk; anything bigger is corruption.
MAX_RECORD = 16 << 20
#: Bytes buffered in memory before :meth:`Spool.append` writes them out by itself.
WRITE_BUFFER = 256 << 10
#: Seconds between fsync calls on the segment being written.
FSYNC_INTERVAL = 1.0
#: Seconds between saves of the cursor file.
CURSOR_INTERVAL = 0.5
#: Bytes read from a segment at a time.
READ_CHUNK = 1 << 20


class SpoolBusy(OSError):
    """Another process holds the spool directory's lock."""


@dataclass
class Segment:
    number: int
    path: str
    size: int = 0
    #: Records in the file.
    count: int = 0


@dataclass
class Cursor:
    """A position: segment number, byte offset in it, records before it in that segment."""

    segment: int
    offset: int = 0
    index: int = 0


def record(payload: bytes) -> bytes:
    """``payload`` framed as a record of a segment."""
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _name(number: int) -> str:
    return f"{number:016d}.seg"


class Spool:
    """See the module docstring. Thread-safe between one writer, one reader and one thread
    calling :meth:`sync`."""

    def __init__(
        self,
        path: str,
        max_bytes: int,
        *,
        warn: Callable[[str], None] | None = None,
        segment_bytes: int | None = None,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or max(64 << 10, min(8 << 20, max_bytes // 8))
        self.warn = warn or (lambda s: None)
        #: Buffered bytes that make append write: segments stay close to their size.
        self._flush_at = min(WRITE_BUFFER, self.segment_bytes // 4)
        #: Records deleted before they were delivered (spool full, corruption).
        self.dropped = 0
        #: Records appended since open.
        self.appended = 0
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        os.makedirs(path, exist_ok=True)
        self._lock_fd = os.open(os.path.join(path, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(self._lock_fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise SpoolBusy(e.errno, f"spool {path} is in use by another process") from None
            raise
        self.segments: list[Segment] = []
        self._buffer = bytearray()
        self._buffered = 0
        self._fd = -1
        self._unsynced: list[int] = []
        self._dirty = False
        self._cursor_saved: tuple[int, int, int] | None = None
        self._last_cursor_save = 0.0
        self._recover()
        self.read_pos = Cursor(self.ack_pos.segment, self.ack_pos.offset, self.ack_pos.index)
        self._rfd = -1
        self._rseg = -1
        #: (segment, end offset, end index) of each record read and not yet acknowledged.
        self._inflight: deque[tuple[int, int, int]] = deque()
        #: Records read, then dropped with their segment before they were acknowledged.
        self._inflight_gone = 0

    # -- opening -------------------------------------------------------------------------

    def _recover(self) -> None:
        names = sorted(n for n in os.listdir(self.path) if n.endswith(".seg") and n[:-4].isdigit())
        cursor = self._load_cursor()
        for n in names:
            number = int(n[:-4])
            seg = Segment(number, os.path.join(self.path, n))
            if cursor is not None and number < cursor[0]:
                os.unlink(seg.path)  # acknowledged before the last save
                continue
            self._scan(seg)
            self.segments.append(seg)
        if cursor is not None and self.segments and self.segments[0].number == cursor[0]:
            first = self.segments[0]
            offset, index = cursor[1], cursor[2]
            if offset > first.size or index > first.count:
                offset, index = 0, 0  # the segment lost its tail: resend it all
            self.ack_pos = Cursor(first.number, offset, index)
        elif self.segments:
            self.ack_pos = Cursor(self.segments[0].number)
        else:
            self.ack_pos = Cursor(1 if cursor is None else cursor[0] + 1)
        # Writing always starts a new segment: an old one may end in the middle of a record.
        self._new_segment()

    def _load_cursor(self) -> tuple[int, int, int] | None:
        try:
            with open(os.path.join(self.path, "cursor")) as f:
                parts = f.read().split()
            seg, off, idx = (int(p) for p in parts[:3])
            return seg, off, idx
        except (OSError, ValueError):
            return None

    def _scan(self, seg: Segment) -> None:
        """Count the valid records; cut the file after the last one."""
        with open(seg.path, "rb") as f:
            data = f.read()
        off = 0
        count = 0
        end = len(data)
        while off + HEADER.size <= end:
            length, crc = HEADER.unpack_from(data, off)
            stop = off + HEADER.size + length
            if length > MAX_RECORD or stop > end or zlib.crc32(data[off + 8 : stop]) != crc:
                break
            off = stop
            count += 1
        if off != end:
            self.warn(
                f"spool {seg.path}: {end - off} bytes after offset {off} are not a whole record "
                "(cut short by a crash or a full disk?); dropped, the records before them are kept"
            )
            with open(seg.path, "r+b") as f:
                f.truncate(off)
        seg.size = off
        seg.count = count

    def _new_segment(self) -> None:
        number = self.segments[-1].number + 1 if self.segments else self.ack_pos.segment
        seg = Segment(number, os.path.join(self.path, _name(number)))
        if self._fd >= 0:
            self._unsynced.append(self._fd)
        self._fd = os.open(seg.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.segments.append(seg)

    # -- writing (receiving thread) --------------------------------------------------------

    def append(self, payload: bytes) -> None:
        self.append_framed(record(payload), 1)

    def append_framed(self, records: bytes, count: int) -> None:
        """``count`` records already framed (:func:`record`), one after the other."""
        self._buffer += records
        self._buffered += count
        if len(self._buffer) >= self._flush_at:
            self.flush()

    def flush(self) -> None:
        """Write what :meth:`append` collected; wake the reader."""
        if not self._buffer:
            return
        data = bytes(self._buffer)
        n = self._buffered
        self._buffer.clear()
        self._buffered = 0
        with self.cond:
            seg = self.segments[-1]
            try:
                os.write(self._fd, data)  # O_APPEND, a regular file: written whole or error
            except OSError as e:
                self.dropped += n
                self.warn(f"spool {self.path}: cannot write: {e.strerror}; {n} messages lost")
                return
            seg.size += len(data)
            seg.count += n
            self.appended += n
            self._dirty = True
            if seg.size >= self.segment_bytes:
                self._new_segment()
            self._enforce_bound()
            self.cond.notify_all()

    def _enforce_bound(self) -> None:
        while len(self.segments) > 1 and self.total_bytes() > self.max_bytes:
            seg = self.segments.pop(0)
            if seg.number > self.ack_pos.segment:
                lost = seg.count
            elif seg.number == self.ack_pos.segment:
                lost = seg.count - self.ack_pos.index
            else:
                lost = 0
            self.dropped += lost
            nxt = self.segments[0].number
            if self.ack_pos.segment <= seg.number:
                self.ack_pos = Cursor(nxt)
            if self.read_pos.segment <= seg.number:
                self.read_pos = Cursor(nxt)
            while self._inflight and self._inflight[0][0] <= seg.number:
                self._inflight.popleft()
                self._inflight_gone += 1
            # The reader may still hold the file open: it sees the new position and moves on.
            with contextlib.suppress(OSError):
                os.unlink(seg.path)

    def total_bytes(self) -> int:
        return sum(s.size for s in self.segments)

    # -- reading (forwarder thread) --------------------------------------------------------

    def pending(self) -> int:
        """Records appended (and flushed) but not acknowledged."""
        with self.lock:
            return self._pending_locked()

    def _pending_locked(self) -> int:
        n = 0
        for s in self.segments:
            n += s.count
            if s.number == self.ack_pos.segment:
                n -= self.ack_pos.index
        return n

    def unread(self) -> bool:
        with self.lock:
            return self._unread_locked()

    def _unread_locked(self) -> bool:
        last = self.segments[-1]
        pos = self.read_pos
        return pos.segment < last.number or pos.offset < last.size

    def wait(self, timeout: float) -> bool:
        """Until there is something to read or ``timeout`` seconds passed; True if there is."""
        with self.cond:
            if not self._unread_locked():
                self.cond.wait(timeout)
            return self._unread_locked()

    def read(self, max_records: int, max_bytes: int = 4 << 20) -> list[bytes]:
        """The next records after the read position (possibly none)."""
        out: list[bytes] = []
        size = 0
        while len(out) < max_records and size < max_bytes:
            with self.lock:
                pos = self.read_pos
                seg = next((s for s in self.segments if s.number == pos.segment), None)
                if seg is None:
                    later = [s for s in self.segments if s.number > pos.segment]
                    if not later:
                        break
                    self.read_pos = Cursor(later[0].number)
                    continue
                end = seg.size
                if pos.offset >= end:
                    if seg is self.segments[-1]:
                        break
                    self.read_pos = Cursor(self.segments[self.segments.index(seg) + 1].number)
                    continue
                if self._rseg != seg.number:
                    if self._rfd >= 0:
                        os.close(self._rfd)
                    self._rfd = os.open(seg.path, os.O_RDONLY)
                    self._rseg = seg.number
                rfd = self._rfd
            data = os.pread(rfd, min(READ_CHUNK, end - pos.offset), pos.offset)
            off = 0
            ends: list[tuple[int, int, int]] = []
            index = pos.index
            while off + HEADER.size <= len(data) and len(out) < max_records and size < max_bytes:
                length, _crc = HEADER.unpack_from(data, off)
                stop = off + HEADER.size + length
                if stop > len(data):
                    if off:
                        break
                    data = os.pread(rfd, HEADER.size + length, pos.offset)  # a big record
                    stop = len(data)
                out.append(data[off + HEADER.size : stop])
                size += length
                off = stop
                index += 1
                ends.append((pos.segment, pos.offset + off, index))
            with self.lock:
                if self.read_pos is not pos:  # moved by a drop meanwhile: read again
                    del out[len(out) - len(ends) :]
                    continue
                self.read_pos = Cursor(pos.segment, pos.offset + off, index)
                self._inflight.extend(ends)
            if not ends:
                break
        return out

    def ack(self, n: int) -> None:
        """The next ``n`` records read are delivered (in the order :meth:`read` gave them)."""
        with self.lock:
            gone = min(n, self._inflight_gone)
            self._inflight_gone -= gone
            n -= gone
            last = None
            for _ in range(min(n, len(self._inflight))):
                last = self._inflight.popleft()
            if last is None:
                return
            self.ack_pos = Cursor(*last)
            while self.segments[0].number < self.ack_pos.segment:
                self._drop_acked(self.segments[0])
            seg = self.segments[0]
            if self.ack_pos.index >= seg.count and seg is not self.segments[-1]:
                self._drop_acked(seg)
                self.ack_pos = Cursor(self.segments[0].number)

    def _drop_acked(self, seg: Segment) -> None:
        self.segments.remove(seg)
        if self._rseg == seg.number:
            os.close(self._rfd)
            self._rfd = -1
            self._rseg = -1
        with contextlib.suppress(OSError):
            os.unlink(seg.path)

    def rewind(self) -> int:
        """Read again from the acknowledged position; returns how many records will be resent."""
        with self.lock:
            resent = len(self._inflight)
            self._inflight.clear()
            self._inflight_gone = 0
            pos = self.ack_pos
            self.read_pos = Cursor(pos.segment, pos.offset, pos.index)
            return resent

    # -- upkeep (forwarder threads) --------------------------------------------------------

    def sync(self) -> None:
        """fsync what was written since the last time (the caller keeps the interval, once
        per :data:`FSYNC_INTERVAL` seconds). One thread at a time: it closes the fds of
        finished segments."""
        with self.lock:
            fds, self._unsynced = self._unsynced, []
            dirty, self._dirty = self._dirty, False
            fd = self._fd
        for old in fds:
            with contextlib.suppress(OSError):
                os.fsync(old)
            os.close(old)
        if dirty and fd >= 0:
            with contextlib.suppress(OSError):
                os.fsync(fd)

    def save_cursor(self, *, force: bool = False) -> None:
        """Save the acknowledged position, at most every :data:`CURSOR_INTERVAL` seconds (or
        now with ``force``)."""
        now = time.monotonic()
        if not force and now - self._last_cursor_save < CURSOR_INTERVAL:
            return
        self._last_cursor_save = now
        with self.lock:
            pos = self.ack_pos
            cur = (pos.segment, pos.offset, pos.index)
        if cur != self._cursor_saved:
            tmp = os.path.join(self.path, "cursor.tmp")
            with open(tmp, "w") as f:
                f.write(" ".join(map(str, cur)) + "\n")
            os.replace(tmp, os.path.join(self.path, "cursor"))
            self._cursor_saved = cur

    def close(self) -> None:
        self.flush()
        self.sync()
        self.save_cursor(force=True)
        with self.lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            if self._rfd >= 0:
                os.close(self._rfd)
                self._rfd = -1
            # An empty segment left by this run is not worth keeping.
            last = self.segments[-1]
            if last.size == 0 and last.number != self.ack_pos.segment:
                with contextlib.suppress(OSError):
                    os.unlink(last.path)
        os.close(self._lock_fd)

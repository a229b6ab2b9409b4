"""A bounded, append-only disk spool: what a reliable forwarder has not delivered yet.

One spool is one directory holding numbered segment files (``0000000000000001.seg`` ...) and a
``cursor`` file. Each record in a segment is framed as::

    u32 length (little endian) | u32 crc32 of the payload | payload

Two processes share it. The forwarding process appends (:class:`SpoolWriter`:
:meth:`~SpoolWriter.append`, buffered; :meth:`~SpoolWriter.flush` writes the buffer to the
current segment with one ``write``); a delivery process of its own per forwarder
(:class:`SpoolReader`, made after a fork) reads records in order and acknowledges them once the
pipeline has them. After a reconnect it calls :meth:`~SpoolReader.rewind` and the
unacknowledged records are read again (at least once, in order). Segments wholly acknowledged
are deleted.

They share no interpreter and no thread, so the delivering process, which runs only on the CPU
time nothing else wants, can never hold up the one writing (a delivering *thread* could: while
it held the interpreter lock and waited for a CPU, the writing thread waited with it). What
they share is :class:`Shared`: a few counters in a shared anonymous mapping, made by the writer
and inherited by the reader across ``fork``, a pipe the writer notes new records on, and a lock
(``flock`` on the ``mutex`` file, each side opening it itself) taken where one side's step must
not interleave with the other's: the writer dropping the oldest segments, the reader moving the
acknowledged position. The reader learns of new records from the segment files themselves: the
writer publishes the number of the segment it writes after the last write to the one before, so
a reader that saw the new number and then read the old segment to its end has all of it; in the
segment being written it takes whole records only.

Durability policy: every flush (the forwarding process flushes after every read of its pipe,
and :meth:`~SpoolWriter.append` every quarter segment or 256 KiB) is written to the file at
once, so a crash or kill of ``listen`` loses at most the burst being received (the kernel's page
cache has the rest). ``fsync`` (:meth:`~SpoolWriter.sync`) runs once per :data:`FSYNC_INTERVAL`
seconds from a thread of the writing process, and on each segment that is finished: a power
loss or kernel crash of the collecting host loses about one second. The reader saves the cursor
every :data:`CURSOR_INTERVAL` seconds and at close; a cursor older than the truth only means
some records are sent again (duplicates, never loss).

Bound: when the segments together exceed ``max_bytes``, the writer deletes the oldest segments
whole, delivered or not; records deleted unsent are counted in :attr:`SpoolWriter.dropped`.

A segment whose tail is not a whole valid record (the host crashed in the middle of a write, the
disk filled up) is cut back to its last valid record when the spool is opened, with a warning
naming the file, the offset and the bytes dropped.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import mmap
import os
import select
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

HEADER = struct.Struct("<II")
#: Largest record accepted back from disk; anything bigger is corruption.
MAX_RECORD = 16 << 20
#: Bytes buffered in memory before :meth:`SpoolWriter.append` writes them out by itself.
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


class Shared:
    """What the writer and the reader of one spool both see (see the module docstring).

    Each counter has one writer, but for the acknowledged position, which both move with the
    mutex held. Aligned 64-bit loads and stores are whole on every platform Linux runs Python
    on, so a counter read without the mutex is old at worst, never torn."""

    #: The segment being written (set by the writer after its last write to the one before).
    LAST = 0
    #: The acknowledged position: every record before it is delivered; segments before
    #: ``ACK_SEGMENT`` are deleted.
    ACK_SEGMENT, ACK_OFFSET, ACK_INDEX = 1, 2, 3
    #: Records written (those found at open included), deleted unsent, acknowledged.
    WRITTEN, LOST, ACKED = 4, 5, 6

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, mmap.PAGESIZE)  # MAP_SHARED | MAP_ANONYMOUS
        self.v = (ctypes.c_uint64 * 7).from_buffer(self._map)
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    @property
    def ack(self) -> Cursor:
        v = self.v
        return Cursor(v[self.ACK_SEGMENT], v[self.ACK_OFFSET], v[self.ACK_INDEX])

    @ack.setter
    def ack(self, pos: Cursor) -> None:
        v = self.v
        v[self.ACK_SEGMENT] = pos.segment
        v[self.ACK_OFFSET] = pos.offset
        v[self.ACK_INDEX] = pos.index

    def pending(self) -> int:
        v = self.v
        return max(0, v[self.WRITTEN] - v[self.LOST] - v[self.ACKED])

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # a byte already waits there: enough
            os.write(self.wake_w, b"\0")

    def close(self) -> None:
        for fd in (self.wake_r, self.wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)


class _Mutex:
    """``flock`` on the spool's ``mutex`` file through a descriptor of this side's own (flock
    excludes open file descriptions, not processes: one shared across fork would not)."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(os.path.join(path, "mutex"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                          0o600)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self.fd)


class SpoolWriter:
    """The appending side: opens (and repairs) the spool, writes, bounds it, fsyncs. Thread-safe
    between one appending thread and one calling :meth:`sync` (stopped before :meth:`close`)."""

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
        #: Records that could not be written (disk full, I/O error).
        self.unwritten = 0
        os.makedirs(path, exist_ok=True)
        self._lock_fd = os.open(os.path.join(path, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                                0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(self._lock_fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise SpoolBusy(e.errno, f"spool {path} is in use by another process") from None
            raise
        self.shared = Shared()
        self.mutex = _Mutex(path)
        self.segments: list[Segment] = []
        self._buffer = bytearray()
        self._buffered = 0
        self._fd = -1
        self._unsynced: list[int] = []
        self._dirty = False
        self._sync_lock = threading.Lock()
        self._recover()

    @property
    def dropped(self) -> int:
        """Records lost in the spool: deleted before they were delivered, or never written."""
        return self.shared.v[Shared.LOST] + self.unwritten

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
        ack = Cursor(1 if cursor is None else cursor[0] + 1)
        if cursor is not None and self.segments and self.segments[0].number == cursor[0]:
            first = self.segments[0]
            offset, index = cursor[1], cursor[2]
            if offset > first.size or index > first.count:
                offset, index = 0, 0  # the segment lost its tail: resend it all
            ack = Cursor(first.number, offset, index)
        elif self.segments:
            ack = Cursor(self.segments[0].number)
        self.shared.ack = ack
        self.shared.v[Shared.WRITTEN] = sum(s.count for s in self.segments) - ack.index
        # Writing always starts a new segment: an old one may end in the middle of a record.
        self._new_segment(ack.segment)

    def _load_cursor(self) -> tuple[int, int, int] | None:
        try:
            with open(os.path.join(self.path, "cursor")) as f:
                parts = f.read().split()
            seg, off, idx = (int(p) for p in parts[:3])
            if min(seg, off, idx) < 0 or seg >= 1 << 62:
                return None
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

    def _new_segment(self, first: int = 0) -> None:
        number = self.segments[-1].number + 1 if self.segments else first
        seg = Segment(number, os.path.join(self.path, _name(number)))
        fd = os.open(seg.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        with self._sync_lock:
            if self._fd >= 0:
                self._unsynced.append(self._fd)
            self._fd = fd
        self.segments.append(seg)
        self.shared.v[Shared.LAST] = number  # after the last write to the one before

    # -- writing ---------------------------------------------------------------------------

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
        n = self._buffered
        size = len(self._buffer)
        seg = self.segments[-1]
        try:
            os.write(self._fd, self._buffer)  # O_APPEND, a regular file: written whole or error
        except OSError as e:
            self.unwritten += n
            self.warn(f"spool {self.path}: cannot write: {e.strerror}; {n} messages lost")
            return
        finally:
            self._buffer.clear()
            self._buffered = 0
        seg.size += size
        seg.count += n
        self._dirty = True
        self.shared.v[Shared.WRITTEN] += n
        if seg.size >= self.segment_bytes:
            self._new_segment()
        self._enforce_bound()
        self.shared.wake()

    def _enforce_bound(self) -> None:
        # the reader deletes what it acknowledged: forget those (an old value only delays this)
        acked = self.shared.v[Shared.ACK_SEGMENT]
        while self.segments[0].number < acked:
            self.segments.pop(0)
        if len(self.segments) == 1 or self.total_bytes() <= self.max_bytes:
            return
        v = self.shared.v
        with self.mutex.held():
            while len(self.segments) > 1 and self.total_bytes() > self.max_bytes:
                seg = self.segments.pop(0)
                ack = self.shared.ack
                if seg.number >= ack.segment:
                    v[Shared.LOST] += seg.count - (ack.index if seg.number == ack.segment else 0)
                    # the reader sees the new position and moves on (it may still hold the
                    # file open: what it read from it and did not acknowledge is dropped)
                    self.shared.ack = Cursor(self.segments[0].number)
                with contextlib.suppress(OSError):
                    os.unlink(seg.path)

    def total_bytes(self) -> int:
        return sum(s.size for s in self.segments)

    # -- upkeep ----------------------------------------------------------------------------

    def sync(self) -> None:
        """fsync what was written since the last time (the caller keeps the interval, once
        per :data:`FSYNC_INTERVAL` seconds: :func:`sync_every`). Closes the fds of finished
        segments."""
        with self._sync_lock:  # held only to take them: appending never waits for a disk
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

    def close(self) -> None:
        """After the reader's :meth:`SpoolReader.close`."""
        self.flush()
        self.sync()
        with self._sync_lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
        # An empty segment left by this run is not worth keeping.
        last = self.segments[-1]
        if last.size == 0 and last.number != self.shared.v[Shared.ACK_SEGMENT]:
            with contextlib.suppress(OSError):
                os.unlink(last.path)
        self.mutex.close()
        self.shared.close()
        os.close(self._lock_fd)


def sync_every(spools: list[SpoolWriter], stop: threading.Event) -> threading.Thread:
    """A thread that fsyncs ``spools`` once per :data:`FSYNC_INTERVAL` seconds until ``stop``."""

    def run() -> None:
        while not stop.wait(FSYNC_INTERVAL):
            for s in spools:
                s.sync()

    thread = threading.Thread(target=run, name="spool sync", daemon=True)
    thread.start()
    return thread


class SpoolReader:
    """The delivering side of a spool opened by a :class:`SpoolWriter` (in this process or, as
    in ``listen``, in the parent of this one). One thread."""

    def __init__(self, writer: SpoolWriter) -> None:
        self.path = writer.path
        self.shared = writer.shared
        self.mutex = _Mutex(self.path)
        ack = self.shared.ack
        self.read_pos = Cursor(ack.segment, ack.offset, ack.index)
        self._rfd = -1
        self._rseg = -1
        #: (segment, end offset, end index) of each record read and not yet acknowledged.
        self._inflight: deque[tuple[int, int, int]] = deque()
        #: Records in each segment read to its end and not deleted yet.
        self._finished: dict[int, int] = {}
        self._cursor_saved: tuple[int, int, int] | None = None
        self._last_cursor_save = 0.0

    def pending(self) -> int:
        """Records written but not acknowledged (nor deleted unsent)."""
        with self.mutex.held():
            return self.shared.pending()

    def wait(self, timeout: float) -> None:
        """Until the writer wrote something (or :meth:`wake`), at most ``timeout`` seconds."""
        r = self.shared.wake_r
        if select.select([r], [], [], timeout)[0]:
            with contextlib.suppress(BlockingIOError):
                os.read(r, 4096)

    def wake(self) -> None:
        """End a :meth:`wait` now (from another thread)."""
        self.shared.wake()

    def _open(self, number: int) -> bool:
        if self._rseg == number:
            return True
        self._close_segment()
        try:
            self._rfd = os.open(os.path.join(self.path, _name(number)),
                                os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        self._rseg = number
        return True

    def _close_segment(self) -> None:
        if self._rfd >= 0:
            os.close(self._rfd)
        self._rfd = -1
        self._rseg = -1

    def read(self, max_records: int, max_bytes: int = 4 << 20) -> list[bytes]:
        """The next records after the read position (possibly none)."""
        out: list[bytes] = []
        size = 0
        while len(out) < max_records and size < max_bytes:
            acked = self.shared.v[Shared.ACK_SEGMENT]
            if self.read_pos.segment < acked:  # dropped by the writer for the bound
                self.read_pos = Cursor(acked)
            pos = self.read_pos
            # Looked at before the segment is read: when the writer had moved on from it
            # then, what is read of it now is all of it.
            done = pos.segment < self.shared.v[Shared.LAST]
            if not self._open(pos.segment):
                if not done:
                    break
                self.read_pos = Cursor(pos.segment + 1)  # deleted meanwhile
                continue
            got, ends = self._records(pos, max_records - len(out), max_bytes - size)
            if not got:
                if not done:
                    break  # nothing more yet, or a record still being written
                # the end (an unreadable tail left by hand is skipped with it)
                self._finished[pos.segment] = pos.index
                self.read_pos = Cursor(pos.segment + 1)
                continue
            with self.mutex.held():
                if self.shared.v[Shared.ACK_SEGMENT] > pos.segment:
                    continue  # dropped while it was read: read on from the new position
                self._inflight.extend(ends)
            out += got
            size += sum(map(len, got))
            self.read_pos = Cursor(*ends[-1])
        return out

    def _records(self, pos: Cursor, max_records: int, max_bytes: int
                 ) -> tuple[list[bytes], list[tuple[int, int, int]]]:
        """Whole records from ``pos`` on, and the position after each."""
        data = os.pread(self._rfd, READ_CHUNK, pos.offset)
        got: list[bytes] = []
        ends: list[tuple[int, int, int]] = []
        off = 0
        size = 0
        while off + HEADER.size <= len(data) and len(got) < max_records and size < max_bytes:
            length, _crc = HEADER.unpack_from(data, off)
            stop = off + HEADER.size + length
            if stop > len(data):
                if off or length > MAX_RECORD:
                    break
                data = os.pread(self._rfd, HEADER.size + length, pos.offset)  # a big record
                if len(data) < stop:
                    break  # still being written
            got.append(data[off + HEADER.size : stop])
            size += length
            off = stop
            ends.append((pos.segment, pos.offset + off, pos.index + len(got)))
        return got, ends

    def ack(self, n: int) -> None:
        """The next ``n`` records read are delivered (in the order :meth:`read` gave them)."""
        v = self.shared.v
        with self.mutex.held():
            first = v[Shared.ACK_SEGMENT]
            last = None
            for _ in range(min(n, len(self._inflight))):
                end = self._inflight.popleft()
                if end[0] >= first:  # not dropped by the writer meanwhile (counted lost)
                    last = end
                    v[Shared.ACKED] += 1
            if last is None:
                return
            pos = Cursor(*last)
            finished = self._finished.get(pos.segment)
            if finished is not None and pos.index >= finished:
                pos = Cursor(pos.segment + 1)  # that segment is delivered whole
            self.shared.ack = pos
            for number in range(first, pos.segment):
                if self._rseg == number:
                    self._close_segment()
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.path, _name(number)))
            for number in [n for n in self._finished if n < pos.segment]:
                del self._finished[number]  # deleted: by this, or by the writer for the bound

    def rewind(self) -> int:
        """Read again from the acknowledged position; returns how many records will be resent."""
        with self.mutex.held():
            resent = len(self._inflight)
            self._inflight.clear()
            self.read_pos = self.shared.ack
            return resent

    def save_cursor(self, *, force: bool = False) -> None:
        """Save the acknowledged position, at most every :data:`CURSOR_INTERVAL` seconds (or
        now with ``force``)."""
        now = time.monotonic()
        if not force and now - self._last_cursor_save < CURSOR_INTERVAL:
            return
        self._last_cursor_save = now
        with self.mutex.held():
            pos = self.shared.ack
        cur = (pos.segment, pos.offset, pos.index)
        if cur != self._cursor_saved:
            tmp = os.path.join(self.path, "cursor.tmp")
            with open(tmp, "w") as f:
                f.write(" ".join(map(str, cur)) + "\n")
            os.replace(tmp, os.path.join(self.path, "cursor"))
            self._cursor_saved = cur

    def close(self) -> None:
        self.save_cursor(force=True)
        self._close_segment()
        self.mutex.close()

"""Batch receive with ``recvmmsg(2)`` through ctypes: one system call for many datagrams.

CPython's socket module has no recvmmsg; calling ``recvfrom`` once per datagram costs a system
call and a tuple per datagram, which at hundreds of thousands of datagrams per second is most of
a core. :class:`BatchReceiver` keeps preallocated buffers and returns each batch as a list of
payloads and a list of raw sockaddrs, cut from the buffers in C when the optional extension is
built (``_fastjson.split``), else in Python. Where libc or the call is unavailable,
:func:`open_batch` returns None and the caller falls back to ``recvfrom``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import socket
import struct
import sys
from collections.abc import Callable

_split: Callable[..., tuple[list[bytes], list[bytes]]] | None
try:  # the same cutting in C, when built (see fastpath)
    from netconsolectl.receiver._fastjson import split as _split
except ImportError:
    _split = None

MSG_DONTWAIT = 0x40
_SOCKADDR_SIZE = 28  # sockaddr_in6; sockaddr_in fits too


class _IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_uint32),
        ("iov", ctypes.c_void_p),
        ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    ]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("hdr", _MsgHdr), ("len", ctypes.c_uint)]


_MMSG_SIZE = ctypes.sizeof(_MMsgHdr)
_LEN_OFFSET = _MMsgHdr.len.offset
_NAMELEN_OFFSET = _MsgHdr.namelen.offset


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name or "libc.so.6", use_errno=True)
        fn = lib.recvmmsg
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
    fn.restype = ctypes.c_int
    return lib


class BatchReceiver:
    """Receives up to ``count`` datagrams of at most ``size`` bytes per call."""

    def __init__(self, sock: socket.socket, lib: ctypes.CDLL, count: int = 256,
                 size: int = 2048) -> None:
        self.fd = sock.fileno()
        self.count = count
        self.size = size
        self._recvmmsg = lib.recvmmsg
        self.data = ctypes.create_string_buffer(count * size)
        self.names = ctypes.create_string_buffer(count * _SOCKADDR_SIZE)
        self.iov = (_IOVec * count)()
        self.msgs = (_MMsgHdr * count)()
        data_base = ctypes.addressof(self.data)
        name_base = ctypes.addressof(self.names)
        iov_base = ctypes.addressof(self.iov)
        for i in range(count):
            self.iov[i].base = data_base + i * size
            self.iov[i].len = size
            h = self.msgs[i].hdr
            h.name = name_base + i * _SOCKADDR_SIZE
            h.namelen = _SOCKADDR_SIZE
            h.iov = iov_base + i * ctypes.sizeof(_IOVec)
            h.iovlen = 1
        self.msgs_addr = ctypes.addressof(self.msgs)
        self.msgs_view = memoryview(self.msgs).cast("B")
        self.data_view = memoryview(self.data).cast("B")
        self.names_view = memoryview(self.names).cast("B")
        # (msg_len, namelen) of every slot, read in one unpack
        self._lens = struct.Struct("=" + "".join(
            f"{_NAMELEN_OFFSET if i == 0 else _MMSG_SIZE - _LEN_OFFSET - 4 + _NAMELEN_OFFSET}x"
            f"I{_LEN_OFFSET - _NAMELEN_OFFSET - 4}xI"
            for i in range(count)
        ))

    def recv(self) -> tuple[list[bytes], list[bytes]]:
        """Datagrams waiting now, possibly none: (payloads, raw source addresses).

        Payloads longer than ``size`` are cut to ``size`` bytes (netconsole sends at most
        1000)."""
        n = self._recvmmsg(self.fd, self.msgs_addr, self.count, MSG_DONTWAIT, None)
        if n <= 0:
            if n < 0:
                e = ctypes.get_errno()
                if e not in (errno.EAGAIN, errno.EINTR):
                    raise OSError(e, os.strerror(e))
            return [], []
        if _split is not None:
            # namelen as the kernel wrote it back into the first slot (see below)
            namelen = int.from_bytes(self.msgs_view[_NAMELEN_OFFSET : _NAMELEN_OFFSET + 4],
                                     sys.byteorder)
            return _split(self.msgs_view, n, _MMSG_SIZE, _LEN_OFFSET, self.data_view, self.size,
                          self.names_view, _SOCKADDR_SIZE, namelen)
        lens = self._lens.unpack_from(self.msgs_view)  # namelen0, len0, namelen1, len1, ...
        size = self.size
        data = self.data_view
        payloads = [
            data[off : off + length].tobytes()
            for off, length in zip(range(0, n * size, size), lens[1 : 2 * n : 2], strict=True)
        ]
        # The kernel writes the address length back into msg_namelen; for one socket it is
        # always its family's length, which is also what the next call needs, so the slots are
        # not reset, and every address is cut from one copy of the address area.
        step = _SOCKADDR_SIZE
        namelen = lens[0]
        raw = self.names_view[: n * step].tobytes()
        names = [raw[off : off + namelen] for off in range(0, n * step, step)]
        return payloads, names


def sockaddr_to_source(raw: bytes) -> tuple[str, int]:
    """A raw sockaddr_in/sockaddr_in6 to (host, port); IPv4-mapped IPv6 shown as IPv4."""
    family = int.from_bytes(raw[0:2], "little")
    port = int.from_bytes(raw[2:4], "big")
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), port
    addr = raw[8:24]
    if addr[:12] == b"\0" * 10 + b"\xff\xff":
        return socket.inet_ntop(socket.AF_INET, addr[12:]), port
    host = socket.inet_ntop(socket.AF_INET6, addr)
    scope = int.from_bytes(raw[24:28], "little")
    if scope and host.startswith("fe80"):
        try:
            host = f"{host}%{socket.if_indextoname(scope)}"
        except OSError:
            host = f"{host}%{scope}"
    return host, port


def open_batch(sock: socket.socket, count: int = 256, size: int = 2048) -> BatchReceiver | None:
    """A batch receiver for ``sock``, or None when recvmmsg cannot be used here."""
    lib = _libc()
    if lib is None:
        return None
    try:
        return BatchReceiver(sock, lib, count, size)
    except (OSError, ValueError, TypeError):
        return None

"""``--forward relp://HOST[:PORT]``: RELP, rsyslog's Reliable Event Logging Protocol (client).

Written from the protocol description that ships with librelp (doc/relp.md). Every frame is::

    TXNR SP COMMAND SP DATALEN [SP DATA] LF

The client opens a session with ``open`` (offers ``relp_version``, ``relp_software``,
``commands=syslog``) and waits for its ``rsp`` (``200 OK`` and the server's offers); then sends
each message as a ``syslog`` command. The server answers every command with ``rsp`` carrying the
same TXNR and ``200 OK`` (or an error code), in the order the commands arrived, so the answers
acknowledge the oldest unanswered messages. At most :data:`WINDOW` commands are unanswered at a
time. TXNR starts at 1 on each session and wraps from 999,999,999 to 1; TXNR 0 is the server's
hint ``serverclose``. A closed connection, a framing error or a non-200 answer ends the session:
the messages not acknowledged are sent again on the next one (at least once, in order).
The payload is the RFC 5424 message the syslog forwarder builds.
"""

from __future__ import annotations

import select
import socket
from collections import deque
from collections.abc import Callable

from netconsolectl import __version__
from netconsolectl.receiver.sinks.reliable import TransportError

#: Commands sent and not yet answered, at most (librelp's own default window is 128; a wider
#: one keeps a fast collector busy over a link with some latency).
WINDOW = 1024
#: Seconds a connect, the open handshake or a stalled send may take.
IO_TIMEOUT = 10.0
#: Largest DATALEN accepted in an answer.
MAX_DATALEN = 128 << 10
TXNR_MAX = 999_999_999
DEFAULT_PORT = 2514


def frame(txnr: int, command: bytes, data: bytes) -> bytes:
    if data:
        return b"%d %s %d %s\n" % (txnr, command, len(data), data)
    return b"%d %s 0\n" % (txnr, command)


class RelpTransport:
    def __init__(self, url: str, host: str, port: int, *, window: int = WINDOW) -> None:
        self.url = url
        self.host = host
        self.port = port
        self.window = window
        self.rejected = 0
        self.err: Callable[[str], None] | None = None  # refuses nothing for good
        self.sock: socket.socket | None = None
        self.txnr = 0
        self.inflight: deque[int] = deque()
        self.rbuf = bytearray()

    def _next_txnr(self) -> int:
        self.txnr = 1 if self.txnr >= TXNR_MAX else self.txnr + 1
        return self.txnr

    # -- session -----------------------------------------------------------------------------

    def connect(self) -> None:
        try:
            s = socket.create_connection((self.host, self.port), timeout=IO_TIMEOUT)
        except OSError as e:
            raise TransportError(e.strerror or str(e)) from None
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = s
        self.txnr = 0
        self.inflight.clear()
        self.rbuf.clear()
        offers = (
            b"relp_version=0\nrelp_software=netconsolectl,%s\ncommands=syslog"
            % __version__.encode()
        )
        txnr = self._next_txnr()
        self._sendall(frame(txnr, b"open", offers))
        rtxnr, command, data = self._read_frame(IO_TIMEOUT)
        if rtxnr != txnr or command != b"rsp" or not data.startswith(b"200"):
            self.disconnect()
            raise TransportError(f"session refused: {command.decode(errors='replace')} "
                                 f"{data[:80].decode(errors='replace')!r}")
        if b"commands=" in data and b"syslog" not in data.split(b"commands=", 1)[1]:
            self.disconnect()
            raise TransportError("the server does not accept the syslog command")

    def disconnect(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.inflight.clear()

    def close_session(self) -> None:
        """A polite ``close`` once everything is answered (the server may log an abort else)."""
        if self.sock is None or self.inflight:
            return
        try:
            txnr = self._next_txnr()
            self._sendall(frame(txnr, b"close", b""))
            self._read_frame(2.0)
        except TransportError:
            pass

    # -- data --------------------------------------------------------------------------------

    def batch_size(self) -> int:
        return self.window

    def in_flight(self) -> int:
        return len(self.inflight)

    def send(self, records: list[bytes]) -> int:
        out = []
        for r in records:
            txnr = self._next_txnr()
            out.append(frame(txnr, b"syslog", r))
            self.inflight.append(txnr)
        self._sendall(b"".join(out))
        return self.poll(0.0)

    def poll(self, timeout: float) -> int:
        """Read the answers that are there (waiting up to ``timeout`` for the first one);
        returns how many messages they acknowledge."""
        acked = 0
        while self.inflight:
            plain = self._plain_acks()
            if plain:
                acked += plain
                continue
            parsed = self._parse()
            if parsed is None:
                if not self._fill(timeout if acked == 0 else 0.0):
                    break
                continue
            rtxnr, command, data = parsed
            if rtxnr == 0:
                if command == b"serverclose":
                    raise TransportError("the server closed the session")
                continue  # another hint: ignored, as the protocol asks
            if command != b"rsp" or not self.inflight or rtxnr != self.inflight[0]:
                what = command.decode(errors="replace")
                raise TransportError(f"unexpected answer {rtxnr} {what}")
            if not data.startswith(b"200"):
                raise TransportError(f"message refused: {data[:80].decode(errors='replace')!r}")
            self.inflight.popleft()
            acked += 1
        return acked

    def _plain_acks(self) -> int:
        """Take the answers at the head of the read buffer that are the plain ``200 OK`` of
        the oldest messages in flight, in order (what rsyslog sends), by comparing them with
        the bytes they must be: a third of the cost of parsing each one. Anything else is left
        to :meth:`_parse`."""
        buf = self.rbuf
        at = taken = 0
        for txnr in self.inflight:
            ack = b"%d rsp 6 200 OK\n" % txnr
            if not buf.startswith(ack, at):
                break
            at += len(ack)
            taken += 1
        del buf[:at]
        for _ in range(taken):
            self.inflight.popleft()
        return taken

    # -- framing -----------------------------------------------------------------------------

    def _sendall(self, data: bytes) -> None:
        assert self.sock is not None
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise TransportError(f"connection lost: {e.strerror or e}") from None

    def _fill(self, timeout: float) -> bool:
        """Read what the socket has; False when nothing came within ``timeout``."""
        assert self.sock is not None
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return False
        try:
            chunk = self.sock.recv(1 << 16, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError as e:
            raise TransportError(f"connection lost: {e.strerror or e}") from None
        if not chunk:
            raise TransportError("connection closed by the server")
        self.rbuf += chunk
        return True

    def _read_frame(self, timeout: float) -> tuple[int, bytes, bytes]:
        while True:
            parsed = self._parse()
            if parsed is not None:
                return parsed
            if not self._fill(timeout):
                raise TransportError("no answer from the server")

    def _parse(self) -> tuple[int, bytes, bytes] | None:
        """One frame from the read buffer, or None when it is not complete yet."""
        buf = self.rbuf
        # HEADER: TXNR SP COMMAND SP DATALEN, then SP DATA (if DATALEN > 0), then LF
        first = buf.find(b" ")
        second = buf.find(b" ", first + 1) if first >= 0 else -1
        if second < 0:
            if len(buf) > 64:
                raise TransportError("framing error in the server's answer")
            return None
        end = second + 1
        while end < len(buf) and 0x30 <= buf[end] <= 0x39:
            end += 1
        if end == len(buf):
            return None
        try:
            txnr = int(buf[:first])
            datalen = int(buf[second + 1 : end])
        except ValueError:
            raise TransportError("framing error in the server's answer") from None
        if datalen > MAX_DATALEN:
            raise TransportError("framing error in the server's answer (DATALEN)")
        command = bytes(buf[first + 1 : second])
        if datalen == 0:
            if buf[end] != 0x0A:
                raise TransportError("framing error in the server's answer")
            del buf[: end + 1]
            return txnr, command, b""
        stop = end + 1 + datalen
        if len(buf) <= stop:
            return None
        if buf[end] != 0x20 or buf[stop] != 0x0A:
            raise TransportError("framing error in the server's answer")
        data = bytes(buf[end + 1 : stop])
        del buf[: stop + 1]
        return txnr, command, data

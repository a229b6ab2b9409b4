"""``--forward``: hand messages to an existing log pipeline.

* ``syslog+udp://HOST[:PORT]`` and ``syslog+tcp://HOST[:PORT]`` (port 514 by default): RFC 5424
  with the sender's address as HOSTNAME, APP-NAME ``kernel``, the kernel's facility and level as
  PRI (basic-format messages: kern.info), and the stream metadata and key/value fields as
  structured data. TCP uses octet-counting framing (RFC 6587), reconnects after a failure and
  never blocks the receiver: what cannot be sent is dropped and counted in ``forward_errors``.
* ``journald`` or ``journald:///PATH/TO/SOCKET``: the journal's native protocol on its datagram
  socket (default ``/run/systemd/journal/socket``), metadata and fields as journal fields.

Events (lost, reset, ...) are forwarded too, as messages of level warning.
"""

from __future__ import annotations

import contextlib
import errno
import re
import socket
import struct
import time
from typing import Any
from urllib.parse import urlsplit

from netconsolectl.errors import InvalidInput, Unavailable
from netconsolectl.receiver.model import Event, Message
from netconsolectl.receiver.output import IsoTime
from netconsolectl.receiver.sinks.text import format_event

JOURNAL_SOCKET = "/run/systemd/journal/socket"
#: Enterprise number of the structured-data IDs: 32473 is the one RFC 5612 sets aside for
#: examples and documentation, used here until a private number is registered.
SD_PEN = "32473"
#: Bytes buffered for a TCP collector that does not keep up, before messages are dropped.
TCP_BUFFER = 16 << 20
#: Seconds between reconnection attempts to a TCP collector.
RECONNECT_INTERVAL = 1.0

_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}


def open_forwarder(url: str) -> Any:
    """Parse a ``--forward`` URL and open its output. Raises InvalidInput or Unavailable."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "journald" or url == "journald":
        path = parts.path or JOURNAL_SOCKET
        if parts.netloc:
            raise InvalidInput(f"--forward {url}: use journald:///path/to/socket")
        return JournaldSink(path)
    if scheme in ("syslog+udp", "syslog+tcp"):
        if not parts.hostname:
            raise InvalidInput(f"--forward {url}: no host", hint="e.g. syslog+udp://127.0.0.1:514")
        try:
            port = parts.port or 514
        except ValueError:
            raise InvalidInput(f"--forward {url}: bad port") from None
        return SyslogSink(parts.hostname, port, tcp=scheme == "syslog+tcp")
    raise InvalidInput(
        f"--forward {url}: unknown scheme",
        hint="use syslog+udp://HOST:PORT, syslog+tcp://HOST:PORT or journald",
    )


# -- RFC 5424 ----------------------------------------------------------------------------------

_SD_NAME_BAD = re.compile(r'[^!#-<>-\\^-~]')  # PRINTUSASCII minus '=', ']', '"' and space


def sd_name(key: str) -> str:
    """A PARAM-NAME: at most 32 printable ASCII characters, none of ``= ] "`` or space."""
    return (_SD_NAME_BAD.sub("_", key) or "_")[:32]


def sd_value(value: str) -> str:
    """A PARAM-VALUE: ``"``, ``\\`` and ``]`` escaped with a backslash (RFC 5424 6.3.3)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def syslog_line(m: Message, iso: IsoTime) -> bytes:
    """One RFC 5424 message (without transport framing)."""
    facility = 0 if m.facility is None else min(m.facility, 23)
    level = 6 if m.level is None else m.level
    meta = [f'port="{m.port}"']
    if m.seq is not None:
        meta += [f'seq="{m.seq}"', f'ts_usec="{m.ts_usec}"', f'cont="{int(bool(m.cont))}"']
        if m.release is not None:
            meta.append(f'release="{sd_value(m.release)}"')
    if m.incomplete:
        meta.append('incomplete="1"')
    sd = f'[origin ip="{sd_value(m.host)}"][netconsole@{SD_PEN} {" ".join(meta)}]'
    if m.fields:
        params = " ".join(f'{sd_name(k)}="{sd_value(v)}"' for k, v in m.fields.items())
        sd += f"[fields@{SD_PEN} {params}]"
    host = _hostname(m.host)
    text = m.text.translate(_CONTROLS)
    return (
        f"<{facility * 8 + level}>1 {iso(m.received)} {host} kernel - netconsole {sd} {text}"
    ).encode("utf-8", "backslashreplace")


def _hostname(host: str) -> str:
    return "".join(c if 0x21 <= ord(c) <= 0x7E else "_" for c in host)[:255] or "-"


def syslog_event(e: Event, iso: IsoTime) -> bytes:
    params = " ".join(f'{sd_name(k)}="{sd_value(str(v))}"' for k, v in e.data.items())
    sd = f'[origin ip="{sd_value(e.host)}"][netconsole@{SD_PEN} port="{e.port}" {params}]'
    text = format_event(e, with_host=False).translate(_CONTROLS)
    line = f"<4>1 {iso(e.received)} {_hostname(e.host)} netconsolectl - {e.type} {sd} {text}"
    return line.encode("utf-8", "backslashreplace")


class SyslogSink:
    def __init__(self, host: str, port: int, *, tcp: bool) -> None:
        self.tcp = tcp
        self.errors = 0
        self.iso = IsoTime()
        try:
            infos = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM
            )
        except socket.gaierror as e:
            raise Unavailable(f"--forward: cannot resolve {host}: {e.strerror}") from None
        self.family: socket.AddressFamily = infos[0][0]
        self.addr: Any = infos[0][4]
        self.sock: socket.socket | None = None
        self.buffer = bytearray()
        self.next_connect = 0.0
        if not tcp:
            self.sock = socket.socket(self.family, socket.SOCK_DGRAM)
            self.sock.setblocking(False)
        else:
            self._connect()

    def _connect(self) -> None:
        now = time.monotonic()
        if now < self.next_connect:
            return
        self.next_connect = now + RECONNECT_INTERVAL
        s = socket.socket(self.family, socket.SOCK_STREAM)
        s.settimeout(1.0)
        try:
            s.connect(self.addr)
        except OSError:
            s.close()
            self.errors += 1
            return
        s.setblocking(False)
        self.sock = s

    def _send(self, payload: bytes) -> None:
        if not self.tcp:
            assert self.sock is not None
            try:
                self.sock.sendto(payload, self.addr)
            except OSError:
                self.errors += 1
            return
        if len(self.buffer) + len(payload) > TCP_BUFFER:
            self.errors += 1
            return
        self.buffer += b"%d " % len(payload) + payload

    def message(self, m: Message) -> None:
        self._send(syslog_line(m, self.iso))

    def event(self, e: Event) -> None:
        self._send(syslog_event(e, self.iso))

    def flush(self, deadline: float = 0.0) -> None:
        """Send what is buffered without blocking (or until ``deadline``, monotonic)."""
        if not self.tcp:
            return
        while self.buffer:
            if self.sock is None:
                self._connect()
                if self.sock is None:
                    if time.monotonic() >= deadline:
                        return
                    time.sleep(0.05)
                    continue
            try:
                n = self.sock.send(self.buffer)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return
                time.sleep(0.01)
                continue
            except OSError:
                # The collector went away: what it may have half-received is lost; start over
                # on a new connection with the complete messages still buffered.
                self.sock.close()
                self.sock = None
                self.errors += 1
                continue
            del self.buffer[:n]

    def close(self) -> None:
        self.flush(deadline=time.monotonic() + 2.0)
        if self.buffer:
            self.errors += 1
        if self.sock is not None:
            self.sock.close()


# -- journald native protocol ------------------------------------------------------------------

_FIELD_BAD = re.compile(r"[^A-Z0-9_]")


def journal_field_name(key: str) -> str:
    """Upper case letters, digits and ``_``, not starting with ``_`` or a digit, <= 64 chars."""
    name = _FIELD_BAD.sub("_", key.upper()).lstrip("_")
    if not name or name[0].isdigit():
        name = "F" + name
    return name[:64]


def journal_entry(fields: list[tuple[str, str]]) -> bytes:
    """Serialise fields; values with a newline use the binary length-prefixed form."""
    out = bytearray()
    for name, value in fields:
        v = value.encode("utf-8", "backslashreplace")
        if b"\n" in v:
            out += name.encode() + b"\n" + struct.pack("<Q", len(v)) + v + b"\n"
        else:
            out += name.encode() + b"=" + v + b"\n"
    return bytes(out)


class JournaldSink:
    def __init__(self, path: str) -> None:
        self.path = path
        self.errors = 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
        try:
            self.sock.connect(path)
        except OSError as e:
            self.sock.close()
            raise Unavailable(
                f"--forward journald: cannot use {path}: {e.strerror}",
                hint="is systemd-journald running? journald:///PATH names another socket",
                errno=e.errno,
            ) from None

    def _send(self, fields: list[tuple[str, str]]) -> None:
        try:
            self.sock.send(journal_entry(fields))
        except OSError as e:
            self.errors += 1
            if e.errno in (errno.ECONNREFUSED, errno.ENOTCONN):
                with contextlib.suppress(OSError):
                    self.sock.connect(self.path)

    def message(self, m: Message) -> None:
        fields = [
            ("MESSAGE", m.text),
            ("PRIORITY", str(6 if m.level is None else m.level)),
            ("SYSLOG_FACILITY", str(0 if m.facility is None else m.facility)),
            ("SYSLOG_IDENTIFIER", "netconsole"),
            ("NETCONSOLE_HOST", m.host),
            ("NETCONSOLE_PORT", str(m.port)),
        ]
        if m.seq is not None:
            fields += [
                ("NETCONSOLE_SEQ", str(m.seq)),
                ("NETCONSOLE_TS_USEC", str(m.ts_usec)),
                ("NETCONSOLE_CONT", "1" if m.cont else "0"),
            ]
            if m.release is not None:
                fields.append(("NETCONSOLE_RELEASE", m.release))
        if m.incomplete:
            fields.append(("NETCONSOLE_INCOMPLETE", "1"))
        for k, v in m.fields.items():
            fields.append(("NETCONSOLE_FIELD_" + journal_field_name(k), v))
        self._send(fields)

    def event(self, e: Event) -> None:
        fields = [
            ("MESSAGE", format_event(e)),
            ("PRIORITY", "4"),
            ("SYSLOG_IDENTIFIER", "netconsolectl"),
            ("NETCONSOLE_EVENT", e.type),
            ("NETCONSOLE_HOST", e.host),
            ("NETCONSOLE_PORT", str(e.port)),
        ]
        for k, v in e.data.items():
            fields.append(("NETCONSOLE_" + journal_field_name(k), str(v)))
        self._send(fields)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.sock.close()

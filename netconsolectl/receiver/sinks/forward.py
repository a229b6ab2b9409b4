"""``--forward``: hand messages to an existing log pipeline.

* ``syslog+udp://HOST[:PORT]`` and ``syslog+tcp://HOST[:PORT]`` (port 514 by default): RFC 5424
  with the sender's address as HOSTNAME, APP-NAME ``kernel``, the kernel's facility and level as
  PRI (basic-format messages: kern.info), and the stream metadata, the stable message id and
  the key/value fields as structured data. TCP uses octet-counting framing (RFC 6587) and goes
  through the spool (:mod:`netconsolectl.receiver.sinks.reliable`): it reconnects after a
  failure and never blocks the receiver. TCP itself acknowledges nothing: what the kernel had
  in flight on a connection that breaks can be lost; RELP closes that gap.
* ``relp://HOST[:PORT]`` (port 2514 by default): the same messages over RELP
  (:mod:`netconsolectl.receiver.sinks.relp`), acknowledged one by one, through the spool.
* ``otlp+http://HOST:PORT/PATH`` and ``otlp+https://...``: OpenTelemetry logs
  (:mod:`netconsolectl.receiver.sinks.otlp`), through the spool.
* ``journald`` or ``journald:///PATH/TO/SOCKET``: the journal's native protocol on its datagram
  socket (default ``/run/systemd/journal/socket``), metadata and fields as journal fields.

Events (lost, reset, ...) are forwarded too, as messages of level warning.
"""

from __future__ import annotations

import contextlib
import errno
import re
import select
import socket
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from netconsolectl.errors import InvalidInput, Unavailable
from netconsolectl.receiver.model import Event, Message
from netconsolectl.receiver.output import IsoTime
from netconsolectl.receiver.sinks import Sink, SinkBase
from netconsolectl.receiver.sinks.text import format_event

if TYPE_CHECKING:
    from netconsolectl.receiver.sinks.reliable import ReliableSink, Transport

JOURNAL_SOCKET = "/run/systemd/journal/socket"
#: Enterprise number of the structured-data IDs: 32473 is the one RFC 5612 sets aside for
#: examples and documentation, used here until a private number is registered.
SD_PEN = "32473"

#: Default bound of a spool in --spool-dir, and of one in a temporary directory.
SPOOL_MAX = 1024 << 20
TEMP_SPOOL_MAX = 64 << 20

_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}


#: Schemes whose forwarder spools (and runs in a process of its own: sinks/process.py).
SPOOLED = ("syslog+tcp", "relp", "otlp+http", "otlp+https")


def spooled(url: str) -> bool:
    return urlsplit(url).scheme.lower() in SPOOLED


def open_forwarder(
    url: str,
    *,
    spool_dir: str | None = None,
    spool_max_bytes: int | None = None,
    worker: int = 0,
    err: Callable[[str], None] | None = None,
    check_only: bool = False,
) -> Sink | ReliableSink | None:
    """Parse a ``--forward`` URL and open its output (None with ``check_only``, which only
    validates). Raises InvalidInput or Unavailable.

    The reliable forwarders (syslog+tcp, relp, otlp) spool in ``spool_dir`` (a subdirectory per
    URL and worker), or in a private temporary directory removed at exit; ``err`` takes their
    one-line notices. ``spool_max_bytes`` defaults to :data:`SPOOL_MAX` in ``spool_dir`` and to
    :data:`TEMP_SPOOL_MAX` in a temporary directory (which may well be memory, a tmpfs)."""
    if spool_max_bytes is None:
        spool_max_bytes = SPOOL_MAX if spool_dir is not None else TEMP_SPOOL_MAX
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
        if scheme == "syslog+udp":
            udp = SyslogSink(parts.hostname, port, tcp=False)
            if check_only:
                udp.close()
                return None
            return udp
        if check_only:
            return None
        return _reliable(url, SyslogTcpTransport(url, parts.hostname, port),
                         spool_dir, spool_max_bytes, worker, err)
    if scheme == "relp":
        from netconsolectl.receiver.sinks.relp import DEFAULT_PORT, RelpTransport

        if not parts.hostname:
            raise InvalidInput(f"--forward {url}: no host", hint="e.g. relp://127.0.0.1:2514")
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError:
            raise InvalidInput(f"--forward {url}: bad port") from None
        if check_only:
            return None
        return _reliable(url, RelpTransport(url, parts.hostname, port),
                         spool_dir, spool_max_bytes, worker, err)
    if scheme in ("otlp+http", "otlp+https"):
        from netconsolectl.receiver.sinks.otlp import open_otlp

        return open_otlp(url, spool_dir=spool_dir, spool_max_bytes=spool_max_bytes,
                         worker=worker, err=err, check_only=check_only)
    raise InvalidInput(
        f"--forward {url}: unknown scheme",
        hint="use syslog+udp://HOST:PORT, syslog+tcp://HOST:PORT, relp://HOST:PORT, "
        "otlp+http://HOST:PORT/v1/logs or journald",
    )


def _reliable(
    url: str,
    transport: Transport,
    spool_dir: str | None,
    spool_max_bytes: int,
    worker: int,
    err: Callable[[str], None] | None,
) -> ReliableSink:
    from netconsolectl.receiver.sinks.reliable import Deliverer, ReliableSink

    iso = IsoTime()
    deliverer = Deliverer(url, transport, lambda m: syslog_line(m, iso),
                          lambda e: syslog_event(e, iso), err, encode_json=syslog_json())
    return ReliableSink(deliverer, spool_dir=spool_dir, spool_max_bytes=spool_max_bytes,
                        worker=worker, err=err)


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
    if m.id:
        meta.append(f'id="{m.id}"')
    sd = f'[origin ip="{sd_value(m.host)}"][netconsole@{SD_PEN} {" ".join(meta)}]'
    if m.fields:
        params = " ".join(f'{sd_name(k)}="{sd_value(v)}"' for k, v in m.fields.items())
        sd += f"[fields@{SD_PEN} {params}]"
    host = _hostname(m.host)
    text = m.text.translate(_CONTROLS)
    return (
        f"<{facility * 8 + level}>1 {iso(m.received)} {host} kernel - netconsole {sd} {text}"
    ).encode("utf-8", "backslashreplace")


def syslog_json() -> Callable[[bytes], bytes | None] | None:
    """The C module's shortcut from a spooled message line straight to :func:`syslog_line`'s
    bytes (None for a line of another shape), or None when the module is not built."""
    try:
        from netconsolectl.receiver._fastjson import syslog_from_json
    except ImportError:
        return None
    pen = SD_PEN.encode()
    return lambda record: syslog_from_json(record, pen)


def _hostname(host: str) -> str:
    return "".join(c if 0x21 <= ord(c) <= 0x7E else "_" for c in host)[:255] or "-"


def syslog_event(e: Event, iso: IsoTime) -> bytes:
    params = " ".join(f'{sd_name(k)}="{sd_value(str(v))}"' for k, v in e.data.items())
    sd = f'[origin ip="{sd_value(e.host)}"][netconsole@{SD_PEN} port="{e.port}" {params}]'
    text = format_event(e, with_host=False).translate(_CONTROLS)
    line = f"<4>1 {iso(e.received)} {_hostname(e.host)} netconsolectl - {e.type} {sd} {text}"
    return line.encode("utf-8", "backslashreplace")


class SyslogSink(SinkBase):
    """RFC 5424 over UDP: fire and forget (a send error is counted in ``forward_errors``)."""

    def __init__(self, host: str, port: int, *, tcp: bool = False) -> None:
        assert not tcp, "syslog over TCP is a ReliableSink with SyslogTcpTransport"
        self.errors = 0
        self.iso = IsoTime()
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except socket.gaierror as e:
            raise Unavailable(f"--forward: cannot resolve {host}: {e.strerror}") from None
        self.addr: Any = infos[0][4]
        self.sock = socket.socket(infos[0][0], socket.SOCK_DGRAM)
        self.sock.setblocking(False)

    def _send(self, payload: bytes) -> None:
        try:
            self.sock.sendto(payload, self.addr)
        except OSError:
            self.errors += 1

    def message(self, m: Message) -> None:
        self._send(syslog_line(m, self.iso))

    def event(self, e: Event) -> None:
        self._send(syslog_event(e, self.iso))

    def flush(self) -> None:
        pass

    def counts(self) -> dict[str, int]:
        return {"forward_errors": self.errors}

    def close(self) -> None:
        self.sock.close()


class SyslogTcpTransport:
    """RFC 5424 over TCP with octet-counting framing (RFC 6587), driven by a ReliableSink."""

    def __init__(self, url: str, host: str, port: int) -> None:
        self.url = url
        self.host = host
        self.port = port
        self.rejected = 0
        self.err: Callable[[str], None] | None = None  # refuses nothing for good
        self.sock: socket.socket | None = None

    def connect(self) -> None:
        from netconsolectl.receiver.sinks.reliable import TransportError

        try:
            self.sock = socket.create_connection((self.host, self.port), timeout=10.0)
        except OSError as e:
            raise TransportError(e.strerror or str(e)) from None

    def batch_size(self) -> int:
        return 1000

    def in_flight(self) -> int:
        return 0

    def send(self, records: list[bytes]) -> int:
        from netconsolectl.receiver.sinks.reliable import TransportError

        assert self.sock is not None
        try:
            # A collector that went away is seen as readable with nothing to read: catch that
            # before handing it data that would vanish.
            readable, _, _ = select.select([self.sock], [], [], 0)
            if readable and self.sock.recv(1, socket.MSG_PEEK) == b"":
                raise TransportError("connection closed by the collector")
            self.sock.sendall(b"".join(b"%d %s" % (len(r), r) for r in records))
        except OSError as e:
            raise TransportError(f"connection lost: {e.strerror or e}") from None
        return len(records)

    def poll(self, timeout: float) -> int:
        return 0

    def disconnect(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def close_session(self) -> None:
        pass


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


class JournaldSink(SinkBase):
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
        if m.id:
            fields.append(("NETCONSOLE_ID", m.id))
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

    def counts(self) -> dict[str, int]:
        return {"forward_errors": self.errors}

    def close(self) -> None:
        self.sock.close()

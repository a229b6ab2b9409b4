"""``--forward otlp+http://HOST:PORT/v1/logs`` (and ``otlp+https://``): OpenTelemetry logs over
HTTP (OTLP/HTTP, binary protobuf), encoded with the official ``opentelemetry-proto`` messages
(the ``otlp`` extra: ``pip install 'netconsolectl[otlp]'``), imported only when such a forward is
asked for. The delivery process serialises the common spooled line in C instead
(``_fastjson.otlp_from_json``, the same bytes: tests/unit/test_otlp_request.py holds both to
the request those messages build), about 40 µs less per record.

What a record carries:

* resource: ``host.name`` (the sender's ``hostname`` userdata when it sends one, else its
  address), ``host.ip`` (the address), ``service.name`` = ``netconsole``; one ResourceLogs per
  sending host in a request;
* ``observed_time_unix_nano``: the receive time (the kernel's timestamp counts from the
  sender's boot, not from the epoch, so ``time_unix_nano`` is left unset);
* ``severity_number``/``severity_text`` from the kernel level, by the OpenTelemetry data
  model's syslog mapping (emerg FATAL, alert ERROR3, crit ERROR2, err ERROR, warning WARN,
  notice INFO2, info INFO, debug DEBUG); basic-format messages are info;
* body: the text; attributes ``log.record.uid`` (the stable message id, for de-duplication),
  ``netconsole.seq``, ``netconsole.ts_usec`` (kernel timestamp, µs since boot),
  ``netconsole.facility``, ``netconsole.release``, ``netconsole.cont``, ``netconsole.port``,
  ``netconsole.incomplete`` (when true) and each key/value field as ``netconsole.field.KEY``;
* receiver events (lost, reset, ...) are records with ``event_name`` ``netconsole.TYPE``,
  severity WARN, their keys as ``netconsole.*`` attributes and a ``log.record.uid`` of their
  own (``ev-`` and a hash of what the spooled event says), so a resent event is recognised
  too.

Batches hold at most :data:`BATCH` records and :data:`MAX_REQUEST_BYTES` and wait at most
:data:`LINGER` seconds for more.
Connection errors, 429 and 5xx are retried with exponential back-off (``Retry-After`` is
honoured); any other 4xx is reported and counted in ``forward_rejected``, and the batch is not
sent again (the collector will never take it). ``partial_success.rejected_log_records`` in an
accepted answer is counted the same way. otlp+https verifies the server against the system's
CA store (``SSL_CERT_FILE``/``SSL_CERT_DIR`` name another one).
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import json
import ssl
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

from netconsolectl import __version__
from netconsolectl.errors import InvalidInput, Unavailable
from netconsolectl.receiver.model import Event, Message
from netconsolectl.receiver.sinks.reliable import Deliverer, ReliableSink, TransportError

#: Records per request, at most.
BATCH = 512
#: Bytes of records past which a request is sent without waiting for more: a reassembled
#: message may be 1 MiB, and a collector refuses a request past its limit whole (413; the
#: OpenTelemetry Collector's default limit is 20 MiB).
MAX_REQUEST_BYTES = 4 << 20
#: Seconds a batch waits for more records before it is sent.
LINGER = 0.2
#: Seconds an HTTP request may take.
HTTP_TIMEOUT = 10.0

#: Kernel level -> (severity_number, severity_text).
SEVERITY = {
    0: (21, "emerg"),
    1: (19, "alert"),
    2: (18, "crit"),
    3: (17, "err"),
    4: (13, "warning"),
    5: (10, "notice"),
    6: (9, "info"),
    7: (5, "debug"),
}


@functools.cache
def _pb() -> SimpleNamespace:
    """The protocol's message classes (ImportError when the ``otlp`` extra is missing)."""
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
    from opentelemetry.proto.common.v1 import common_pb2
    from opentelemetry.proto.logs.v1 import logs_pb2
    from opentelemetry.proto.resource.v1 import resource_pb2

    return SimpleNamespace(
        AnyValue=common_pb2.AnyValue, KeyValue=common_pb2.KeyValue, LogRecord=logs_pb2.LogRecord,
        Resource=resource_pb2.Resource, Scope=common_pb2.InstrumentationScope,
        Response=logs_service_pb2.ExportLogsServiceResponse,
    )  # fmt: skip


# A spooled message or event becomes one record: the serialised Resource of its host (a u32
# little-endian length first), then its serialised LogRecord. The records of a request are
# grouped by those Resource bytes (OtlpTransport.request). The C module's otlp_from_json makes
# the same bytes from a spooled line of the receive loops' shape (otlp_json).


@functools.lru_cache(maxsize=4096)
def _resource(name: str, host: str) -> bytes:
    pb = _pb()
    AnyValue, KeyValue = pb.AnyValue, pb.KeyValue
    ip = AnyValue()
    ip.array_value.values.append(AnyValue(string_value=host))
    res = pb.Resource(attributes=[
        KeyValue(key="host.name", value=AnyValue(string_value=name)),
        KeyValue(key="host.ip", value=ip),
        KeyValue(key="service.name", value=AnyValue(string_value="netconsole")),
    ])  # fmt: skip
    data = bytes(res.SerializeToString())
    return len(data).to_bytes(4, "little") + data


def _observed(received: float) -> int:
    """The receive time in ns, to the microsecond the spooled line has (as IsoTime gets it)."""
    sec = int(received)
    return max(0, (sec * 1_000_000 + int((received - sec) * 1e6)) * 1000)


def encode_message(m: Message) -> bytes:
    """A message as an OTLP record (see above)."""
    pb = _pb()
    AnyValue, KeyValue = pb.AnyValue, pb.KeyValue
    rec = pb.LogRecord()
    rec.severity_number, rec.severity_text = SEVERITY[6 if m.level is None else m.level]
    rec.body.string_value = m.text
    a = rec.attributes
    if m.id:
        a.append(KeyValue(key="log.record.uid", value=AnyValue(string_value=m.id)))
    a.append(KeyValue(key="netconsole.port", value=AnyValue(int_value=m.port)))
    if m.seq is not None:
        a.append(KeyValue(key="netconsole.seq", value=_any(AnyValue, m.seq)))
        a.append(KeyValue(key="netconsole.ts_usec", value=_any(AnyValue, m.ts_usec)))
        a.append(KeyValue(key="netconsole.facility", value=AnyValue(int_value=m.facility)))
        a.append(KeyValue(key="netconsole.cont", value=AnyValue(bool_value=bool(m.cont))))
        if m.release is not None:
            a.append(KeyValue(key="netconsole.release", value=AnyValue(string_value=m.release)))
    if m.incomplete:
        a.append(KeyValue(key="netconsole.incomplete", value=AnyValue(bool_value=True)))
    for k, v in m.fields.items():
        a.append(KeyValue(key="netconsole.field." + k, value=AnyValue(string_value=v)))
    rec.observed_time_unix_nano = _observed(m.received)
    return _resource(m.fields.get("hostname") or m.host, m.host) + bytes(rec.SerializeToString())


def encode_event(e: Event) -> bytes:
    """A receiver event as an OTLP record (see above)."""
    from netconsolectl.receiver.sinks.text import format_event

    pb = _pb()
    AnyValue, KeyValue = pb.AnyValue, pb.KeyValue
    kv = {k: v for k, v in e.data.items() if isinstance(v, (str, int, float, bool))}
    text = format_event(e)
    # The stable id of an event is a hash of what it says, the same however often it is sent
    # (and the same as when the spooled record was this compact JSON).
    said = json.dumps({"h": e.host, "p": e.port, "r": e.received, "ev": e.type, "t": text,
                       "kv": kv}, separators=(",", ":")).encode()  # fmt: skip
    rec = pb.LogRecord(event_name="netconsole." + e.type, severity_number=13,
                       severity_text="warning")  # fmt: skip
    rec.body.string_value = text
    a = rec.attributes
    uid = "ev-" + hashlib.blake2b(said, digest_size=8).hexdigest()
    a.append(KeyValue(key="log.record.uid", value=AnyValue(string_value=uid)))
    a.append(KeyValue(key="netconsole.port", value=AnyValue(int_value=e.port)))
    for k, v in kv.items():
        a.append(KeyValue(key="netconsole." + k, value=_any(AnyValue, v)))
    rec.observed_time_unix_nano = _observed(e.received)
    return _resource(e.host, e.host) + bytes(rec.SerializeToString())


def otlp_json() -> Callable[[bytes], bytes | None] | None:
    """The C module's shortcut from a spooled message line straight to :func:`encode_message`'s
    bytes (None for a line of another shape), or None when the module is not built."""
    try:
        from netconsolectl.receiver._fastjson import otlp_from_json
    except ImportError:
        return None
    return otlp_from_json


def _delimited(tag: int, data: bytes) -> bytes:
    """A length-delimited protobuf field."""
    n = len(data)
    head = bytearray((tag,))
    while n >= 0x80:
        head.append(n & 0x7F | 0x80)
        n >>= 7
    head.append(n)
    return bytes(head) + data


class OtlpTransport:
    def __init__(self, url: str, scheme: str, host: str, port: int, path: str) -> None:
        self.url = url
        self.host = host
        self.port = port
        self.path = path
        self.https = scheme == "otlp+https"
        self.rejected = 0
        self.conn: http.client.HTTPConnection | None = None
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.first = 0.0
        self.err: Callable[[str], None] | None = None
        pb = _pb()
        self.response = pb.Response
        #: ScopeLogs.scope, the same in every request.
        self.scope = _delimited(0x0A, pb.Scope(name="netconsolectl", version=__version__)
                                .SerializeToString())  # fmt: skip

    # -- Transport ---------------------------------------------------------------------------

    def connect(self) -> None:
        if self.https:
            ctx = ssl.create_default_context()
            self.conn = http.client.HTTPSConnection(
                self.host, self.port, timeout=HTTP_TIMEOUT, context=ctx
            )
        else:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=HTTP_TIMEOUT)
        try:
            self.conn.connect()
        except (OSError, http.client.HTTPException) as e:
            self.conn = None
            raise TransportError(_why(e)) from None

    def disconnect(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self.pending = []
        self.pending_bytes = 0

    def close_session(self) -> None:
        pass

    def batch_size(self) -> int:
        return BATCH

    def in_flight(self) -> int:
        return len(self.pending)

    def send(self, records: list[bytes]) -> int:
        if not self.pending:
            self.first = time.monotonic()
        self.pending.extend(records)
        self.pending_bytes += sum(map(len, records))
        if len(self.pending) >= BATCH or self.pending_bytes >= MAX_REQUEST_BYTES:
            return self._post()
        return 0

    def poll(self, timeout: float) -> int:
        """Send the batch once it has waited :data:`LINGER` seconds."""
        wait = self.first + LINGER - time.monotonic()
        if wait > 0:
            time.sleep(min(wait, timeout))
            if self.first + LINGER > time.monotonic():
                return 0
        return self._post()

    # -- HTTP --------------------------------------------------------------------------------

    def _post(self) -> int:
        """Send the oldest pending records, at most :data:`BATCH` of them and (unless the
        first alone is larger) :data:`MAX_REQUEST_BYTES`; returns how many were done."""
        n = size = 0
        for rec in self.pending:
            if n and (n == BATCH or size + len(rec) > MAX_REQUEST_BYTES):
                break
            n += 1
            size += len(rec)
        batch = self.pending[:n]
        body = self.request(batch)
        if self.conn is None:
            self.connect()
        assert self.conn is not None
        try:
            self.conn.request(
                "POST", self.path, body,
                {"Content-Type": "application/x-protobuf",
                 "User-Agent": f"netconsolectl/{__version__}"},
            )
            resp = self.conn.getresponse()
            answer = resp.read()
        except (OSError, http.client.HTTPException) as e:
            raise TransportError(_why(e)) from None
        status = resp.status
        if status == 429 or status >= 500:
            retry = resp.getheader("Retry-After")
            after = float(retry) if retry and retry.strip().isdigit() else None
            raise TransportError(f"the collector answered {status} {resp.reason}", after)
        del self.pending[:n]
        self.pending_bytes -= size
        if 200 <= status < 300:
            r = self.response()
            try:
                r.ParseFromString(answer)
            except Exception:  # a collector answering JSON or nothing: accepted all the same
                return len(batch)
            if r.partial_success.rejected_log_records:
                self.rejected += r.partial_success.rejected_log_records
                self._tell(f"the collector rejected {r.partial_success.rejected_log_records} "
                           f"records: {r.partial_success.error_message}")
            return len(batch)
        self.rejected += len(batch)
        self._tell(f"the collector answered {status} {resp.reason}: "
                   f"{answer[:200].decode(errors='replace')!r}; {len(batch)} records dropped")
        return len(batch)

    def _tell(self, line: str) -> None:
        if self.err is not None:
            self.err(line)

    def request(self, batch: list[bytes]) -> bytes:
        """One serialised ExportLogsServiceRequest for a batch of records: one ResourceLogs
        per host, in the order the hosts first come, each with one ScopeLogs."""
        hosts: dict[bytes, list[bytes]] = {}
        for rec in batch:
            end = 4 + int.from_bytes(rec[:4], "little")
            res = rec[4:end]
            records = hosts.get(res)
            if records is None:
                records = hosts[res] = []
            records.append(_delimited(0x12, rec[end:]))
        return b"".join(
            _delimited(0x0A, _delimited(0x0A, res)
                       + _delimited(0x12, self.scope + b"".join(records)))
            for res, records in hosts.items()
        )  # fmt: skip


#: OTLP's int_value is an int64; the kernel's seq and ts_usec are u64, and a datagram from anyone
#: may carry 2^64-1 (the receiver takes any u64). A larger number goes as its decimal string:
#: an int_value out of range makes the whole request fail to encode, again at every resend.
INT64 = range(-(2**63), 2**63)


def _any(AnyValue: Any, v: Any) -> Any:
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v) if v in INT64 else AnyValue(string_value=str(v))
    if isinstance(v, float):
        return AnyValue(double_value=v)
    return AnyValue(string_value=str(v))


def _why(e: BaseException) -> str:
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"TLS: {e.verify_message}"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


def open_otlp(
    url: str,
    *,
    spool_dir: str | None,
    spool_max_bytes: int,
    worker: int,
    err: Callable[[str], None] | None,
    check_only: bool = False,
) -> ReliableSink | None:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if not parts.hostname:
        raise InvalidInput(f"--forward {url}: no host",
                           hint="e.g. otlp+http://127.0.0.1:4318/v1/logs")
    try:
        port = parts.port or (443 if scheme == "otlp+https" else 4318)
    except ValueError:
        raise InvalidInput(f"--forward {url}: bad port") from None
    path = parts.path or "/v1/logs"
    if parts.query:
        path += "?" + parts.query
    try:
        transport = OtlpTransport(url, scheme, parts.hostname, port, path)
    except ImportError:
        raise Unavailable(
            f"--forward {url}: the OpenTelemetry protocol package is not installed",
            hint="pip install 'netconsolectl[otlp]' (opentelemetry-proto)",
        ) from None
    if check_only:
        return None
    deliverer = Deliverer(url, transport, encode_message, encode_event, err,
                          encode_json=otlp_json())  # fmt: skip
    return ReliableSink(deliverer, spool_dir=spool_dir, spool_max_bytes=spool_max_bytes,
                        worker=worker, err=err)

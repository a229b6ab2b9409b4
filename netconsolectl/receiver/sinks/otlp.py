"""``--forward otlp+http://HOST:PORT/v1/logs`` (and ``otlp+https://``): OpenTelemetry logs over
HTTP (OTLP/HTTP, binary protobuf), encoded with the official ``opentelemetry-proto`` messages
(the ``otlp`` extra: ``pip install 'netconsolectl[otlp]'``), imported only when such a forward is
asked for.

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
  own (``ev-`` and a hash of the spooled record), so a resent event is recognised too.

Batches hold at most :data:`BATCH` records and wait at most :data:`LINGER` seconds for more.
Connection errors, 429 and 5xx are retried with exponential back-off (``Retry-After`` is
honoured); any other 4xx is reported and counted in ``forward_rejected``, and the batch is not
sent again (the collector will never take it). ``partial_success.rejected_log_records`` in an
accepted answer is counted the same way. otlp+https verifies the server against the system's
CA store (``SSL_CERT_FILE``/``SSL_CERT_DIR`` name another one).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import ssl
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from netconsolectl import __version__
from netconsolectl.errors import InvalidInput, Unavailable
from netconsolectl.receiver.model import Event, Message
from netconsolectl.receiver.sinks.reliable import Deliverer, ReliableSink, TransportError

#: Records per request, at most.
BATCH = 512
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


def encode_message(m: Message) -> bytes:
    """A message as the spool keeps it for OTLP: compact JSON."""
    d: dict[str, Any] = {"h": m.host, "p": m.port, "r": m.received, "t": m.text, "id": m.id}
    if m.seq is not None:
        d.update(s=m.seq, ts=m.ts_usec, f=m.facility, l=m.level, c=m.cont, rel=m.release)
    if m.fields:
        d["kv"] = m.fields
    if m.incomplete:
        d["inc"] = True
    return json.dumps(d, separators=(",", ":")).encode()


def encode_event(e: Event) -> bytes:
    from netconsolectl.receiver.sinks.text import format_event

    d = {"h": e.host, "p": e.port, "r": e.received, "ev": e.type, "t": format_event(e),
         "kv": {k: v for k, v in e.data.items() if isinstance(v, (str, int, float, bool))}}
    return json.dumps(d, separators=(",", ":")).encode()


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
        self.first = 0.0
        self.err: Callable[[str], None] | None = None
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
        from opentelemetry.proto.common.v1 import common_pb2
        from opentelemetry.proto.logs.v1 import logs_pb2
        from opentelemetry.proto.resource.v1 import resource_pb2

        self.pb_service = logs_service_pb2
        self.pb_common = common_pb2
        self.pb_logs = logs_pb2
        self.pb_resource = resource_pb2

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
        if len(self.pending) >= BATCH:
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
        batch = self.pending
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
        self.pending = []
        if 200 <= status < 300:
            r = self.pb_service.ExportLogsServiceResponse()
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
        """One ExportLogsServiceRequest (serialised) for spooled records."""
        pb_common = self.pb_common
        AnyValue = pb_common.AnyValue
        KeyValue = pb_common.KeyValue
        req = self.pb_service.ExportLogsServiceRequest()
        scopes: dict[tuple[str, str], Any] = {}
        for raw in batch:
            d = json.loads(raw)
            kv: dict[str, Any] = d.get("kv") or {}
            host = d["h"]
            name = kv.get("hostname") if "ev" not in d else None
            key = (str(name or host), host)
            scope = scopes.get(key)
            if scope is None:
                rl = req.resource_logs.add()
                attrs = rl.resource.attributes
                attrs.append(KeyValue(key="host.name", value=AnyValue(string_value=key[0])))
                ip = AnyValue()
                ip.array_value.values.append(AnyValue(string_value=host))
                attrs.append(KeyValue(key="host.ip", value=ip))
                service = AnyValue(string_value="netconsole")
                attrs.append(KeyValue(key="service.name", value=service))
                scope = rl.scope_logs.add()
                scope.scope.name = "netconsolectl"
                scope.scope.version = __version__
                scopes[key] = scope
            rec = scope.log_records.add()
            rec.observed_time_unix_nano = int(d["r"] * 1e9)
            rec.body.string_value = d["t"]
            a = rec.attributes
            if "ev" in d:
                rec.event_name = "netconsole." + d["ev"]
                rec.severity_number = 13
                rec.severity_text = "warning"
                # The spooled record is the same bytes however often it is sent: its hash is
                # the event's stable id.
                uid = "ev-" + hashlib.blake2b(raw, digest_size=8).hexdigest()
                a.append(KeyValue(key="log.record.uid", value=AnyValue(string_value=uid)))
                a.append(KeyValue(key="netconsole.port", value=AnyValue(int_value=d["p"])))
                for k, v in kv.items():
                    a.append(KeyValue(key="netconsole." + k, value=_any(AnyValue, v)))
                continue
            number, text = SEVERITY[d.get("l") if d.get("l") is not None else 6]
            rec.severity_number = number
            rec.severity_text = text
            if d.get("id"):
                a.append(KeyValue(key="log.record.uid", value=AnyValue(string_value=d["id"])))
            a.append(KeyValue(key="netconsole.port", value=AnyValue(int_value=d["p"])))
            if "s" in d:
                a.append(KeyValue(key="netconsole.seq", value=_any(AnyValue, d["s"])))
                a.append(KeyValue(key="netconsole.ts_usec", value=_any(AnyValue, d["ts"])))
                a.append(KeyValue(key="netconsole.facility", value=AnyValue(int_value=d["f"])))
                a.append(KeyValue(key="netconsole.cont", value=AnyValue(bool_value=d["c"])))
                if d.get("rel") is not None:
                    a.append(KeyValue(key="netconsole.release",
                                      value=AnyValue(string_value=d["rel"])))
            if d.get("inc"):
                a.append(KeyValue(key="netconsole.incomplete", value=AnyValue(bool_value=True)))
            for k, v in kv.items():
                a.append(KeyValue(key="netconsole.field." + k, value=AnyValue(string_value=v)))
        return bytes(req.SerializeToString())


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
    return ReliableSink(Deliverer(url, transport, encode_message, encode_event, err),
                        spool_dir=spool_dir, spool_max_bytes=spool_max_bytes, worker=worker,
                        err=err)

"""The OTLP request as the collector reads it: records from the C shortcut and from Python,
grouped into one ResourceLogs per host, are the request the protocol's own message classes
build from the same messages (the reference below, written with those classes, field by field
as sinks/otlp.py's docstring describes a record)."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netconsolectl import __version__
from netconsolectl.receiver.model import Event, Message
from netconsolectl.receiver.output import FdWriter, IsoTime
from netconsolectl.receiver.sinks.jsonl import JsonSink, epoch
from netconsolectl.receiver.sinks.text import format_event

pb_service = pytest.importorskip("opentelemetry.proto.collector.logs.v1.logs_service_pb2")
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue  # noqa: E402

from netconsolectl.receiver.sinks.otlp import (  # noqa: E402
    OtlpTransport,
    encode_event,
    encode_message,
    otlp_json,
)
from netconsolectl.receiver.sinks.reliable import Deliverer  # noqa: E402

NOW = 1_765_000_000.123456
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LEVELS = {0: (21, "emerg"), 1: (19, "alert"), 2: (18, "crit"), 3: (17, "err"),
          4: (13, "warning"), 5: (10, "notice"), 6: (9, "info"), 7: (5, "debug")}  # fmt: skip


def value(v: Any) -> AnyValue:
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int) and -(2**63) <= v < 2**63:
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    return AnyValue(string_value=str(v))


def reference(items: list[Message | Event]) -> Any:
    """The request, built with the protocol's classes."""
    req = pb_service.ExportLogsServiceRequest()
    scopes: dict[tuple[str, str], Any] = {}
    for it in items:
        name = it.host
        if isinstance(it, Message) and it.fields.get("hostname"):
            name = it.fields["hostname"]
        scope = scopes.get((name, it.host))
        if scope is None:
            rl = req.resource_logs.add()
            ip = AnyValue()
            ip.array_value.values.append(AnyValue(string_value=it.host))
            rl.resource.attributes.extend([
                KeyValue(key="host.name", value=AnyValue(string_value=name)),
                KeyValue(key="host.ip", value=ip),
                KeyValue(key="service.name", value=AnyValue(string_value="netconsole")),
            ])  # fmt: skip
            scope = scopes[(name, it.host)] = rl.scope_logs.add()
            scope.scope.name = "netconsolectl"
            scope.scope.version = __version__
        rec = scope.log_records.add()
        # the receive time the spooled line has, to the microsecond
        iso = IsoTime()(it.received)
        when = datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        rec.observed_time_unix_nano = (when - EPOCH) // timedelta(microseconds=1) * 1000
        a = rec.attributes
        if isinstance(it, Event):
            kv = {k: v for k, v in it.data.items() if isinstance(v, (str, int, float, bool))}
            said = json.dumps({"h": it.host, "p": it.port, "r": epoch(iso), "ev": it.type,
                               "t": format_event(it), "kv": kv}, separators=(",", ":"))
            rec.event_name = "netconsole." + it.type
            rec.severity_number, rec.severity_text = 13, "warning"
            rec.body.string_value = format_event(it)
            uid = "ev-" + hashlib.blake2b(said.encode(), digest_size=8).hexdigest()
            a.add(key="log.record.uid", value=AnyValue(string_value=uid))
            a.add(key="netconsole.port", value=AnyValue(int_value=it.port))
            for k, v in kv.items():
                a.add(key="netconsole." + k, value=value(v))
            continue
        rec.severity_number, rec.severity_text = LEVELS[6 if it.level is None else it.level]
        rec.body.string_value = it.text
        if it.id:
            a.add(key="log.record.uid", value=AnyValue(string_value=it.id))
        a.add(key="netconsole.port", value=AnyValue(int_value=it.port))
        if it.seq is not None:
            a.add(key="netconsole.seq", value=value(it.seq))
            a.add(key="netconsole.ts_usec", value=value(it.ts_usec))
            a.add(key="netconsole.facility", value=AnyValue(int_value=it.facility))
            a.add(key="netconsole.cont", value=AnyValue(bool_value=bool(it.cont)))
            if it.release is not None:
                a.add(key="netconsole.release", value=AnyValue(string_value=it.release))
        if it.incomplete:
            a.add(key="netconsole.incomplete", value=AnyValue(bool_value=True))
        for k, v in it.fields.items():
            a.add(key="netconsole.field." + k, value=AnyValue(string_value=v))
    return req


def spooled(items: list[Message | Event]) -> list[bytes]:
    """The lines the forwarding process spools for them (the receive loops' --json lines)."""
    fd = os.open(os.devnull, os.O_WRONLY)
    try:
        sink = JsonSink(FdWriter(fd))
        out = []
        for it in items:
            if isinstance(it, Message):
                out.append(sink.encode(it).encode().rstrip(b"\n"))
            else:
                sink.event(it)
                out.append(b"".join(sink.out.parts).rstrip(b"\n"))
                sink.out.parts.clear()
        return out
    finally:
        os.close(fd)


def request(lines: list[bytes], shortcut: bool) -> bytes:
    transport = OtlpTransport("otlp+http://127.0.0.1:1/v1/logs", "otlp+http", "127.0.0.1", 1, "/")
    d = Deliverer("u", transport, encode_message, encode_event,
                  encode_json=otlp_json() if shortcut else None)
    return transport.request([d.encoded(line) for line in lines])


_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20) | st.text(
    max_size=8)


@st.composite
def item(draw: st.DrawFn) -> Message | Event:
    host = draw(st.sampled_from(["192.0.2.7", "192.0.2.8", "2001:db8::1"]))
    received = draw(st.sampled_from([NOW, 0.0, 951_782_400.5, 7_258_118_399.999999]))
    if draw(st.integers(0, 5)) == 0:
        seqs = st.integers(0, 2**64 - 1)
        kind, data = draw(st.sampled_from(["lost", "reset", "malformed"]).flatmap(
            lambda k: st.tuples(st.just(k), st.fixed_dictionaries({
                "lost": {"first_seq": seqs, "last_seq": seqs, "count": seqs},
                "reset": {"seq": seqs, "previous_seq": seqs},
                "malformed": {"reason": _TEXT, "size": st.integers(0, 70000)},
            }[k]))))  # fmt: skip
        return Event(kind, host, 6666, received, data)
    meta: dict[str, Any] = {}
    if draw(st.booleans()):
        meta = {"release": draw(st.none() | _TEXT), "facility": draw(st.integers(0, 23)),
                "level": draw(st.integers(0, 7)), "seq": draw(st.integers(0, 2**64 - 1)),
                "ts_usec": draw(st.integers(0, 2**64 - 1)), "cont": draw(st.booleans())}
    return Message(host, draw(st.integers(0, 65535)), received, draw(_TEXT),
                   fields=draw(st.dictionaries(st.sampled_from(["hostname", "DEVICE"]), _TEXT,
                                               max_size=2)),
                   incomplete=draw(st.booleans()), id=draw(st.sampled_from(["", "ab-1"])),
                   **meta)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(item(), max_size=12))
def test_a_request_is_what_the_protocol_classes_build(items: list[Message | Event]) -> None:
    want = reference(items).SerializeToString()
    lines = spooled(items)
    assert request(lines, shortcut=True) == want
    assert request(lines, shortcut=False) == want


def test_the_receive_loops_lines_take_the_shortcut() -> None:
    shortcut = otlp_json()
    assert shortcut is not None
    m = Message("192.0.2.7", 6665, NOW, "usb 1-1: new device", None, 0, 6, 42, 99, False,
                {"hostname": "web-7"}, id="2b2839a4196b5609-42")
    (line,) = spooled([m])
    assert shortcut(line) is not None
    got = pb_service.ExportLogsServiceRequest.FromString(request([line, line], shortcut=True))
    (rl,) = got.resource_logs
    assert [r.observed_time_unix_nano for r in rl.scope_logs[0].log_records] == [
        1_765_000_000_123_456_000] * 2

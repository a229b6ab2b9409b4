"""``--forward otlp+http://`` and ``otlp+https://``: end to end into an HTTP server in this test
that decodes every request with the official ``opentelemetry-proto`` messages and answers as an
OpenTelemetry Collector's OTLP/HTTP receiver does (200 with an ExportLogsServiceResponse, 429
and 503 when it is overloaded, 400 for a request it cannot use).

No collector binary (otelcol, Vector, Alloy) is installable on these machines (Debian and PyPI
carry none), so the collector's side is this server; it checks the wire format with the
protocol's own message classes, not with our encoder.
"""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.listen.conftest import Sender, free_port

pb = pytest.importorskip("opentelemetry.proto.collector.logs.v1.logs_service_pb2")


@dataclass
class Collector:
    """Answers ``script`` codes in turn (then 200); keeps every decoded request."""

    #: 0: take the request and close the connection without an answer.
    script: list[int] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    content_types: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def records(self) -> list[tuple[Any, Any]]:
        """(resource, log record) of every request that was accepted."""
        out = []
        with self.lock:
            for req, code in zip(self.requests, self.answers, strict=True):
                if code != 200:
                    continue
                for rl in req.resource_logs:
                    for sl in rl.scope_logs:
                        out.extend((rl.resource, r) for r in sl.log_records)
        return out


class Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True


def serve(
    collector: Collector, tls: ssl.SSLContext | None = None, port: int = 0
) -> tuple[Any, int]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            req = pb.ExportLogsServiceRequest()
            req.ParseFromString(body)
            with collector.lock:
                code = collector.script.pop(0) if collector.script else 200
                collector.requests.append(req)
                collector.answers.append(code)
                collector.content_types.add(self.headers["Content-Type"])
            if code == 0:  # taken, but the answer is lost: the connection just closes
                self.close_connection = True
                return
            if code == 200:
                answer = pb.ExportLogsServiceResponse().SerializeToString()
            else:
                answer = b"busy" if code in (429, 503) else b"cannot use this"
            self.send_response(code)
            if code in (429, 503):
                self.send_header("Retry-After", "0")
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = Server(("127.0.0.1", port), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


@pytest.fixture
def collector() -> Iterator[tuple[Collector, int]]:
    c = Collector()
    server, port = serve(c)
    yield c, port
    server.shutdown()


def attrs(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        v = kv.value
        kind = v.WhichOneof("value")
        if kind == "array_value":
            out[kv.key] = [x.string_value for x in v.array_value.values]
        else:
            out[kv.key] = getattr(v, kind)
    return out


def counters(stderr: str) -> dict[str, int]:
    line = [x for x in stderr.splitlines() if "counters:" in x][-1]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def wait_records(c: Collector, n: int, timeout: float = 30.0) -> list[tuple[Any, Any]]:
    deadline = time.monotonic() + timeout
    while len(c.records()) < n and time.monotonic() < deadline:
        time.sleep(0.1)
    return c.records()


def test_otlp_every_message_once_through_429_and_503(
    listen: Any, collector: tuple[Collector, int]
) -> None:
    c, port = collector
    c.script = [503, 503, 503, 429, 429]  # overloaded for a while, then accepting
    lst = listen("--json", "--timeout", "0.3", "--workers", "1",
                 "--forward", f"otlp+http://127.0.0.1:{port}/v1/logs")
    s = Sender(lst.port)
    n = 2000
    s.send(b"6.12.0,3,1,1000000,-;disk failed\n DEVICE=b8:0\n hostname=web-7\n")
    for start in range(2, n, 200):
        s.send(*(b"%d,%d,%d,-;message %d\n hostname=web-7\n" % (q % 8, q, q * 1000, q)
                 for q in range(start, min(start + 200, n))))
        time.sleep(0.02)
    s.send(b"[ 5.0] a basic message\n")
    got = wait_records(c, n)
    assert lst.stop() == 0
    assert len(got) == n, (len(got), c.answers)
    assert c.answers[:5] == [503, 503, 503, 429, 429]
    assert c.content_types == {"application/x-protobuf"}
    assert len(c.requests) > 5 + 3  # batched: several requests, not one per message
    # every message once, in order
    bodies = [r.body.string_value for _, r in got]
    assert bodies[0] == "disk failed"
    assert bodies[1:-1] == [f"message {q}" for q in range(2, n)]
    assert bodies[-1] == "[ 5.0] a basic message"
    ids = [attrs(r.attributes)["log.record.uid"] for _, r in got]
    assert len(set(ids)) == n
    # the first record in full
    res, rec = got[0]
    assert attrs(res.attributes) == {
        "host.name": "web-7", "host.ip": ["127.0.0.1"], "service.name": "netconsole"
    }
    a = attrs(rec.attributes)
    assert a["netconsole.seq"] == 1 and a["netconsole.ts_usec"] == 1_000_000
    assert a["netconsole.facility"] == 0 and a["netconsole.release"] == "6.12.0"
    assert a["netconsole.field.DEVICE"] == "b8:0" and a["netconsole.field.hostname"] == "web-7"
    assert a["netconsole.port"] == s.source_port and a["netconsole.cont"] is False
    assert a["log.record.uid"].endswith("-1")
    assert (rec.severity_number, rec.severity_text) == (17, "err")
    assert abs(rec.observed_time_unix_nano / 1e9 - time.time()) < 120
    assert rec.time_unix_nano == 0  # ts_usec counts from boot, not from the epoch
    # the kernel levels map onto OpenTelemetry severities
    sev = {attrs(r.attributes)["netconsole.seq"] % 8: (r.severity_number, r.severity_text)
           for _, r in got[1:-1]}
    assert sev == {0: (21, "emerg"), 1: (19, "alert"), 2: (18, "crit"), 3: (17, "err"),
                   4: (13, "warning"), 5: (10, "notice"), 6: (9, "info"), 7: (5, "debug")}
    basic_res, basic = got[-1]
    assert attrs(basic_res.attributes)["host.name"] == "127.0.0.1"  # no hostname userdata
    assert "netconsole.seq" not in attrs(basic.attributes)
    assert basic.severity_number == 9
    # the outage was visible while running, in --json and on stderr
    states = [e["state"] for e in lst.json() if e["type"] == "forward"]
    assert states[0] == "down" and "up" in states
    assert "the collector answered 503" in lst.stderr()
    cn = counters(lst.stderr())
    assert cn["forward_rejected"] == 0 and cn["spool_dropped"] == 0
    assert cn["forward_errors"] >= 5


def test_otlp_other_4xx_is_counted_and_not_retried(
    listen: Any, collector: tuple[Collector, int]
) -> None:
    c, port = collector
    c.script = [400]
    lst = listen("--quiet", "--workers", "1", "--forward", f"otlp+http://127.0.0.1:{port}")
    s = Sender(lst.port)
    s.send(b"6,1,1,-;refused\n")
    deadline = time.monotonic() + 10
    while not c.answers and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    s.send(b"6,2,2,-;accepted\n")
    got = wait_records(c, 1)
    assert lst.stop() == 0
    assert [r.body.string_value for _, r in got] == ["accepted"]
    assert c.answers == [400, 200]
    assert "the collector answered 400" in lst.stderr() and "1 records dropped" in lst.stderr()
    assert counters(lst.stderr())["forward_rejected"] == 1


def test_otlp_bad_url_is_one_line(listen: Any) -> None:
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "netconsolectl", "listen", "--port", "0",
         "--forward", "otlp+http:///v1/logs"],
        capture_output=True, text=True, timeout=30,
    )
    assert r.returncode == 2
    assert r.stderr.strip() == (
        "netconsolectl: error: --forward otlp+http:///v1/logs: no host "
        "(hint: e.g. otlp+http://127.0.0.1:4318/v1/logs)"
    )


OPENSSL = shutil.which("openssl")


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed (Debian package openssl)")
def test_otlp_https_with_a_self_signed_certificate(listen: Any, tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    assert OPENSSL is not None
    subprocess.run(
        [OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    c = Collector()
    server, port = serve(c, tls)
    try:
        # Not trusted: refused, reported, nothing delivered.
        lst = listen("--json", "--workers", "1",
                     "--forward", f"otlp+https://127.0.0.1:{port}/v1/logs")
        Sender(lst.port).send(b"6,1,1,-;over tls\n")
        lst.wait_for(lambda out: '"state":"down"' in out)
        assert lst.stop() == 0
        assert "certificate verify failed" in lst.stderr() or "TLS" in lst.stderr()
        assert c.records() == []
        # Trusted through SSL_CERT_FILE: delivered.
        lst = listen("--quiet", "--workers", "1",
                     "--forward", f"otlp+https://127.0.0.1:{port}/v1/logs",
                     env={"SSL_CERT_FILE": str(cert)})
        Sender(lst.port).send(b"6,1,1,-;over tls\n")
        got = wait_records(c, 1)
        assert lst.stop() == 0
        assert [r.body.string_value for _, r in got] == ["over tls"]
    finally:
        server.shutdown()


def test_otlp_collector_down_then_up_with_spool(listen: Any, tmp_path: Path) -> None:
    """The collector is not there at first: messages wait in the spool, then arrive once."""
    port = free_port(socket.SOCK_STREAM)
    lst = listen("--quiet", "--workers", "1", "--spool-dir", str(tmp_path / "spool"),
                 "--forward", f"otlp+http://127.0.0.1:{port}/v1/logs")
    s = Sender(lst.port)
    s.send(*(b"6,%d,%d,-;m%d\n" % (q, q, q) for q in range(1, 101)))
    time.sleep(1.0)
    c = Collector()
    server, _ = serve(c, port=port)  # the collector comes up on the port being retried
    try:
        got = wait_records(c, 100)
        assert lst.stop() == 0
    finally:
        server.shutdown()
    assert [r.body.string_value for _, r in got] == [f"m{q}" for q in range(1, 101)]
    assert "cannot connect" in lst.stderr() and "connected again" in lst.stderr()


def test_severity_numbers_are_the_data_model_mapping_of_syslog_levels() -> None:
    """OpenTelemetry's log data model, appendix "Syslog": emerg FATAL ... debug DEBUG, by the
    protocol's own enum."""
    from opentelemetry.proto.logs.v1 import logs_pb2

    from netconsolectl.receiver.sinks.otlp import SEVERITY

    names = ["FATAL", "ERROR3", "ERROR2", "ERROR", "WARN", "INFO2", "INFO", "DEBUG"]
    assert {lvl: n for lvl, (n, _) in SEVERITY.items()} == {
        lvl: logs_pb2.SeverityNumber.Value(f"SEVERITY_NUMBER_{name}")
        for lvl, name in enumerate(names)
    }
    assert [n for n, _ in SEVERITY.values()] == [21, 19, 18, 17, 13, 10, 9, 5]


def uids(requests: list[Any]) -> list[str]:
    return [attrs(r.attributes).get("log.record.uid", "")
            for req in requests for rl in req.resource_logs for sl in rl.scope_logs
            for r in sl.log_records]


def test_a_resend_carries_the_same_uid(listen: Any, collector: tuple[Collector, int]) -> None:
    """The collector took a batch but its answer was lost: the batch is sent again, and every
    record of it, events included, has the log.record.uid of the first copy, so the pipeline
    can drop the duplicates."""
    c, port = collector
    c.script = [0]
    lst = listen("--quiet", "--workers", "1", "--timeout", "0.3",
                 "--forward", f"otlp+http://127.0.0.1:{port}/v1/logs")
    s = Sender(lst.port)
    s.send(*(b"6,%d,%d,-;m%d\n" % (q, q, q) for q in (1, 2, 3, 7)))
    deadline = time.monotonic() + 30
    while len(c.records()) < 6 and time.monotonic() < deadline:  # 4 messages, 1 lost event
        time.sleep(0.1)
    assert lst.stop() == 0
    first, *again = c.requests
    assert c.answers[0] == 0 and again
    sent_twice = uids([first])
    assert all(sent_twice) and len(set(sent_twice)) == len(sent_twice)
    delivered = uids(again)
    assert set(sent_twice) <= set(delivered)
    ids = [u for u in delivered if not u.startswith("ev-")]
    assert len(ids) == 4 and len(delivered) == 5 and all(delivered)
    assert [u.rsplit("-", 1)[1] for u in ids] == ["1", "2", "3", "7"]
    assert len({u.rsplit("-", 1)[0] for u in ids}) == 1  # one sender, one boot


def test_the_uid_survives_a_restart_through_the_spool(listen: Any, tmp_path: Path) -> None:
    """Received while the collector was down, delivered by the next run from the spool: the
    uid is the id the first run gave the message (sender, boot, sequence)."""
    port = free_port(socket.SOCK_STREAM)
    spool = str(tmp_path / "spool")
    lst = listen("--json", "--workers", "1", "--spool-dir", spool,
                 "--forward", f"otlp+http://127.0.0.1:{port}/v1/logs")
    Sender(lst.port).send(*(b"6,%d,%d,-;m%d\n" % (q, q * 1000, q) for q in range(1, 6)))
    lst.wait_for(lambda out: out.count('"type":"message"') == 5)
    assert lst.stop() == 0
    ids = [o["id"] for o in lst.json() if o["type"] == "message"]
    c = Collector()
    server, _ = serve(c, port=port)
    try:
        lst = listen("--quiet", "--workers", "1", "--spool-dir", spool,
                     "--forward", f"otlp+http://127.0.0.1:{port}/v1/logs")
        got = wait_records(c, 5)
        assert lst.stop() == 0
    finally:
        server.shutdown()
    assert [attrs(r.attributes)["log.record.uid"] for _, r in got] == ids


def test_sequence_numbers_past_int64_do_not_stop_delivery(
    listen: Any, collector: tuple[Collector, int]
) -> None:
    """The kernel's seq and ts_usec are u64, OTLP's int_value is int64: one datagram with a
    sequence number of 2^64-1 (any host on the network can send it) must not make every later
    request fail. Such numbers go as decimal strings; the lost event between the two messages
    carries them too."""
    c, port = collector
    lst = listen("--quiet", "--workers", "1",
                 "--forward", f"otlp+http://127.0.0.1:{port}/v1/logs")
    s = Sender(lst.port)
    top = 2**64 - 1
    s.send(b"6,%d,%d,-;huge\n" % (top - 5, top))
    s.send(b"6,%d,%d,-;after\n" % (top, top))
    got = wait_records(c, 3, timeout=15)
    assert lst.stop() == 0
    assert [r.body.string_value for _, r in got if not r.event_name] == ["huge", "after"]
    messages = [attrs(r.attributes) for _, r in got if not r.event_name]
    assert [m["netconsole.seq"] for m in messages] == [str(top - 5), str(top)]
    assert [m["netconsole.ts_usec"] for m in messages] == [str(top), str(top)]
    (lost,) = [attrs(r.attributes) for _, r in got if r.event_name == "netconsole.lost"]
    assert (lost["netconsole.first_seq"], lost["netconsole.last_seq"]) == (str(top - 4),
                                                                         str(top - 1))
    assert lost["netconsole.count"] == 4


def test_requests_stay_small_when_messages_are_large(listen: Any) -> None:
    """Reassembled messages may be up to 1 MiB (anyone may send ncfrag pieces): a batch of 512
    such records would be a request of hundreds of MiB, which a collector refuses whole (413)
    with every ordinary record in it. Requests are cut at MAX_REQUEST_BYTES instead; here the
    records wait in the spool while the collector is down, so a whole batch is there at once."""
    from netconsolectl.receiver.sinks.otlp import MAX_REQUEST_BYTES

    port = free_port(socket.SOCK_STREAM)
    lst = listen("--json", "--workers", "1", "--timeout", "5",
                 "--forward", f"otlp+http://127.0.0.1:{port}/v1/logs")
    s = Sender(lst.port)
    body = b"B" * (1 << 19) + b"\n"  # 512 KiB, in pieces of 1,000 bytes
    for seq in range(1, 25):
        s.send(*(b"6,%d,%d,-,ncfrag=%d/%d;" % (seq, seq, off, len(body)) + body[off:off + 1000]
                 for off in range(0, len(body), 1000)), pause=0.0001)
    s.send(b"6,25,25,-;small\n")
    lst.wait_for(lambda out: out.count('"type":"message"') == 25, timeout=60)
    c = Collector()
    server, _ = serve(c, port=port)
    try:
        got = wait_records(c, 25, timeout=60)
        assert lst.stop() == 0
    finally:
        server.shutdown()
    assert [len(r.body.string_value) for _, r in got] == [len(body) - 1] * 24 + [5]
    sizes = [req.ByteSize() for req in c.requests]
    assert len(sizes) > 1 and max(sizes) <= MAX_REQUEST_BYTES + 4096, sizes

"""``--metrics [ADDR:]PORT``: the receiver's HTTP server, read only.

* ``/metrics``: Prometheus text format (prometheus_client; OpenMetrics when asked for);
* ``/delivery?token=T[&sender=ADDR]``: was the ``netconsolectl test`` token T seen (from the
  sender ADDR)? 200 with where and when and the stream's figures, 404 when not (yet), 400 for a
  malformed request; never any message text (see receiver/delivery.py);
* ``/healthz``: 200 when every receiving process reports and the pipeline keeps up, else 503,
  with a small JSON body saying which.

The server binds only where ``--metrics`` says and answers GET and HEAD.

Nothing is counted here: a collector renders :class:`~netconsolectl.receiver.fleet.FleetStats`
at scrape time, so receiving pays nothing per scrape and the figures are the same with one
process or several workers (the parent holds the merged figures; see receiver/run.py).
prometheus_client is imported only when ``--metrics`` is given.

Metrics:

* ``netconsole_receiver_<counter>_total``: the receiver's counters (datagrams, messages,
  fragments, reassembled, incomplete, malformed, dropped, lost, reordered, duplicates, resets,
  shared sources, fragment errors, overruns and limited sets, ignored, crashes, forward errors,
  forwarder resends and rejections, spool drops, output drops, on-crash errors) and
  ``netconsole_receiver_evictions_total{what="sources"|"fragments"}``;
* per host (``host`` = source address, ``other`` for hosts beyond the limit):
  ``netconsole_messages_total``, ``netconsole_lost_messages_total``,
  ``netconsole_crashes_total{kind}``, ``netconsole_last_message_timestamp_seconds``;
* ``netconsole_host_info{host, name}`` = 1 for each host that names itself (``hostname``
  userdata), to join on ``host``: ``netconsole_messages_total * on(host) group_left(name)
  netconsole_host_info``;
* ``netconsole_hosts`` (hosts with their own series) and ``netconsole_silent_hosts``.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from netconsolectl.errors import InvalidInput, KernelRefused
from netconsolectl.receiver.fleet import FleetStats

#: counter name -> (metric name without prefix and suffix, help)
TOTALS = {
    "received": ("datagrams", "UDP datagrams received"),
    "messages": ("messages", "Messages (printk records) received"),
    "fragments": ("fragments", "ncfrag fragment datagrams"),
    "reassembled": ("reassembled", "Messages reassembled from fragments"),
    "incomplete": ("incomplete", "Messages given up with fragments missing"),
    "malformed": ("malformed", "Datagrams that could not be parsed"),
    "dropped": ("dropped", "Datagrams dropped by --allow"),
    "lost": ("lost", "Messages lost (gaps in sequence numbers)"),
    "reordered": ("reordered", "Messages that arrived out of order"),
    "duplicates": ("duplicates", "Messages or fragments received twice"),
    "resets": ("resets", "Sequence resets (sender restarted)"),
    "shared_sources": ("shared_sources", "Streams where two senders share one source address "
                       "and port (two targets of one host to this receiver)"),
    "fragment_errors": ("fragment_errors", "Fragments with a malformed ncfrag header"),
    "fragment_overruns": ("fragment_overruns", "Fragments whose offset and length run past "
                          "the message"),
    "fragment_sets_limited": ("fragment_sets_limited", "Fragment sets given up at a limit: "
                              "open sets per source, pieces per set"),
    "ignored": ("ignored", "Messages dropped by --ignore"),
    "crashes": ("crashes", "Kernel crash reports"),
    "forward_errors": ("forward_errors", "Messages a --forward output could not take"),
    "forward_resent": ("forward_resent", "Messages a reliable forwarder sent again after a "
                       "reconnect (at least once: the pipeline may see them twice)"),
    "forward_rejected": ("forward_rejected", "Messages the pipeline refused for good "
                         "(OTLP 4xx other than 429, partial success)"),
    "spool_dropped": ("spool_dropped", "Messages dropped undelivered from a full spool "
                      "(the oldest go first)"),
    "output_dropped": ("output_dropped", "Lines standard output or --output-dir could not "
                       "write (disk full, I/O error); writing resumes when it can"),
    "on_crash_errors": ("on_crash_errors", "--on-crash commands that failed or were skipped"),
}


def parse_address(value: str) -> tuple[str, int]:
    """``PORT``, ``ADDR:PORT`` or ``[ADDR6]:PORT`` to (address, port). Raises InvalidInput."""
    host, sep, port_s = value.rpartition(":")
    if not sep:
        host, port_s = "", value
    host = host.strip("[]")
    try:
        port = int(port_s)
        if not 0 <= port <= 65535:
            raise ValueError
        if host:
            ipaddress.ip_address(host)
    except ValueError:
        raise InvalidInput(
            f"--metrics {value!r}: expected PORT or ADDR:PORT", hint="e.g. --metrics 9469"
        ) from None
    return host or "0.0.0.0", port


class FleetCollector:
    """A prometheus_client collector reading a :class:`FleetStats` at scrape time."""

    def __init__(self, stats: FleetStats) -> None:
        self.stats = stats

    def describe(self) -> list[Any]:
        return []  # no check at registration: everything is rendered at scrape time

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        counters, rows = self.stats.snapshot()
        for key, (name, doc) in TOTALS.items():
            yield CounterMetricFamily(
                f"netconsole_receiver_{name}", doc, value=counters.get(key, 0)
            )
        ev = CounterMetricFamily(
            "netconsole_receiver_evictions", "Sources or pending messages evicted by the limits",
            labels=["what"],
        )  # fmt: skip
        ev.add_metric(["sources"], counters.get("evicted_sources", 0))
        ev.add_metric(["fragments"], counters.get("evicted_fragments", 0))
        yield ev
        msgs = CounterMetricFamily(
            "netconsole_messages", "Messages received from this host", labels=["host"]
        )
        lost = CounterMetricFamily(
            "netconsole_lost_messages", "Messages of this host lost in transit", labels=["host"]
        )
        crashes = CounterMetricFamily(
            "netconsole_crashes", "Kernel crash reports from this host", labels=["host", "kind"]
        )
        last = GaugeMetricFamily(
            "netconsole_last_message_timestamp_seconds",
            "When the last message of this host arrived (Unix time)",
            labels=["host"],
        )
        info = GaugeMetricFamily(
            "netconsole_host_info", "The name a host gives itself (hostname userdata)",
            labels=["host", "name"],
        )
        silent = 0
        for host, f in rows:
            if f.name:
                info.add_metric([host, f.name], 1)
            msgs.add_metric([host], f.messages)
            lost.add_metric([host], f.lost)
            for kind, n in sorted(f.crashes.items()):
                crashes.add_metric([host, kind], n)
            last.add_metric([host], f.last)
        with self.stats.lock:
            silent = sum(1 for f in self.stats.hosts.values() if f.silent)
            tracked = len(self.stats.hosts)
        yield msgs
        yield lost
        yield crashes
        yield last
        yield info
        yield GaugeMetricFamily("netconsole_hosts", "Hosts with series of their own", tracked)
        yield GaugeMetricFamily(
            "netconsole_silent_hosts", "Hosts silent for longer than --silence", silent
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


def _handler(stats: FleetStats, registry: Any) -> type[BaseHTTPRequestHandler]:
    class MetricsHandler(BaseHTTPRequestHandler):
        server_version = "netconsolectl"

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/metrics":
                from prometheus_client.exposition import choose_encoder

                encode, ctype = choose_encoder(self.headers.get("Accept", ""))
                self._send(200, encode(registry), ctype)
            elif url.path == "/delivery":
                code, body = delivery_answer(stats, parse_qs(url.query))
                self._json(code, body)
            elif url.path == "/healthz":
                ok, body = stats.health.report()
                self._json(200 if ok else 503, body)
            else:
                self._json(404, {"error": "not found: try /metrics, /delivery or /healthz"})

        def do_HEAD(self) -> None:
            self.do_GET()

        def _json(self, code: int, body: dict[str, Any]) -> None:
            self._send(code, (json.dumps(body) + "\n").encode(), "application/json")

        def _send(self, code: int, data: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a scrape every few seconds is not news

    return MetricsHandler


def delivery_answer(stats: FleetStats, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
    """``/delivery``: (HTTP status, JSON body) for ``token=T`` and an optional ``sender=ADDR``."""
    from netconsolectl.receiver.delivery import TOKEN

    token = (query.get("token") or [""])[0]
    if not TOKEN.fullmatch(token):
        return 400, {"error": "token=netconsolectl-test-<16 hex digits> is required"}
    senders = query.get("sender")
    sender = None
    if senders:
        try:
            ip = ipaddress.ip_address(senders[0])
        except ValueError:
            return 400, {"error": f"sender={senders[0]!r} is not an IP address"}
        sender = str(getattr(ip, "ipv4_mapped", None) or ip)
    seen = stats.delivery(token, sender)
    body = {"token": token, "sender": sender, "seen": bool(seen), "from": seen}
    return (200 if seen else 404), body


def serve(stats: FleetStats, address: str) -> tuple[str, int, int]:
    """Start the HTTP server (a daemon thread); returns the bound (address, port) and its
    socket's descriptor."""
    try:
        from prometheus_client import CollectorRegistry
    except ImportError:
        from netconsolectl.errors import Unavailable

        raise Unavailable(
            "--metrics needs the prometheus_client package", hint="pip install prometheus_client"
        ) from None
    addr, port = parse_address(address)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(stats))
    try:
        server = (_Server6 if ":" in addr else _Server)((addr, port), _handler(stats, registry))
    except OSError as e:
        raise KernelRefused(
            f"--metrics: cannot listen on {addr} port {port}: {e.strerror}", errno=e.errno
        ) from None
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    host, bound = server.server_address[:2]
    return str(host), int(bound), server.fileno()

"""``--metrics [ADDR:]PORT``: Prometheus text format on ``/metrics`` (prometheus_client).

Nothing is counted here: a collector renders :class:`~netconsolectl.receiver.fleet.FleetStats`
at scrape time, so receiving pays nothing per scrape and the figures are the same with one
process or several workers (the parent holds the merged figures; see receiver/run.py).
prometheus_client is imported only when ``--metrics`` is given.

Metrics:

* ``netconsole_receiver_<counter>_total``: the receiver's counters (datagrams, messages,
  fragments, reassembled, incomplete, malformed, dropped, lost, reordered, duplicates, resets,
  ignored, crashes, forward errors, forwarder resends and rejections, spool drops, on-crash
  errors) and
  ``netconsole_receiver_evictions_total{what="sources"|"fragments"}``;
* per host (``host`` = source address, ``other`` for hosts beyond the limit):
  ``netconsole_messages_total``, ``netconsole_lost_messages_total``,
  ``netconsole_crashes_total{kind}``, ``netconsole_last_message_timestamp_seconds``;
* ``netconsole_hosts`` (hosts with their own series) and ``netconsole_silent_hosts``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

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
    "ignored": ("ignored", "Messages dropped by --ignore"),
    "crashes": ("crashes", "Kernel crash reports"),
    "forward_errors": ("forward_errors", "Messages a --forward output could not take"),
    "forward_resent": ("forward_resent", "Messages a reliable forwarder sent again after a "
                       "reconnect (at least once: the pipeline may see them twice)"),
    "forward_rejected": ("forward_rejected", "Messages the pipeline refused for good "
                         "(OTLP 4xx other than 429, partial success)"),
    "spool_dropped": ("spool_dropped", "Messages dropped undelivered from a full spool "
                      "(the oldest go first)"),
    "output_dropped": ("output_dropped", "Lines --output-dir could not write (disk full, I/O "
                       "error); writing resumes when it can"),
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
        silent = 0
        for host, f in rows:
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
        yield GaugeMetricFamily("netconsole_hosts", "Hosts with series of their own", tracked)
        yield GaugeMetricFamily(
            "netconsole_silent_hosts", "Hosts silent for longer than --silence", silent
        )


def serve(stats: FleetStats, address: str) -> tuple[str, int, int]:
    """Start the HTTP server (a daemon thread); returns the bound (address, port) and its
    socket's descriptor."""
    try:
        from prometheus_client import CollectorRegistry, start_http_server
    except ImportError:
        from netconsolectl.errors import Unavailable

        raise Unavailable(
            "--metrics needs the prometheus_client package", hint="pip install prometheus_client"
        ) from None
    addr, port = parse_address(address)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(stats))
    try:
        server, _thread = start_http_server(port, addr=addr, registry=registry)
    except OSError as e:
        raise KernelRefused(
            f"--metrics: cannot listen on {addr} port {port}: {e.strerror}", errno=e.errno
        ) from None
    host, bound = server.server_address[:2]
    return str(host), int(bound), server.fileno()

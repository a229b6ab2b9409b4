"""examples/grafana-netconsole.json: every metric its queries name is one ``listen --metrics``
really exports (read from a live /metrics), and every query, run by a real Prometheus that
scrapes that receiver, is valid PromQL that finds data."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.listen.conftest import Sender
from tests.listen.test_fleet import ext, metrics_port, report, scrape
from tests.listen.test_prometheus import PROMETHEUS, prometheus  # noqa: F401 (fixture)
from tests.unit.test_receiver_crash import WARNING

DASHBOARD = Path(__file__).resolve().parents[2] / "examples" / "grafana-netconsole.json"
#: Grafana's variables, as a query run outside Grafana needs them.
VARIABLES = {"$__rate_interval": "1m", "$host": ".*"}


def queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every panel target."""
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            out.append((p["title"], t["expr"]))
    return out


def exported(text: str) -> set[str]:
    """Sample names of a Prometheus text exposition."""
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines()
            if line and not line.startswith("#")}


def feed(lst: Any) -> None:
    """Traffic that gives every series a value: two hosts, a name, a gap, a crash report."""
    a = Sender(lst.port, source="127.0.0.1")
    b = Sender(lst.port, source="127.0.0.2")
    a.send(*[ext(i, b"hello %d" % i, extra=b" hostname=web1\n") for i in range(1, 11)],
           ext(15, b"after a gap", extra=b" hostname=web1\n"))
    b.send(*report(1, WARNING), pause=0.001)


def test_dashboard_queries_name_only_exported_metrics(listen: Any) -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["schemaVersion"] >= 36 and dash["panels"]
    lst = listen("--quiet", "--metrics", "127.0.0.1:0", "--workers", "1", "--timeout", "0.5")
    port = metrics_port(lst)
    feed(lst)
    deadline = time.monotonic() + 30
    while "netconsole_host_info{" not in (text := scrape(port)) or (
            'netconsole_crashes_total{host="127.0.0.2"' not in text):
        assert time.monotonic() < deadline, text
        time.sleep(0.2)
    names = exported(text)
    used = set()
    for title, expr in queries():
        found = set(re.findall(r"\bnetconsole_[a-z_]+", expr))
        assert found, f"{title}: {expr} names no netconsole metric"
        used |= found
    variable = dash["templating"]["list"][1]["definition"]
    used |= set(re.findall(r"\bnetconsole_[a-z_]+", variable))
    assert used - names == set(), f"not exported by listen: {sorted(used - names)}"
    # and the dashboard shows every family the receiver exports
    families = {re.sub(r"_total$", "", n) for n in names}
    assert families - {re.sub(r"_total$", "", n) for n in used} == set()
    assert lst.stop() == 0


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed (Debian package "
                    "prometheus; scripts/test installs it)")
def test_dashboard_queries_run_in_prometheus(listen: Any, prometheus: Any  # noqa: F811
                                             ) -> None:
    lst = listen("--quiet", "--metrics", "127.0.0.1:0", "--workers", "2", "--timeout", "0.5")
    prom = prometheus(metrics_port(lst))
    feed(lst)
    pending = dict.fromkeys(expr for _, expr in queries())
    deadline = time.monotonic() + 90
    while pending:
        for expr in list(pending):
            q = expr
            for var, value in VARIABLES.items():
                q = q.replace(var, value)
            if prom.query(q):  # a syntax error fails inside query(); an empty answer waits
                del pending[expr]
        assert time.monotonic() < deadline, f"no data for: {sorted(pending)}"
        time.sleep(1.0)
    assert lst.stop() == 0

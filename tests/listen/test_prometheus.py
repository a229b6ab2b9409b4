"""A real Prometheus server (Debian's ``prometheus``) scrapes ``listen --metrics``; its HTTP
API is queried for what it stored. Everything stays on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.listen.conftest import Sender, free_port, terminate
from tests.listen.test_fleet import ext, metrics_port, report
from tests.unit.test_receiver_crash import WARNING

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed "
                                "(Debian package prometheus; scripts/test installs it)")


class Prometheus:
    def __init__(self, tmp: Path, target_port: int) -> None:
        self.port = free_port(kind=1)  # SOCK_STREAM
        conf = tmp / "prometheus.yml"
        conf.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: netconsole\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{target_port}']\n"
        )
        self.log = (tmp / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS or "prometheus", f"--config.file={conf}",
             f"--storage.tsdb.path={tmp / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert self.proc.poll() is None, (tmp / "prometheus.log").read_text()
            assert time.monotonic() < deadline, "prometheus did not become ready"
            time.sleep(0.2)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def query(self, expr: str) -> list[dict[str, Any]]:
        q = urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{q}", timeout=5) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def stop(self) -> None:
        terminate(self.proc, 20)
        self.log.close()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Any]:
    started: list[Prometheus] = []

    def start(target_port: int) -> Prometheus:
        p = Prometheus(tmp_path, target_port)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


def test_prometheus_scrapes_listen(listen: Any, prometheus: Any) -> None:
    lst = listen("--quiet", "--metrics", "127.0.0.1:0", "--workers", "2", "--timeout", "0.5")
    prom = prometheus(metrics_port(lst))
    a = Sender(lst.port, source="127.0.0.1")
    b = Sender(lst.port, source="127.0.0.2")
    a.send(*[ext(i, b"hello %d" % i) for i in range(1, 21)], ext(25, b"after a gap"))
    b.send(*report(1, WARNING), pause=0.001)
    want = {
        'netconsole_messages_total{host="127.0.0.1"}': 21.0,
        'netconsole_lost_messages_total{host="127.0.0.1"}': 4.0,  # 21..24
        'netconsole_crashes_total{host="127.0.0.2",kind="warning"}': 1.0,
        "netconsole_receiver_datagrams_total": 21.0 + len(WARNING.splitlines()),
        'up{job="netconsole"}': 1.0,
    }
    deadline = time.monotonic() + 60
    while True:
        got = {}
        for expr in want:
            result = prom.query(expr)
            got[expr] = float(result[0]["value"][1]) if result else None
        if got == want:
            break
        assert time.monotonic() < deadline, f"{got} != {want}"
        time.sleep(0.5)
    last = prom.query('netconsole_last_message_timestamp_seconds{host="127.0.0.2"}')
    assert abs(float(last[0]["value"][1]) - time.time()) < 60
    assert lst.stop() == 0

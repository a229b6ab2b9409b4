"""Proof of delivery and health on the receiver's HTTP server (``listen --metrics``), on
loopback: ``/delivery`` for a ``netconsolectl test`` token, ``/healthz``, the sender's name in
``netconsole_host_info``, and ``netconsolectl test --expect-listen http://``.

The sending kernel is stood in for by the unit tier's collector fixture (each line written to
the fake /dev/kmsg is sent as the datagram an extended target would send); the real kernel
sending to a receiver on the host is tests/kernel/guest/test_85_delivery.py."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from netconsolectl.host.system import System
from tests.conftest import Cli
from tests.listen.conftest import Sender, free_port
from tests.listen.test_fleet import metrics_port, sample, scrape
from tests.unit.test_runbook_kmsg import add, collector, dev_kmsg  # noqa: F401 (fixtures)

TOKEN = "netconsolectl-test-0123456789abcdef"
OTHER = "netconsolectl-test-fedcba9876543210"


def get(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def until(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.1)


def marker_line(token: str, prio: int = 12, seq: int = 5) -> bytes:
    return (b"%d,%d,5000000,-;netconsolectl test %s from web1 to collector\n hostname=web1\n"
            % (prio, seq, token.encode()))


@pytest.mark.parametrize("mode", [("--json", "--workers", "1"), ("--quiet", "--workers", "2")])
def test_delivery_says_seen_from_where_and_never_the_text(listen: Any, mode: tuple[str, ...]
                                                          ) -> None:
    lst = listen(*mode, "--metrics", "127.0.0.1:0")
    port = metrics_port(lst)
    s = Sender(lst.port)
    s.send(b"6,1,1000000,-;booted\n hostname=web1\n", marker_line(TOKEN, seq=2))
    # the basic format: the printk timestamp comes first
    b = Sender(lst.port, "127.0.0.2")
    b.send(b"[  12.345678] netconsolectl test " + OTHER.encode() + b" from db to collector")
    code, body = until(lambda: (r := get(port, f"/delivery?token={TOKEN}"))[0] == 200 and r)
    assert body["seen"] is True and body["token"] == TOKEN
    (seen,) = body["from"]
    assert (seen["host"], seen["port"], seen["name"], seen["seq"]) == (
        "127.0.0.1", s.source_port, "web1", 2)
    assert seen["stream"]["messages"] == 2 and seen["stream"]["lost"] == 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", seen["received"])
    assert "from web1 to collector" not in json.dumps(body)  # no message text, ever
    code, body = until(lambda: (r := get(port, f"/delivery?token={OTHER}"))[0] == 200 and r)
    assert body["from"][0]["host"] == "127.0.0.2" and body["from"][0]["seq"] is None
    # from a given sender only
    assert get(port, f"/delivery?token={TOKEN}&sender=127.0.0.1")[0] == 200
    code, body = get(port, f"/delivery?token={TOKEN}&sender=127.0.0.2")
    assert (code, body["seen"], body["from"]) == (404, False, [])
    # not seen, malformed
    assert get(port, "/delivery?token=netconsolectl-test-" + "0" * 16)[0] == 404
    for bad in ("", "?token=x", f"?token={TOKEN}&sender=web1"):
        code, body = get(port, "/delivery" + bad)
        assert code == 400 and "error" in body
    assert get(port, "/nothing")[0] == 404
    # the sender's name as a label to join on
    text = scrape(port)
    assert 'netconsole_host_info{host="127.0.0.1",name="web1"} 1.0' in text.splitlines()
    assert sample(text, "netconsole_messages_total", host="127.0.0.1") == 2
    assert lst.stop() == 0


def test_only_the_marker_at_the_start_counts(listen: Any) -> None:
    """A token quoted inside another line (a log of the test, a chat message) is not a
    delivery of the test line."""
    lst = listen("--quiet", "--workers", "1", "--metrics", "127.0.0.1:0")
    port = metrics_port(lst)
    s = Sender(lst.port)
    s.send(b"4,1,1,-;sshd: user ran netconsolectl test " + TOKEN.encode() + b" by hand\n",
           marker_line(OTHER, seq=2))
    until(lambda: get(port, f"/delivery?token={OTHER}")[0] == 200)
    assert get(port, f"/delivery?token={TOKEN}")[0] == 404
    assert lst.stop() == 0


def test_metrics_server_binds_only_where_told(listen: Any) -> None:
    lst = listen("--quiet", "--workers", "1", "--metrics", "127.0.0.1:0")
    port = metrics_port(lst)
    assert get(port, "/healthz")[0] in (200, 503)
    with socket.socket() as c:  # 127.0.0.2 is loopback too, but not the address given
        assert c.connect_ex(("127.0.0.2", port)) != 0
    assert lst.stop() == 0


def test_healthz_ok_then_failing_while_a_forwarder_fails(listen: Any) -> None:
    lst = listen("--quiet", "--workers", "1", "--metrics", "127.0.0.1:0")
    port = metrics_port(lst)
    code, body = until(lambda: (r := get(port, "/healthz"))[0] == 200 and r)
    assert body["status"] == "ok" and body["workers"]["alive"] is True
    assert body["pipeline"] == {"keeps_up": True, "growing": [], "window_seconds": 30.0}
    assert lst.stop() == 0
    dead = free_port(socket.SOCK_STREAM)  # nothing listens there
    lst = listen("--quiet", "--workers", "1", "--metrics", "127.0.0.1:0",
                 "--forward", f"syslog+tcp://127.0.0.1:{dead}")
    port = metrics_port(lst)
    Sender(lst.port).send(b"6,1,1,-;for the pipeline\n")
    code, body = until(lambda: (r := get(port, "/healthz"))[1]["pipeline"]["growing"] and r)
    assert code == 503 and body["status"] == "failing" and body["workers"]["alive"] is True
    assert body["pipeline"]["keeps_up"] is False
    assert body["pipeline"]["growing"] == ["forward_errors"]
    assert lst.stop() == 0


def children(pid: int) -> list[int]:
    return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_healthz_notices_a_stuck_worker(listen: Any) -> None:
    lst = listen("--quiet", "--workers", "2", "--metrics", "127.0.0.1:0")
    port = metrics_port(lst)
    until(lambda: get(port, "/healthz")[1]["workers"]["reporting"] == 2)
    worker = until(lambda: children(lst.proc.pid))[0]
    os.kill(worker, signal.SIGSTOP)
    try:
        _code, body = until(lambda: (r := get(port, "/healthz"))[0] == 503 and r)
        assert body["workers"]["alive"] is False and len(body["workers"]["late"]) == 1
    finally:
        os.kill(worker, signal.SIGCONT)
    until(lambda: get(port, "/healthz")[0] == 200)
    assert lst.stop() == 0


# -- netconsolectl test --expect-listen http:// --------------------------------------------------


@pytest.mark.parametrize("mode", [("--json",), ("--quiet", "--workers", "2")])
def test_cli_confirms_arrival_through_the_receiver(
    listen: Any, cli: Cli, system: System, collector: Callable[..., None],  # noqa: F811
    mode: tuple[str, ...],
) -> None:
    """With the console loglevel at 8 the least severe level would be debug, which a receiver
    whose only output is --json copies without parsing: the test line is written at warning,
    and the receiver sees it in either mode."""
    lst = listen(*mode, "--metrics", "127.0.0.1:0")
    port = metrics_port(lst)
    add(cli, "t1")
    sender = Sender(lst.port)
    collector(lambda data: sender.send(data))
    assert cli("loglevel", "8").exit_code == 0
    r = cli("test", "--expect-listen", f"http://127.0.0.1:{port}", "--timeout", "10")
    assert r.exit_code == 0, r
    assert "at level 4 (warning)" in r.stdout
    assert re.search(rf"^arrived: http://127\.0\.0\.1:{port} from 127\.0\.0\.1:"
                     rf"{sender.source_port} after [\d.]+ s$", r.stdout, re.M), r.stdout
    assert lst.stop() == 0


def test_cli_not_arrived_unreachable_and_bad_urls(listen: Any, cli: Cli, system: System
                                                  ) -> None:
    add(cli, "t1")
    lst = listen("--quiet", "--metrics", "127.0.0.1:0")
    port = metrics_port(lst)
    r = cli("test", "--expect-listen", f"http://127.0.0.1:{port}", "--timeout", "0.5")
    assert r.exit_code == 1, r
    assert re.search(r"netconsolectl-test-[0-9a-f]{16} did not arrive at http://.* within 0.5 s",
                     r.stderr)
    assert lst.stop() == 0
    before = system.dev_kmsg.read_text()
    r = cli("test", "--expect-listen", f"http://127.0.0.1:{port}", "--timeout", "0.5")
    assert r.exit_code == 1 and "cannot reach the receiver at http://127.0.0.1" in r.stderr
    assert system.dev_kmsg.read_text() == before  # nothing written when nobody can tell
    for bad in ("ftp://127.0.0.1:1", "http://127.0.0.1:port", "http://:9469",
                "http://127.0.0.1:9469/?token=x"):
        r = cli("test", "--expect-listen", bad)
        assert r.exit_code == 2 and "expected http://HOST:PORT" in r.stderr, (bad, r)
    r = cli("test", "--expect-listen", f"http://127.0.0.1:{port}", "--level", "6")
    assert r.exit_code == 2 and "level 4 (warning) or more severe" in r.stderr
    assert system.dev_kmsg.read_text() == before

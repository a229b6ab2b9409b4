"""``--forward relp://``: end to end into a real rsyslogd with imrelp (Debian package
rsyslog-relp) on loopback, through the disk spool, across an rsyslogd kill and a listen restart."""

from __future__ import annotations

import re
import signal
import socket
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.listen.conftest import Sender, free_port
from tests.listen.test_fleet import metrics_port
from tests.listen.test_forward import RSYSLOGD, Rsyslog

IMRELP = Path("/usr/lib/x86_64-linux-gnu/rsyslog/imrelp.so")

SEQ = re.compile(r' seq="(\d+)"')
ID = re.compile(r' id="([0-9a-f]{16})-(\d+)"')
TEMPLATE = "%structured-data%|%msg%\\n"


@pytest.fixture
def relp_rsyslog(tmp_path: Path) -> Any:
    if RSYSLOGD is None:
        pytest.skip("rsyslogd is not installed (Debian package rsyslog)")
    if not any(Path(p).exists() for p in (IMRELP, "/usr/lib/rsyslog/imrelp.so")):
        pytest.skip("imrelp is not installed (Debian package rsyslog-relp)")
    r = Rsyslog(tmp_path, relp=True, template=TEMPLATE)
    yield r
    r.stop()


def counters(stderr: str) -> dict[str, int]:
    line = [x for x in stderr.splitlines() if "counters:" in x][-1]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def test_relp_small(listen: Any, relp_rsyslog: Rsyslog, tmp_path: Path) -> None:
    lst = listen("--quiet", "--timeout", "0.3", "--workers", "1",
                 "--forward", f"relp://127.0.0.1:{relp_rsyslog.relp}")
    s = Sender(lst.port)
    s.send(b"6.12.0,3,7,123,-;disk failed\n DEVICE=b8:0\n", b"12,8,124,-;from kmsg\n",
           b"[ 1.0] plain\n", pause=0.01)
    lines = relp_rsyslog.wait(3)
    assert lst.stop() == 0
    assert len(lines) == 3, lines
    sd, msg = lines[0]
    assert msg == "disk failed"
    assert 'seq="7" ts_usec="123" cont="0" release="6.12.0"' in sd
    assert ID.search(sd) and ID.search(sd).group(2) == "7"  # type: ignore[union-attr]
    assert 'DEVICE="b8:0"' in sd
    c = counters(lst.stderr())
    assert c["forward_errors"] == 0 and c["spool_dropped"] == 0


def test_relp_rsyslog_down_is_reported_while_running(listen: Any, tmp_path: Path) -> None:
    port = free_port(socket.SOCK_STREAM)
    lst = listen("--json", "--workers", "1", "--forward", f"relp://127.0.0.1:{port}")
    Sender(lst.port).send(b"6,1,1,-;still printed\n")
    lst.wait_for(lambda out: '"state":"down"' in out)
    assert "cannot connect: Connection refused" in lst.stderr()
    assert lst.stop() == 0
    event = next(e for e in lst.json() if e["type"] == "forward")
    assert event["state"] == "down" and event["url"] == f"relp://127.0.0.1:{port}"
    assert event["host"] == "127.0.0.1" and event["port"] == port
    # Without --spool-dir what could not be delivered is lost, and counted.
    assert counters(lst.stderr())["forward_errors"] >= 2


def wait_received(lst: Any, n: int, timeout: float = 60.0) -> None:
    """Until listen has taken ``n`` datagrams off its socket (SIGUSR1 prints the counters): on a
    busy machine the socket holds a backlog, and a stop drains it for one second only."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lst.send_signal(signal.SIGUSR1)
        time.sleep(0.3)
        if "counters:" in lst.stderr() and counters(lst.stderr())["received"] >= n:
            return
    raise AssertionError(f"listen received {counters(lst.stderr())['received']} of {n}")


def _send(s: Sender, first: int, last: int, rate: int = 25_000) -> None:
    """seq first..last, paced at about ``rate`` per second in bursts of 500."""
    t0 = time.monotonic()
    for start in range(first, last + 1, 500):
        s.send(*(b"6,%d,%d,-;message number %d\n" % (q, q * 10, q)
                 for q in range(start, min(start + 500, last + 1))))
        ahead = t0 + (start - first + 500) / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)


def test_relp_100k_survives_rsyslog_kill_and_listen_restart(
    listen: Any, relp_rsyslog: Rsyslog, tmp_path: Path
) -> None:
    """100,000 messages; rsyslogd is killed (SIGKILL) mid-stream and stays down for several
    seconds; listen is stopped and started again in the middle with the same spool. Every
    message must be in rsyslogd's file; duplicates (at-least-once) are allowed and counted."""
    total = 100_000
    port = free_port(socket.SOCK_DGRAM)
    spool = tmp_path / "spool"
    args = ["--quiet", "--port", str(port), "--workers", "1", "--spool-dir", str(spool),
            "--forward", f"relp://127.0.0.1:{relp_rsyslog.relp}"]
    lst = listen(*args)
    s = Sender(port)
    _send(s, 1, 40_000)
    relp_rsyslog.kill()  # while the forwarder is still delivering
    killed = time.monotonic()
    _send(s, 40_001, 60_000)
    wait_received(lst, 60_000)
    assert lst.stop(signal.SIGTERM) == 0
    first_run = lst.stderr()
    assert "connection lost" in first_run or "connection closed" in first_run, first_run
    lst2 = listen(*args)
    assert "spooled messages to deliver from the last run" in lst2.stderr()
    _send(s, 60_001, 80_000)
    wait_received(lst2, 20_000)
    time.sleep(max(0.0, 4.0 - (time.monotonic() - killed)))
    down_for = time.monotonic() - killed
    relp_rsyslog.start()
    _send(s, 80_001, total)
    wait_received(lst2, 40_000)
    deadline = time.monotonic() + 120
    seen: set[int] = set()
    while time.monotonic() < deadline:
        lines = relp_rsyslog.lines()
        seen = {int(m.group(1)) for sd, *_ in lines if (m := SEQ.search(sd))}
        if len(seen) == total:
            break
        time.sleep(0.5)
    assert lst2.stop(signal.SIGTERM) == 0
    lines = relp_rsyslog.lines()
    seqs = Counter(int(m.group(1)) for sd, *_ in lines if (m := SEQ.search(sd)))
    missing = sorted(set(range(1, total + 1)) - set(seqs))
    dups = sum(n - 1 for n in seqs.values())
    print(f"rsyslogd down {down_for:.1f} s; {len(lines)} lines, {len(seqs)} distinct, "
          f"{dups} duplicates; first run: {counters(first_run)}; "
          f"second run: {counters(lst2.stderr())}")
    assert not missing, f"{len(missing)} missing, first {missing[:10]}"
    assert down_for >= 3.0
    # The same record has the same id in both runs of listen (the boot is remembered in the
    # spool directory), so the pipeline can drop the duplicates.
    ids = {m.group(1) for sd, *_ in lines if (m := ID.search(sd))}
    assert len(ids) == 1, ids
    for sd, *_ in lines[:1000]:
        seq, idm = SEQ.search(sd), ID.search(sd)
        assert seq and idm and seq.group(1) == idm.group(2)
    c1, c2 = counters(first_run), counters(lst2.stderr())
    assert c1["lost"] == 0 and c2["lost"] == 0  # listen itself dropped no datagram
    assert c1["spool_dropped"] == 0 and c2["spool_dropped"] == 0
    assert c1["messages"] + c2["messages"] == total


def test_full_spool_drops_the_oldest_and_says_how_many(
    listen: Any, relp_rsyslog: Rsyslog, tmp_path: Path
) -> None:
    """rsyslogd is down; 1 MiB of spool cannot hold 30,000 messages: the oldest go, counted;
    once rsyslogd is back, the newest arrive, in order, and nothing else is missing."""
    relp_rsyslog.kill()
    total = 30_000
    port = free_port(socket.SOCK_DGRAM)
    spool = tmp_path / "spool"
    args = ["--quiet", "--port", str(port), "--workers", "1", "--spool-dir", str(spool),
            "--spool-max-mib", "1", "--forward", f"relp://127.0.0.1:{relp_rsyslog.relp}"]
    lst = listen(*args, "--metrics", "127.0.0.1:0")
    _send(Sender(port), 1, total)
    wait_received(lst, total)
    metrics_at = f"http://127.0.0.1:{metrics_port(lst)}/metrics"
    time.sleep(1.5)  # the metrics take the counters once a second
    with urllib.request.urlopen(metrics_at, timeout=10) as r:
        exported = r.read().decode()
    assert lst.stop() == 0
    dropped = counters(lst.stderr())["spool_dropped"]
    assert f"netconsole_receiver_spool_dropped_total {float(dropped)}" in exported
    on_disk = sum(p.stat().st_size for p in spool.rglob("*.seg"))
    assert 0 < dropped < total and on_disk <= 1 << 20
    relp_rsyslog.start()
    lst2 = listen(*args)
    assert f"{total - dropped} spooled messages to deliver" in lst2.stderr()
    relp_rsyslog.wait(total - dropped, timeout=60)
    assert lst2.stop() == 0
    seqs = [int(m.group(1)) for sd, *_ in relp_rsyslog.lines() if (m := SEQ.search(sd))]
    assert seqs == list(range(dropped + 1, total + 1))


def test_a_spooled_record_this_version_cannot_read_does_not_stop_delivery(
    listen: Any, relp_rsyslog: Rsyslog, tmp_path: Path
) -> None:
    """A spool left by a version that kept another record format (here an OTLP record of the
    compact JSON kind once spooled), or damaged by a defect: the record goes as the text of a
    message, counted in forward_errors, and the records after it are delivered. Raising
    instead ended the delivery process, and its successor stopped at the same record again."""
    from netconsolectl.receiver.sinks.reliable import spool_label
    from netconsolectl.receiver.spool import SpoolWriter

    url = f"relp://127.0.0.1:{relp_rsyslog.relp}"
    spool = tmp_path / "spool"
    w = SpoolWriter(str(spool / spool_label(url) / "w0"), 1 << 20)
    line = ('{"type":"message","host":"192.0.2.7","port":6666,"received":'
            '"2026-12-07T12:00:00.000000Z","release":null,"facility":0,"level":6,"seq":%d,'
            '"ts_usec":%d,"cont":false,"text":"m%d","fields":{},"incomplete":false,"id":""}')
    w.append((line % (1, 1, 1)).encode())
    w.append(b'{"h":"192.0.2.7","p":6666,"r":1765000000.5,"t":"old","id":""}')
    w.append(b'{"type":"message","host":"192.0.2.7"')  # cut short
    w.append((line % (2, 2, 2)).encode())
    w.flush()
    w.close()
    lst = listen("--quiet", "--workers", "1", "--spool-dir", str(spool), "--forward", url)
    lines = relp_rsyslog.wait(4, timeout=30)
    assert lst.stop() == 0
    msgs = [msg for _, msg in lines]
    assert msgs[0] == "m1" and msgs[3] == "m2", msgs
    assert msgs[1] == '{"h":"192.0.2.7","p":6666,"r":1765000000.5,"t":"old","id":""}'
    assert msgs[2] == '{"type":"message","host":"192.0.2.7"'
    assert counters(lst.stderr())["forward_errors"] == 2
    assert "a spooled record could not be read (KeyError: 'type')" in lst.stderr()

"""``listen`` for a fleet, end to end on loopback: crash events, --on-crash, --silence and
--expect, --metrics, --ignore, SIGHUP, --config, the sender's name."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.listen.conftest import Sender, wait_for_file_text
from tests.unit.test_receiver_crash import NULL_OOPS, PANIC

KMSG_LEVEL = {0: 0, 1: 0}


def report(seq0: int, text: str, *, first_level: int = 0, extra: bytes = b"") -> list[bytes]:
    """A crash report as the kernel's extended datagrams (first line at its level)."""
    out = []
    for i, line in enumerate(text.splitlines()):
        prio = first_level if i == 0 else 4
        body = line.encode().replace(b"\\", b"\\x5c")
        out.append(b"%d,%d,%d,-;%s\n%s" % (prio, seq0 + i, 5_000_000 + i, body, extra))
    return out


def ext(seq: int, text: bytes, *, prio: int = 6, extra: bytes = b"") -> bytes:
    return b"%d,%d,%d,-;" % (prio, seq, 1_000_000 + seq) + text + b"\n" + extra


def metrics_port(lst: Any) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        m = re.search(r"metrics on http://\S+:(\d+)/metrics", lst.stderr())
        if m:
            return int(m.group(1))
        time.sleep(0.05)
    raise AssertionError(lst.stderr())


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return str(r.read().decode())


def sample(text: str, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        mname, _, rest = key.partition("{")
        if mname != name:
            continue
        have = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if have == want:
            return float(value)
    return None


@pytest.mark.parametrize("workers", ["1", "2"])
def test_crash_is_one_json_event_and_messages_still_flow(listen: Any, workers: str) -> None:
    lst = listen("--json", "--workers", workers)
    s = Sender(lst.port)
    n = len(PANIC.splitlines())
    dgrams = [ext(10, b"before"), *report(11, PANIC), ext(11 + n, b"after")]
    s.send(*dgrams, pause=0.001)
    lst.wait_for(lambda out: '"type":"crash"' in out)
    assert lst.stop() == 0
    lines = lst.json()
    crashes = [x for x in lines if x["type"] == "crash"]
    assert len(crashes) == 1
    c = crashes[0]
    assert c["kind"] == "panic" and c["complete"] is True
    assert c["title"] == "Kernel panic - not syncing: sysrq triggered crash"
    assert c["host"] == "127.0.0.1" and c["port"] == s.source_port
    assert c["first_seq"] == 12 and c["last_seq"] == 11 + n - 1  # "sysrq: ..." is before it
    assert c["text"] == PANIC.split("\n", 1)[1]
    texts = [x["text"] for x in lines if x["type"] == "message"]
    assert texts[0] == "before" and texts[-1] == "after"
    assert len(texts) == 2 + n
    assert lines[-1]["crashes"] == 1 and lines[-1]["lost"] == 0


def test_crash_in_human_output_is_a_block(listen: Any) -> None:
    lst = listen()
    Sender(lst.port).send(*report(1, NULL_OOPS, first_level=1), pause=0.001)
    lst.wait_for(lambda out: "kernel crash report" in out)
    assert lst.stop() == 0
    out = lst.stdout()
    assert re.search(r"127\.0\.0\.1:\d+ -- kernel crash report \(oops\): BUG: kernel NULL "
                     r"pointer dereference, address: 0000000000000000 --\n", out), out
    assert "  | ---[ end trace 0000000000000000 ]---" in out


def test_on_crash_runs_the_command_with_the_event(listen: Any, tmp_path: Path) -> None:
    out = tmp_path / "ran"
    script = ("import json,os,sys; e=json.load(sys.stdin); "
              f"open({str(out)!r},'a').write(json.dumps([os.environ['NETCONSOLE_HOST'], "
              "os.environ['NETCONSOLE_KIND'], os.environ['NETCONSOLE_TITLE'], e['kind'], "
              "e['text'].count(chr(10))])+chr(10))")
    fail = shlex.join([sys.executable, "-c", "import sys; sys.exit(3)"])
    lst = listen("--quiet", "--workers", "1",
                 "--on-crash", shlex.join([sys.executable, "-c", script]))
    Sender(lst.port).send(*report(1, PANIC), pause=0.001)
    deadline = time.monotonic() + 30
    while not (out.exists() and out.read_text().count("\n") == 1):
        assert time.monotonic() < deadline, lst.stderr()
        time.sleep(0.1)
    assert lst.stop() == 0
    host, kind, title, ekind, newlines = json.loads(out.read_text())
    assert (host, kind, ekind) == ("127.0.0.1", "panic", "panic")
    assert title.startswith("Kernel panic - not syncing")
    assert newlines == len(PANIC.splitlines()) - 2  # from the "Kernel panic" line
    assert "crashes=1 on_crash_errors=0" in lst.stderr()
    # a failing command is counted (the listener's output files are reused: one at a time)
    lst2 = listen("--quiet", "--workers", "1", "--on-crash", fail)
    Sender(lst2.port).send(*report(1, PANIC), pause=0.001)
    lst2.wait_for(lambda _: False if lst2.proc.poll() else (os.kill(lst2.proc.pid, signal.SIGUSR1)
                  or "on_crash_errors=1" in lst2.stderr()), timeout=30)
    assert lst2.stop() == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_silence_expect_and_resume(listen: Any, tmp_path: Path, workers: str) -> None:
    expect = tmp_path / "hosts"
    expect.write_text("# the fleet\n127.0.0.1\n127.0.0.3\n")
    lst = listen("--json", "--silence", "1.5", "--expect", str(expect), "--workers", workers)
    s = Sender(lst.port)
    s.send(ext(1, b"hello"))
    # 127.0.0.3 never says anything: silent; 127.0.0.1 goes quiet, then speaks again
    lst.wait_for(lambda out: out.count('"type":"silent"') >= 2, timeout=15)
    s.send(ext(2, b"back"))
    lst.wait_for(lambda out: '"type":"resumed"' in out, timeout=10)
    assert lst.stop() == 0
    events = [x for x in lst.json() if x["type"] in ("silent", "resumed")]
    silent = {e["host"]: e for e in events if e["type"] == "silent"}
    assert set(silent) == {"127.0.0.1", "127.0.0.3"}
    assert silent["127.0.0.3"]["last_received"] is None
    assert silent["127.0.0.1"]["last_received"].endswith("Z")
    resumed = [e for e in events if e["type"] == "resumed"]
    assert [e["host"] for e in resumed] == ["127.0.0.1"]
    assert resumed[0]["port"] is None


@pytest.mark.parametrize("workers", ["1", "2"])
def test_metrics_per_host_and_totals(listen: Any, workers: str) -> None:
    lst = listen("--quiet", "--metrics", "127.0.0.1:0", "--workers", workers,
                 "--max-hosts", "2", "--timeout", "0.5")
    port = metrics_port(lst)
    senders = {src: Sender(lst.port, source=src) for src in
               ("127.0.0.1", "127.0.0.2", "127.0.0.3")}
    senders["127.0.0.1"].send(*[ext(i, b"m%d" % i) for i in range(1, 11)])
    senders["127.0.0.1"].send(ext(14, b"gap of three"))
    # recency is kept to the second (per-host figures are handed over once a second): let
    # 127.0.0.1 be counted before 127.0.0.2 speaks, so it is the least recent below
    deadline = time.monotonic() + 15
    while sample(scrape(port), "netconsole_messages_total", host="127.0.0.1") != 11:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    senders["127.0.0.2"].send(*report(1, NULL_OOPS, first_level=1), pause=0.001)
    deadline = time.monotonic() + 15
    while True:
        text = scrape(port)
        if (sample(text, "netconsole_crashes_total", host="127.0.0.2", kind="oops") == 1
                and sample(text, "netconsole_lost_messages_total", host="127.0.0.1") == 3):
            break  # (the gap is reported once the reorder window of --timeout has passed)
        assert time.monotonic() < deadline, text
        time.sleep(0.3)
    assert sample(text, "netconsole_messages_total", host="127.0.0.1") == 11
    assert sample(text, "netconsole_lost_messages_total", host="127.0.0.1") == 3
    assert sample(text, "netconsole_messages_total", host="127.0.0.2") == len(
        NULL_OOPS.splitlines())
    last = sample(text, "netconsole_last_message_timestamp_seconds", host="127.0.0.1")
    assert last is not None and abs(last - time.time()) < 30
    assert sample(text, "netconsole_receiver_crashes_total") == 1
    assert sample(text, "netconsole_receiver_datagrams_total") == 11 + len(NULL_OOPS.splitlines())
    # a third host pushes the least recent (127.0.0.1) into "other": totals stay
    senders["127.0.0.3"].send(ext(1, b"third"))
    deadline = time.monotonic() + 15
    while sample(text := scrape(port), "netconsole_messages_total", host="127.0.0.3") != 1:
        assert time.monotonic() < deadline, text
        time.sleep(0.3)
    assert sample(text, "netconsole_messages_total", host="127.0.0.1") is None
    assert sample(text, "netconsole_messages_total", host="other") == 11
    assert sample(text, "netconsole_lost_messages_total", host="other") == 3
    assert sample(text, "netconsole_hosts") == 2
    assert lst.stop() == 0


def test_ignore_drops_and_counts(listen: Any) -> None:
    lst = listen("--json", "--workers", "1", "--ignore", "^audit: ", "--ignore", "noisy")
    s = Sender(lst.port)
    s.send(ext(1, b"keep me"), ext(2, b"audit: type=1400"), ext(3, b"a noisy one", prio=3),
           ext(4, b"keep too"), b"[ 1.0] noisy basic\n")
    lst.wait_for(lambda out: "keep too" in out)
    time.sleep(0.3)
    assert lst.stop() == 0
    lines = lst.json()
    assert [x["text"] for x in lines if x["type"] == "message"] == ["keep me", "keep too"]
    assert lines[-1]["ignored"] == 3 and lines[-1]["lost"] == 0


def test_ignore_bad_regex_is_one_line(listen: Any, tmp_path: Path) -> None:
    import subprocess

    r = subprocess.run([sys.executable, "-m", "netconsolectl", "listen", "--ignore", "(",
                        "--port", "0"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert r.stderr.startswith("netconsolectl: error: --ignore '('") and r.stderr.count("\n") <= 2


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sighup_reopens_output_files(listen: Any, tmp_path: Path, workers: str) -> None:
    logs = tmp_path / "logs"
    lst = listen("--quiet", "--output-dir", str(logs), "--workers", workers)
    s = Sender(lst.port)
    s.send(ext(1, b"before rotation"))
    path = logs / "127.0.0.1.log"
    deadline = time.monotonic() + 10
    wait_for_file_text(path, "before rotation", deadline)
    os.rename(path, logs / "127.0.0.1.log.1")
    lst.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    s.send(ext(2, b"after rotation"))
    wait_for_file_text(path, "after rotation", deadline)
    assert lst.stop() == 0
    assert "after rotation" not in (logs / "127.0.0.1.log.1").read_text()
    assert "before rotation" not in path.read_text()


def test_config_file_and_command_line_precedence(listen: Any, tmp_path: Path) -> None:
    conf = tmp_path / "listen.toml"
    conf.write_text('json = true\nworkers = 1\nignore = ["^drop"]\nport = 1\n'
                    'on-crash-timeout = 5\n')
    lst = listen("--config", str(conf))  # the fixture's --port 0 wins over port = 1
    s = Sender(lst.port)
    s.send(ext(1, b"drop this"), ext(2, b"shown"))
    lst.wait_for(lambda out: '"text":"shown"' in out)
    assert lst.stop() == 0
    assert [x.get("text") for x in lst.json() if x["type"] == "message"] == ["shown"]


@pytest.mark.parametrize(("content", "needle"), [
    ("nosuch = 1\n", "unknown option 'nosuch'"),
    ("workers = -1\n", "workers"),
    ("port = \n", "--config"),
])
def test_config_errors_are_one_line(tmp_path: Path, content: str, needle: str) -> None:
    import subprocess

    conf = tmp_path / "bad.toml"
    conf.write_text(content)
    r = subprocess.run([sys.executable, "-m", "netconsolectl", "listen", "--config", str(conf)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and r.stderr.startswith("netconsolectl: error: --config")


def test_hostname_userdata_is_the_name(listen: Any) -> None:
    lst = listen("--json", "--workers", "1")
    s = Sender(lst.port)
    s.send(ext(1, b"hi", extra=b" hostname=web1\n"), ext(2, b"plain"))
    lst.wait_for(lambda out: '"text":"plain"' in out)
    assert lst.stop() == 0
    msgs = [x for x in lst.json() if x["type"] == "message"]
    assert msgs[0]["name"] == "web1" and msgs[0]["fields"] == {"hostname": "web1"}
    assert "name" not in msgs[1]
    human = listen("--workers", "1")
    Sender(human.port).send(ext(1, b"hi", extra=b" hostname=web1\n"))
    human.wait_for(lambda out: "hi" in out)
    assert human.stop() == 0
    assert re.match(r"\S+ 127\.0\.0\.1:\d+ \(web1\) \[", human.stdout()), human.stdout()

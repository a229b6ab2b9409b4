"""``netconsolectl listen`` end to end on loopback: a sender emits known streams (gaps, reorders,
resets, fragments, hostile text, malformed datagrams) and every output mode is checked."""

from __future__ import annotations

import re
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.listen.conftest import Sender


def ext(seq: int, text: bytes, *, prio: int = 6, extra: bytes = b"") -> bytes:
    return b"%d,%d,%d,-;" % (prio, seq, 1_000_000 + seq) + text + b"\n" + extra


def frags(seq: int, body: bytes, size: int) -> list[bytes]:
    return [
        b"6.12.0,6,%d,%d,-,ncfrag=%d/%d;" % (seq, 1_000_000 + seq, off, len(body))
        + body[off : off + size]
        for off in range(0, len(body), size)
    ]


HOSTILE = b"\\x1b[2J\\x1b]0;pwned\\x07 [bold red]markup[/] \\xe2\\x80\\xae reversed \\x0d\\x0a fake"


def stream(s: Sender) -> bytes:
    """A known stream; returns the long body sent in fragments."""
    long_body = b"L" * 2500 + b"\n rack=r1\n msgid=77\n"
    parts = frags(110, long_body, 900)
    s.send(
        ext(100, b"first"),
        ext(101, b"second", prio=3),
        ext(104, b"after gap"),  # 102 and 103 missing
        ext(105, b"x"),
        ext(103, b"late"),  # 103 arrives late: reorder; 102 stays lost
        ext(106, HOSTILE, extra=b" DEVICE=+virtio:x\n"),
        parts[2], parts[0], parts[0], parts[1],  # any order, one duplicate
        b"6,111,2,-,ncfrag=50/10;bad",  # malformed
        b"",  # empty: malformed
        b"[   1.0] plain text with \x1b[31m raw escape\n",
        ext(3, b"after reboot"),  # sequence reset
        ext(4, b"next"),
        b"6.12.0,6,5,1000005,-,ncfrag=0/3000;only the first piece",  # never completed
        pause=0.002,
    )
    return long_body


@pytest.mark.parametrize("workers", ["1", "2"])
def test_json_mode(listen: Any, workers: str) -> None:
    lst = listen("--json", "--timeout", "0.5", "--workers", workers)
    s = Sender(lst.port)
    stream(s)
    lst.wait_for(lambda out: '"type":"lost"' in out and '"incomplete":true' in out)
    lst.send_signal(signal.SIGUSR1)
    lst.wait_for(lambda out: '"type":"counters"' in out)
    assert lst.stop(signal.SIGINT) == 0
    lines = lst.json()
    msgs = [x for x in lines if x["type"] == "message"]
    by_text = {m["text"]: m for m in msgs}
    assert by_text["first"]["seq"] == 100 and by_text["first"]["port"] == s.source_port
    assert by_text["first"]["host"] == "127.0.0.1"
    assert by_text["second"]["level"] == 3
    long = next(m for m in msgs if m["text"].startswith("LLL"))
    assert long["text"] == "L" * 2500 and long["fields"] == {"rack": "r1", "msgid": "77"}
    assert long["incomplete"] is False and long["release"] == "6.12.0"
    hostile = next(m for m in msgs if m["seq"] == 106)
    assert hostile["text"].startswith("\x1b[2J\x1b]0;pwned\x07 [bold red]markup[/] \u202e")
    assert hostile["fields"] == {"DEVICE": "+virtio:x"}
    plain = next(m for m in msgs if m["seq"] is None)
    assert plain["text"] == "[   1.0] plain text with \x1b[31m raw escape"
    partial = next(m for m in msgs if m["incomplete"])
    assert partial["seq"] == 5 and partial["text"] == "only the first piece"

    events = [x for x in lines if x["type"] not in ("message", "counters")]
    kinds = [e["type"] for e in events]
    assert {"type": "reorder", "seq": 103}.items() <= next(
        e for e in events if e["type"] == "reorder").items()
    lost = [e for e in events if e["type"] == "lost"]
    assert [(e["first_seq"], e["last_seq"], e["count"]) for e in lost] == [(102, 102, 1)]
    reset = next(e for e in events if e["type"] == "reset")
    assert (reset["seq"], reset["previous_seq"]) == (3, 110)
    assert kinds.count("malformed") == 2
    counters = [x for x in lines if x["type"] == "counters"]
    assert len(counters) == 2  # SIGUSR1 and exit
    final = counters[-1]
    assert final["received"] == 16
    assert final["fragments"] == 5 and final["reassembled"] == 1 and final["incomplete"] == 1
    assert final["lost"] == 1 and final["reordered"] == 1 and final["resets"] == 1
    assert final["malformed"] == 2 and final["duplicates"] == 1
    assert final["messages"] == len(msgs)
    assert "counters: received=16 " in lst.stderr()


def test_human_mode_never_interprets_network_text(listen: Any) -> None:
    lst = listen("--timeout", "0.3", "--workers", "1", env={"FORCE_COLOR": "1", "NO_COLOR": ""})
    s = Sender(lst.port)
    s.send(ext(1, b"hello"), ext(2, HOSTILE, prio=3), b"raw \x1b[31m\x07 plain\n", ext(9, b"x"))
    lst.wait_for(lambda out: "lost 6 message(s)" in out)
    assert lst.stop() == 0
    out = lst.stdout()
    lines = out.splitlines()
    assert len(lines) == 5
    hostile = lines[1]
    assert "\\x1b[2J\\x1b]0;pwned\\x07 [bold red]markup[/] \\u202e reversed \\x0d\\x0a fake" in (
        hostile)
    assert "kern.err" in hostile and "#2" in hostile
    assert "raw \\x1b[31m\\x07 plain" in lines[2]
    # Escape sequences in the output are only our own SGR colour codes.
    import re

    leftovers = re.sub(r"\x1b\[[0-9;]*m", "", out)
    assert "\x1b" not in leftovers and "\x07" not in leftovers and "\r" not in leftovers


def test_output_dir_one_file_per_host(listen: Any, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    lst = listen("--quiet", "--output-dir", str(logs))
    a = Sender(lst.port, "127.0.0.1")
    b = Sender(lst.port, "127.0.0.2")
    c = Sender(lst.port, "::1")
    a.send(ext(1, b"from a"), ext(2, b"a again"))
    b.send(ext(1, b"from b ../../etc/passwd"))
    c.send(ext(5, b"from v6"))
    deadline = __import__("time").monotonic() + 10
    while len(list(logs.glob("*.log"))) < 3 and __import__("time").monotonic() < deadline:
        __import__("time").sleep(0.05)
    # flushed while running, before any shutdown
    assert "from b" in (logs / "127.0.0.2.log").read_text()
    assert lst.stop() == 0
    assert lst.stdout() == ""
    assert sorted(p.name for p in logs.iterdir()) == ["127.0.0.1.log", "127.0.0.2.log",
                                                      "__1.log"]
    a_lines = (logs / "127.0.0.1.log").read_text().splitlines()
    assert [x.rsplit(": ", 1)[1] for x in a_lines] == ["from a", "a again"]
    assert "from v6" in (logs / "__1.log").read_text()


def test_allowlist_drops_and_counts(listen: Any) -> None:
    lst = listen("--json", "--allow", "127.0.0.2/32", "--allow", "::1")
    Sender(lst.port, "127.0.0.1").send(ext(1, b"denied"))
    Sender(lst.port, "127.0.0.2").send(ext(1, b"allowed v4"))
    Sender(lst.port, "::1").send(ext(1, b"allowed v6"))
    lst.wait_for(lambda out: out.count('"type":"message"') == 2)
    assert lst.stop() == 0
    texts = sorted(x["text"] for x in lst.json() if x["type"] == "message")
    assert texts == ["allowed v4", "allowed v6"]
    final = [x for x in lst.json() if x["type"] == "counters"][-1]
    assert final["dropped"] == 1 and final["received"] == 3


def test_bad_arguments_exit_with_one_line(listen: Any, tmp_path: Path) -> None:
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "netconsolectl", "listen", "--allow", "nonsense"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert r.stderr.startswith("netconsolectl: error: --allow:")
    lst = listen("--json")
    r = subprocess.run([sys.executable, "-m", "netconsolectl", "listen", "--bind", "127.0.0.1",
                        "--port", str(lst.port)], capture_output=True, text=True, timeout=30)
    # the dual-stack socket holds the port for IPv4 too
    assert r.returncode == 1, r.stderr
    assert "address already in use" in r.stderr
    r = subprocess.run([sys.executable, "-m", "netconsolectl", "listen", "--forward", "ftp://x"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "unknown scheme" in r.stderr
    assert lst.stop() == 0


@pytest.mark.parametrize("args, message", [
    (["--json", "--quiet"], "--json and --quiet contradict each other"),
    (["--output-dir", "/etc/passwd"], "cannot use output directory /etc/passwd: not a directory"),
    (["--color", "sometimes"], "--color 'sometimes': use auto, always or never"),
])
def test_contradictions_and_wrong_paths_are_refused(args: list[str], message: str) -> None:
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "netconsolectl", "listen", "--port", "0", *args],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(f"netconsolectl: error: {message}")
    assert r.stdout == ""


def test_single_worker_ready_line(listen: Any) -> None:
    lst = listen("--workers", "1")
    assert re.match(r"netconsolectl: listening on udp \[::\]:\d+ \(pid \d+\)$",
                    lst.stderr().splitlines()[0])
    assert lst.stop() == 0


def test_workers_share_the_port_and_sum_counters(listen: Any) -> None:
    import os
    import time

    lst = listen("--json", "--workers", "2", "--timeout", "0.3")
    # the ready line has the README's shape whatever the number of workers
    assert re.match(r"netconsolectl: listening on udp \[::\]:\d+ \(pid \d+, 2 workers\)$",
                    lst.stderr().splitlines()[0])
    senders = [Sender(lst.port, f"127.0.0.{i}") for i in range(1, 9)]
    for s in senders:
        s.send(*(ext(seq, b"w%d" % seq) for seq in range(1, 51)))
    lst.wait_for(lambda out: out.count('"type":"message"') == 400)
    lst.send_signal(signal.SIGUSR1)
    lst.wait_for(lambda out: '"type":"counters"' in out)
    # a worker that dies is replaced and the port keeps working
    pids = [int(p) for p in Path(f"/proc/{lst.proc.pid}/task/{lst.proc.pid}/children")
            .read_text().split()]
    assert len(pids) == 2
    os.kill(pids[0], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while "restarting" not in lst.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    for s in senders:
        s.send(ext(51, b"after restart"))
    lst.wait_for(lambda out: out.count("after restart") == 8)
    assert lst.stop(signal.SIGINT) == 0
    lines = lst.json()
    msgs = [x for x in lines if x["type"] == "message"]
    assert len(msgs) == 408
    # every stream stayed whole within one worker: no loss or reset reported
    assert not [x for x in lines if x["type"] in ("lost", "reset", "reorder", "duplicate")]
    counters = [x for x in lines if x["type"] == "counters"]
    assert counters[0]["messages"] == 400
    assert counters[-1]["received"] >= 8  # the killed worker's unreported count is gone
    assert "worker 0 exited" in lst.stderr() or "worker 1 exited" in lst.stderr()


def test_exits_when_the_reader_of_stdout_goes_away(tmp_path: Path) -> None:
    import re
    import subprocess
    import sys
    import time

    err = (tmp_path / "err").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "netconsolectl", "listen", "--port", "0", "--json"],
        stdout=subprocess.PIPE, stderr=err,
    )
    deadline = time.monotonic() + 15
    while not (m := re.search(r"udp \S+:(\d+)", (tmp_path / "err").read_text())):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    assert proc.stdout is not None
    s = Sender(int(m.group(1)))
    s.send(ext(1, b"one"))
    assert b'"text":"one"' in proc.stdout.readline()
    proc.stdout.close()  # like `listen --json | head -1` finishing
    s.send(ext(2, b"two"), ext(3, b"three"))
    assert proc.wait(timeout=15) == 0
    err.close()
    # it stops at the first write that fails, which may come before "three" was read
    assert re.search(r"counters: received=[23] ", (tmp_path / "err").read_text())


def test_bind_to_one_address(listen: Any) -> None:
    lst = listen("--json", "--bind", "::1")
    assert "listening on udp [::1]:" in lst.stderr()
    Sender(lst.port, "::1").send(ext(1, b"v6 only"))
    lst.wait_for(lambda out: "v6 only" in out)
    assert lst.stop() == 0
    [m] = [x for x in lst.json() if x["type"] == "message"]
    assert m["host"] == "::1"


def test_a_repeated_datagram_is_an_event_not_a_second_message(listen: Any, tmp_path: Path
                                                                ) -> None:
    logs = tmp_path / "logs"
    lst = listen("--json", "--workers", "1", "--output-dir", str(logs))
    s = Sender(lst.port)
    s.send(ext(1, b"once"), ext(2, b"twice?"), ext(2, b"twice?"), ext(3, b"three"))
    lst.wait_for(lambda out: "three" in out)
    assert lst.stop() == 0
    lines = lst.json()
    assert [x["type"] for x in lines if x["type"] != "counters"] == [
        "message", "message", "duplicate", "message"]
    text = (logs / "127.0.0.1.log").read_text()
    assert text.count("twice?") == 1 and "seq 2 arrived again" in text


def _spread_index(words: list[int], n: int) -> int:
    """What spread_program computes, for the expected socket of a source."""
    addr = 0
    for w in words:
        addr ^= w
    return ((((addr * 0x9E3779B1) & 0xFFFFFFFF) >> 16) * n) >> 16


@pytest.mark.parametrize("n", [2, 3])
def test_reuseport_group_spreads_sources_by_address(n: int) -> None:
    """The kernel runs the program: every datagram of an address, whatever its source port,
    reaches the socket the address hashes to, and consecutive addresses are spread evenly."""
    import socket
    import struct
    import time

    from netconsolectl.receiver.server import open_socket, spread_by_address

    socks = [open_socket("::", 0, 1 << 20, reuseport=True)]
    port = socks[0].getsockname()[1]
    socks += [open_socket("::", port, 1 << 20, reuseport=True) for _ in range(n - 1)]
    senders: list[socket.socket] = []
    try:
        assert spread_by_address(socks[0], n)
        hosts = [f"127.0.1.{k}" for k in range(1, 8 * n + 1)]
        for host in hosts:
            for _ in range(2):  # two source ports per address
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                senders.append(s)
                s.bind((host, 0))
                for _ in range(3):
                    s.sendto(b"x", ("127.0.0.1", port))
        v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        senders.append(v6)
        v6.sendto(b"x", ("::1", port))
        time.sleep(0.2)
        seen: dict[str, set[int]] = {}
        count = 0
        for i, sock in enumerate(socks):
            while True:
                try:
                    _, addr = sock.recvfrom(16)
                except BlockingIOError:
                    break
                seen.setdefault(addr[0].removeprefix("::ffff:"), set()).add(i)
                count += 1
        assert count == len(hosts) * 6 + 1
        for host in hosts:
            word = struct.unpack("!I", socket.inet_aton(host))[0]
            assert seen[host] == {_spread_index([word], n)}, host
        assert seen["::1"] == {_spread_index([0, 0, 0, 1], n)}
        per_socket = [sum(1 for h in hosts if seen[h] == {i}) for i in range(n)]
        assert per_socket == [8] * n
    finally:
        for s in socks + senders:
            s.close()


@pytest.mark.parametrize("loop", ["C", "Python"])
def test_batch_receiver_cuts_payloads_and_addresses(loop: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """recvmmsg batches, cut in C or in Python: every payload whole (or cut at the slot size),
    with the address it came from, in order, over several batches."""
    import socket
    import time

    from netconsolectl.receiver import mmsg
    from netconsolectl.receiver.server import open_socket

    if loop == "Python":
        monkeypatch.setattr(mmsg, "_split", None)
    else:
        assert mmsg._split is not None, "the C loop is not built"
    rx = open_socket("::", 0, 1 << 20)
    port = rx.getsockname()[1]
    v4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        batch = mmsg.open_batch(rx, count=8, size=64)
        assert batch is not None
        sent = []
        for i, length in enumerate([0, 1, 63, 64, 65, 100, 7, 8, 9, 10, 11, 12]):
            s = v4 if i % 3 else v6
            data = bytes((i + k) % 256 for k in range(length))
            s.sendto(data, ("127.0.0.1" if s is v4 else "::1", port))
            sent.append((data[:64], ("127.0.0.1" if s is v4 else "::1", s.getsockname()[1])))
        got: list[tuple[bytes, tuple[str, int]]] = []
        deadline = time.monotonic() + 5
        while len(got) < len(sent) and time.monotonic() < deadline:
            payloads, names = batch.recv()
            assert len(payloads) <= 8
            got += [(p, mmsg.sockaddr_to_source(a)) for p, a in zip(payloads, names, strict=True)]
        assert got == sent
    finally:
        for s in (rx, v4, v6):
            s.close()

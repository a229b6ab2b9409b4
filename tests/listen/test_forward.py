"""``--forward``: RFC 5424 to a real rsyslogd on loopback (UDP and TCP), and the journal's native
protocol to a unix datagram socket the test owns."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.listen.conftest import Sender, free_port, terminate

RSYSLOGD = shutil.which("rsyslogd") or (
    "/usr/sbin/rsyslogd" if os.path.exists("/usr/sbin/rsyslogd") else None
)

TEMPLATE = (
    "%hostname%|%syslogfacility%|%syslogseverity%|%app-name%|%msgid%|%structured-data%|%msg%|"
    "%inputname%\\n"
)


class Rsyslog:
    """rsyslogd in the foreground, as this user, with its own configuration and work directory,
    listening on loopback ports (UDP, TCP and, with ``relp``, RELP through imrelp), writing
    everything to one file. The main queue is direct: a message is in the file (the page cache)
    before imrelp acknowledges it, so killing rsyslogd loses nothing it acknowledged."""

    def __init__(self, tmp: Path, *, relp: bool = False, template: str = TEMPLATE) -> None:
        self.dir = tmp / "rsyslog"
        self.dir.mkdir()
        self.udp = free_port(socket.SOCK_DGRAM)
        self.tcp = free_port(socket.SOCK_STREAM)
        self.relp = free_port(socket.SOCK_STREAM) if relp else 0
        self.out = self.dir / "out.log"
        self.conf = self.dir / "rsyslog.conf"
        inputs = (
            'module(load="imudp")\nmodule(load="imtcp")\n'
            f'input(type="imudp" address="127.0.0.1" port="{self.udp}")\n'
            f'input(type="imtcp" address="127.0.0.1" port="{self.tcp}")\n'
        )
        if relp:
            inputs += (
                'module(load="imrelp")\n'
                f'input(type="imrelp" address="127.0.0.1" port="{self.relp}")\n'
            )
        self.conf.write_text(
            f'global(workDirectory="{self.dir}")\n'
            'main_queue(queue.type="Direct")\n'
            + inputs
            + f'template(name="t" type="string" string="{template}")\n'
            f'*.* action(type="omfile" file="{self.out}" template="t" flushOnTXEnd="on")\n'
        )
        assert RSYSLOGD is not None
        self.log = (self.dir / "rsyslogd.log").open("ab")
        self.start()

    def start(self) -> None:
        assert RSYSLOGD is not None
        self.proc = subprocess.Popen(
            [RSYSLOGD, "-n", "-f", str(self.conf), "-i", str(self.dir / "pid")],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 15
        port = self.relp or self.tcp
        while True:  # ready when the TCP (or RELP) input accepts
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((self.dir / "rsyslogd.log").read_text()) from None
                time.sleep(0.1)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "pid").unlink()

    def lines(self) -> list[list[str]]:
        if not self.out.exists():
            return []
        return [x.split("|") for x in self.out.read_text().splitlines()]

    def wait(self, n: int, timeout: float = 15.0) -> list[list[str]]:
        deadline = time.monotonic() + timeout
        while len(self.lines()) < n and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.lines()

    def stop(self) -> None:
        terminate(self.proc, 10)
        self.log.close()


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[Rsyslog]:
    if RSYSLOGD is None:
        pytest.skip("rsyslogd is not installed (Debian package rsyslog)")
    r = Rsyslog(tmp_path)
    yield r
    r.stop()


def test_syslog_udp_and_tcp_to_rsyslog(listen: Any, rsyslog: Rsyslog) -> None:
    lst = listen(
        "--quiet", "--timeout", "0.3",
        "--forward", f"syslog+udp://127.0.0.1:{rsyslog.udp}",
        "--forward", f"syslog+tcp://127.0.0.1:{rsyslog.tcp}",
    )
    s = Sender(lst.port)
    s.send(
        b"6.12.0,3,7,123,-;disk \\x22sda\\x22 failed ] \\x1b[31m\n DEVICE=b8:0\n weird key=a\"b]\n",
        b"12,8,124,-;from kmsg\n",
        b"14,10,125,-;after a gap\n",
        b"[  1.000] plain text\n",
        pause=0.01,
    )
    # 4 messages + 1 lost event, over both transports
    lines = rsyslog.wait(10)
    assert lst.stop() == 0
    assert len(lines) == 10, lines
    for transport in ("imudp", "imtcp"):
        got = [x for x in lines if x[-1] == transport]
        first = next(x for x in got if "sda" in x[6])
        host, fac, sev, app, msgid, sd, msg = first[:7]
        assert (host, fac, sev, app, msgid) == ("127.0.0.1", "0", "3", "kernel", "netconsole")
        assert '[origin ip="127.0.0.1"]' in sd
        assert f'port="{s.source_port}" seq="7" ts_usec="123" cont="0" release="6.12.0"' in sd
        assert '[fields@32473 DEVICE="b8:0" weird_key="a\\"b\\]"]' in sd
        assert msg == 'disk "sda" failed ] \\x1b[31m'
        kmsg = next(x for x in got if x[6] == "from kmsg")
        assert (kmsg[1], kmsg[2]) == ("1", "4")
        plain = next(x for x in got if "plain text" in x[6])
        assert (plain[1], plain[2]) == ("0", "6")
        lost = next(x for x in got if x[4] == "lost")
        assert lost[2] == "4" and 'first_seq="9"' in lost[5]
    assert "forward_errors=0" in lst.stderr()


def test_syslog_tcp_collector_down_is_counted_not_fatal(listen: Any) -> None:
    port = free_port(socket.SOCK_STREAM)
    lst = listen("--json", "--forward", f"syslog+tcp://127.0.0.1:{port}")
    Sender(lst.port).send(b"6,1,1,-;still printed\n")
    lst.wait_for(lambda out: "still printed" in out)
    assert lst.stop() == 0
    errors = int(lst.stderr().split("forward_errors=")[1].split()[0])
    assert errors >= 1


def read_journal_entry(raw: bytes) -> dict[str, str]:
    """Parse the native journal protocol (the form journald itself accepts)."""
    fields: dict[str, str] = {}
    i = 0
    while i < len(raw):
        nl = raw.index(b"\n", i)
        line = raw[i:nl]
        if b"=" in line:
            k, _, v = line.partition(b"=")
            fields[k.decode()] = v.decode()
            i = nl + 1
        else:
            (size,) = struct.unpack("<Q", raw[nl + 1 : nl + 9])
            fields[line.decode()] = raw[nl + 9 : nl + 9 + size].decode()
            assert raw[nl + 9 + size : nl + 10 + size] == b"\n"
            i = nl + 10 + size
    return fields


def test_journald_native_protocol(listen: Any, tmp_path: Path) -> None:
    path = tmp_path / "journal.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    try:
        lst = listen("--quiet", "--timeout", "0.3", "--forward", f"journald://{path}")
        s = Sender(lst.port)
        s.send(
            b"6.12.0,3,7,123,-;line one\\x0aline two\n SUBSYSTEM=usb\n rack-id=r7\n",
            b"[ 1.0] plain\n",
            b"6,9,130,-;after gap\n",
            pause=0.01,
        )
        entries = [read_journal_entry(sock.recv(65536)) for _ in range(4)]
    finally:
        sock.close()
    assert lst.stop(signal.SIGTERM) == 0
    first = entries[0]
    assert first["MESSAGE"] == "line one\nline two"
    assert first["PRIORITY"] == "3" and first["SYSLOG_FACILITY"] == "0"
    assert first["SYSLOG_IDENTIFIER"] == "netconsole"
    assert first["NETCONSOLE_HOST"] == "127.0.0.1"
    assert first["NETCONSOLE_PORT"] == str(s.source_port)
    assert first["NETCONSOLE_SEQ"] == "7" and first["NETCONSOLE_TS_USEC"] == "123"
    assert first["NETCONSOLE_RELEASE"] == "6.12.0"
    assert first["NETCONSOLE_FIELD_SUBSYSTEM"] == "usb"
    assert first["NETCONSOLE_FIELD_RACK_ID"] == "r7"
    assert re.fullmatch(r"[0-9a-f]{16}-7", first["NETCONSOLE_ID"])
    plain = entries[1]
    assert plain["MESSAGE"] == "[ 1.0] plain" and plain["PRIORITY"] == "6"
    assert "NETCONSOLE_SEQ" not in plain
    kinds = {e.get("NETCONSOLE_EVENT") for e in entries[2:]}
    assert kinds == {None, "lost"}
    lost = next(e for e in entries if e.get("NETCONSOLE_EVENT") == "lost")
    assert lost["NETCONSOLE_FIRST_SEQ"] == "8" and lost["PRIORITY"] == "4"


def test_journald_socket_missing_is_an_error(tmp_path: Path) -> None:
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "netconsolectl", "listen", "--port", "0",
         "--forward", f"journald://{tmp_path}/absent.sock"],
        capture_output=True, text=True, timeout=30,
    )
    assert r.returncode == 69
    assert r.stderr.splitlines()[0].startswith("netconsolectl: error: --forward journald: cannot")

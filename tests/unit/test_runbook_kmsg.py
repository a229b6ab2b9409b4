"""`test`: the marker line, the level it is written at, and confirming its arrival."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from netconsolectl.errors import InvalidInput, KernelRefused
from netconsolectl.host import kmsgtest
from netconsolectl.host.system import System
from netconsolectl.sender.emulation import Device, Emulation
from tests.conftest import Cli, make_system

EXPLICIT = ["--dev", "eth0", "--local-ip", "192.0.2.10", "--remote-mac", "02:00:00:00:00:01"]


def add(cli: Cli, name: str, *extra: str) -> None:
    r = cli("add", name, "--remote-ip", "192.0.2.1", *EXPLICIT, *extra)
    assert r.exit_code == 0, r


@pytest.fixture(autouse=True)
def dev_kmsg(tmp_path: Path) -> None:
    """The fake system's /dev/kmsg: a plain file the test reads back."""
    (tmp_path / "kmsg").touch()


def kmsg_lines(system: System) -> list[str]:
    return system.dev_kmsg.read_text().splitlines() if system.dev_kmsg.exists() else []


@pytest.fixture
def collector(system: System) -> Iterator[Callable[[Callable[[bytes], None]], None]]:
    """Stand in for kernel + wire: hand each new /dev/kmsg line to ``deliver``."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(deliver: Callable[[bytes], None]) -> None:
        def run() -> None:
            seen = 0
            while not stop.is_set():
                lines = kmsg_lines(system)
                for line in lines[seen:]:
                    # what an extended target would put on the wire
                    body = re.sub(r"^<(\d+)>", lambda m: f"{8 + int(m.group(1))},1,2,-;", line)
                    deliver(body.encode())
                seen = len(lines)
                time.sleep(0.01)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        threads.append(t)

    yield start
    stop.set()
    for t in threads:
        t.join(2)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- library ----------------------------------------------------------------------------------


def test_level_is_the_least_severe_that_passes(tmp_path: Path, kernel: Emulation) -> None:
    for loglevel, level in ((8, 7), (7, 6), (4, 3), (2, 1)):
        assert kmsgtest.choose_level(make_system(tmp_path, kernel, loglevel=loglevel)) == level
    with pytest.raises(KernelRefused, match="broadcast to every terminal"):
        kmsgtest.choose_level(make_system(tmp_path, kernel, loglevel=1))
    assert kmsgtest.choose_level(make_system(tmp_path, kernel, loglevel=1), 0) == 0
    with pytest.raises(InvalidInput, match="does not pass the console loglevel 4"):
        kmsgtest.choose_level(make_system(tmp_path, kernel, loglevel=4), 4)


def test_level_with_ignore_loglevel_or_no_proc(tmp_path: Path, kernel: Emulation) -> None:
    system = make_system(tmp_path, kernel, loglevel=1)
    p = system.sysfs / "module/printk/parameters"
    p.mkdir(parents=True)
    (p / "ignore_loglevel").write_text("Y\n")
    assert kmsgtest.choose_level(system) == 6
    system.printk_path.unlink()
    (p / "ignore_loglevel").unlink()
    assert kmsgtest.choose_level(system) == 3


@pytest.mark.parametrize(("spec", "host", "port"), [
    ("udp:6666", "0.0.0.0", 6666), ("udp:127.0.0.1:514", "127.0.0.1", 514),
    ("udp:[::1]:6666", "::1", 6666),
])
def test_parse_expect_udp(spec: str, host: str, port: int) -> None:
    w = kmsgtest.parse_expect(spec)
    assert isinstance(w, kmsgtest.UdpWatch) and (w.host, w.port) == (host, port)


@pytest.mark.parametrize("spec", ["udp:", "udp:0", "udp:70000", "udp:::1:6666", "udp:[::1]6",
                                  "udp:host:1", "/nonexistent/dir"])
def test_parse_expect_refuses(spec: str) -> None:
    with pytest.raises(InvalidInput):
        kmsgtest.parse_expect(spec)


def test_dir_watch_sees_only_new_lines(tmp_path: Path) -> None:
    d = tmp_path / "out"
    (d / "sub").mkdir(parents=True)
    old = d / "192.0.2.10.log"
    old.write_text("netconsolectl-test-old\n")
    w = kmsgtest.DirWatch(d, poll=0.01)
    w.start()
    assert w.wait("netconsolectl-test-old", 0.05) is None
    (d / "sub/new.log").write_text("x netconsolectl-test-new y\n")
    assert w.wait("netconsolectl-test-new", 1) == str(d / "sub/new.log")


# -- command line -----------------------------------------------------------------------------


def test_writes_a_marker_that_passes_the_loglevel(cli: Cli, system: System) -> None:
    add(cli, "t1", "--extended")
    add(cli, "t2", "--disabled")
    r = cli("test")
    assert r.exit_code == 0, r
    line = kmsg_lines(system)[-1]
    m = re.fullmatch(r"<6>netconsolectl test (netconsolectl-test-[0-9a-f]{16}) from \S+ to t1",
                     line)
    assert m, line
    out = r.stdout.splitlines()
    assert out[0] == (f"wrote {m.group(1)} to {system.dev_kmsg} at level 6 (info), which passes "
                      "the console loglevel 7")
    assert out[1] == ("sent to t1: eth0 192.0.2.10:6665 -> 192.0.2.1:6666 "
                      "(02:00:00:00:00:01), extended")
    assert out[2] == "not sent to t2: disabled"
    assert "does not confirm delivery" in r.stderr
    # Two runs, two markers.
    cli("test")
    assert kmsg_lines(system)[-1].split()[2] != m.group(1)


def test_errors(cli: Cli, system: System, tmp_path: Path, kernel: Emulation) -> None:
    r = cli("test")
    assert r.exit_code == 1 and "no enabled target" in r.stderr
    add(cli, "t2", "--disabled")
    r = cli("test", "t2")
    assert r.exit_code == 1 and "t2 would not get the message: disabled" in r.stderr
    assert cli("test", "nosuch").exit_code == 3
    add(cli, "t1")
    quiet = make_system(tmp_path, kernel, loglevel=1)
    r = cli("test", system_=quiet)
    assert r.exit_code == 1 and "loglevel 8" in r.stderr
    assert not kmsg_lines(system)
    assert cli("test", "--level", "9").exit_code == 2


def test_down_interface_is_reported(cli: Cli, system: System) -> None:
    add(cli, "t1")
    flags = system.sysfs / "class/net/eth0/flags"
    flags.write_text("0x1002\n")
    r = cli("test", "t1")
    assert r.exit_code == 1 and "eth0 is down" in r.stderr
    flags.write_text("0x1003\n")
    assert cli("test", "t1").exit_code == 0


def test_kmsg_not_writable(cli: Cli, system: System, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    add(cli, "t1")
    real = os.open

    def refuse(path: object, flags: int, *a: object) -> int:
        if str(path) == str(system.dev_kmsg):
            raise OSError(errno.EPERM, "Operation not permitted")
        return real(path, flags, *a)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refuse)
    r = cli("test")
    assert r.exit_code == 77 and "printk_devkmsg" in r.stderr


def test_expect_listen_udp_confirms_arrival(cli: Cli, system: System,
                                            collector: Callable[..., None]) -> None:
    add(cli, "t1")
    port = free_udp_port()

    def deliver(data: bytes) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"noise", ("127.0.0.1", port))
            s.sendto(data, ("127.0.0.1", port))

    collector(deliver)
    r = cli("test", "--expect-listen", f"udp:127.0.0.1:{port}", "--timeout", "5")
    assert r.exit_code == 0, r
    assert re.search(r"^arrived: UDP 127\.0\.0\.1:\d+ from 127\.0\.0\.1:\d+ after [\d.]+ s$",
                     r.stdout, re.M), r.stdout


def test_expect_listen_dir_confirms_arrival(cli: Cli, system: System, tmp_path: Path,
                                            collector: Callable[..., None]) -> None:
    add(cli, "t1")
    out = tmp_path / "listen"
    out.mkdir()
    log = out / "192.0.2.10.log"

    def deliver(data: bytes) -> None:
        with open(log, "ab") as f:
            f.write(data + b"\n")

    collector(deliver)
    r = cli("test", "--expect-listen", str(out))
    assert r.exit_code == 0, r
    assert f"arrived: {log} after" in r.stdout


def test_expect_listen_timeout(cli: Cli, system: System, tmp_path: Path) -> None:
    add(cli, "t1")
    out = tmp_path / "listen"
    out.mkdir()
    r = cli("test", "--expect-listen", str(out), "--timeout", "0.2")
    assert r.exit_code == 1, r
    assert "did not arrive" in r.stderr and "doctor" in r.stderr


def test_expect_listen_port_in_use(cli: Cli) -> None:
    add(cli, "t1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        r = cli("test", "--expect-listen", f"udp:127.0.0.1:{port}")
    assert r.exit_code == 1 and "in use" in r.stderr


def test_transmit_errors_growth_is_reported(cli: Cli, tmp_path: Path) -> None:
    kernel = Emulation(tmp_path / "config6", {"eth0": Device("eth0", ipv4=["192.0.2.10"])},
                        profile="6.18")
    system = make_system(tmp_path, kernel)
    r = cli("add", "t1", "--remote-ip", "192.0.2.1", *EXPLICIT, system_=system)
    assert r.exit_code == 0, r

    real = kmsgtest.write_kmsg

    def write_and_drop(system_: System, level: int, text: str) -> None:
        real(system_, level, text)
        kernel._set("t1/transmit_errors", "2")  # the driver dropped it

    mp = pytest.MonkeyPatch()
    mp.setattr(kmsgtest, "write_kmsg", write_and_drop)
    try:
        r = cli("test", system_=system)
    finally:
        mp.undo()
    assert r.exit_code == 1, r
    assert "t1: transmit_errors grew by 2" in r.stderr

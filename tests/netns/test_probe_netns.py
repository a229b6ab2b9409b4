"""The scapy probe leaves the machine as found: no promiscuous mode, no socket, no log line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.netns.conftest import C_MAC, H_MAC
from tests.netns.lab import Lab

pytestmark = pytest.mark.netns
ROOT = Path(__file__).resolve().parents[2]


class KernelLog:
    """Records appended to the kernel log (/dev/kmsg) after this object was created."""

    def __init__(self) -> None:
        self._fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        os.lseek(self._fd, 0, os.SEEK_END)

    def new_lines(self) -> list[str]:
        out = []
        while True:
            try:
                record = os.read(self._fd, 8192)
            except BlockingIOError:
                return out
            except BrokenPipeError:  # overwritten while reading: go on with what follows
                continue
            out.append(record.decode(errors="replace").split(";", 1)[-1].strip())

    def close(self) -> None:
        os.close(self._fd)


def promiscuity(lab: Lab, ns: str, ifname: str) -> int:
    out = lab.ip(ns, "-d", "link", "show", ifname).split()
    return int(out[out.index("promiscuity") + 1])


def packet_sockets(lab: Lab, ns: str) -> list[str]:
    """The AF_PACKET sockets open in ``ns`` (one line each in /proc/net/packet)."""
    # thread-self: /proc/self/net is the namespace of the process's main thread.
    table = Path("/proc/thread-self/net/packet")
    return lab.in_netns(ns, lambda: table.read_text().splitlines()[1:])


@pytest.fixture
def pair(lab: Lab) -> tuple[Lab, str, str, str]:
    """H and the collector C; H's interface has a name no other test's namespace uses, so the
    kernel log (one for the whole machine) can be searched for it."""
    h, c = lab.netns("h"), lab.netns("c")
    ifname = f"pr{os.getpid() % 10**8}"
    lab.veth(h, ifname, c, "eth0", mac_a=H_MAC, mac_b=C_MAC)
    lab.addr(h, ifname, "10.0.0.1/24", "fd00::1/64")
    lab.addr(c, "eth0", "10.0.0.2/24", "fd00::2/64")
    return lab, h, c, ifname


@pytest.mark.skipif(not os.access("/dev/kmsg", os.R_OK), reason="needs /dev/kmsg")
def test_probe_does_not_make_the_interface_promiscuous(pair: tuple[Lab, str, str, str]) -> None:
    lab, h, _c, ifname = pair
    log = KernelLog()
    try:
        for remote, proto in (("10.0.0.2", "ARP"), ("fd00::2", "NDP")):
            res = lab.exec(h, [sys.executable, "-m", "netconsolectl", "resolve", remote],
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
            assert res.returncode == 0, res.stderr
            assert f"{proto} probe" in res.stdout and C_MAC in res.stdout
            assert res.stderr == ""  # scapy printed nothing on import
        assert promiscuity(lab, h, ifname) == 0
        assert packet_sockets(lab, h) == []
        ours = [line for line in log.new_lines() if ifname in line]
        assert not [line for line in ours if "promiscuous" in line], ours
        # The same check sees the line when the interface does go promiscuous.
        lab.ip(h, "link", "set", ifname, "promisc", "on")
        deadline = time.monotonic() + 2
        seen: list[str] = []
        while time.monotonic() < deadline and not seen:
            seen = [line for line in log.new_lines()
                    if ifname in line and "entered promiscuous mode" in line]
            time.sleep(0.05)
        assert seen
        lab.ip(h, "link", "set", ifname, "promisc", "off")
    finally:
        log.close()


INTERRUPTED = """
import _thread, sys, threading
from ipaddress import ip_address
from pathlib import Path
from netconsolectl.discover import solicit
threading.Timer(0.5, _thread.interrupt_main).start()
try:
    solicit.probe(sys.argv[1], sys.argv[2], ip_address("10.0.0.1"), ip_address("10.0.0.99"),
                  5.0, 3)
except KeyboardInterrupt:
    print("interrupted")
print(len(Path("/proc/self/net/packet").read_text().splitlines()) - 1)
"""


def test_ctrl_c_during_a_probe_leaves_no_socket(pair: tuple[Lab, str, str, str]) -> None:
    lab, h, _c, ifname = pair
    res = lab.exec(h, [sys.executable, "-c", INTERRUPTED, ifname, H_MAC],
                   env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=30)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["interrupted", "0"]  # no packet socket left in the namespace
    assert promiscuity(lab, h, ifname) == 0


def test_sigint_to_a_probing_resolve(pair: tuple[Lab, str, str, str]) -> None:
    lab, h, _c, ifname = pair
    proc = subprocess.Popen(
        ["ip", "netns", "exec", h, sys.executable, "-m", "netconsolectl", "resolve", "10.0.0.99",
         "--arp-timeout", "5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not packet_sockets(lab, h):
            time.sleep(0.05)
        assert packet_sockets(lab, h), "the probe never opened its socket"
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert packet_sockets(lab, h) == []
    assert promiscuity(lab, h, ifname) == 0

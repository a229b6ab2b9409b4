"""watch on a real kernel: two virtio NICs on a QEMU hub, the receiver in a namespace.

ncsend0 stays in the guest's namespace and sends; ncrecv0 moves into the namespace ``ncw``,
where a UDP socket receives (veth cannot carry netconsole: no netpoll, error 524). The steps:

1. watch applies a file naming only the collector; a message arrives;
2. ncrecv0's MAC changes, and the receiver talks to the sender (its ARP request carries the
   new MAC, which updates the sender's neighbour entry): watch rewrites remote_mac, and a
   message arrives (frames to the old MAC would be dropped by the receiving NIC);
3. ncsend0's virtio driver is unbound and bound again, the NIC renamed back and its address
   restored: 6.12 disabled the target when the device unregistered ("network logging stopped
   on interface ncsend0 as it unregistered"); watch enables it again, and a message arrives.

Runs last (files run in name order) and in-process (a thread): a watch subprocess would pay
the emulated start-up of typer, rich and pyroute2 again. Waits are generous: Python in the
guest is about 100x slower than on the host.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from netconsolectl.host.system import System
from netconsolectl.sender.configfs import ConfigFS
from netconsolectl.watch import Action, Watcher, WatchOptions
from tests.kernel.guest.conftest import LOOP_NICS, nic_by_mac, remove_target, sh

SEND, RECV = "ncsend0", "ncrecv0"
SEND_IP, RECV_IP = "192.168.77.1", "192.168.77.2"
RECV_NET = "192.168.77.0/24"  # same prefix as ncsend0's connected route, which wins on metric
NEW_RECV_MAC = "52:54:00:12:34:99"
PORT = 6666
NS = "ncw"
TARGET = "ncwatch"


def _enter(ns: str) -> None:
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(fd, 0x40000000) != 0:
            raise OSError(ctypes.get_errno(), f"setns {ns}")
    finally:
        os.close(fd)


class NsReceiver:
    """A UDP socket on RECV_IP:PORT inside ``ncw``, on a thread of its own."""

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.error: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(60), "receiver did not start"
        if self.error:
            raise self.error[0]

    def _run(self) -> None:
        try:
            _enter(NS)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((RECV_IP, PORT))
                s.settimeout(0.2)
                self.ready.set()
                while not self.stop.is_set():
                    try:
                        self.data.append(s.recv(65535))
                    except TimeoutError:
                        continue
        except BaseException as e:
            self.error.append(e)
            self.ready.set()

    def got(self, marker: str, timeout: float = 60) -> bool:
        needle = marker.encode()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(needle in d for d in list(self.data)):
                return True
            time.sleep(0.2)
        return False


def _from_receiver() -> None:
    """One datagram from the receiver to the sender: an ARP request with its current MAC."""
    def body() -> None:
        _enter(NS)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"hello", (SEND_IP, 9))

    t = threading.Thread(target=body)
    t.start()
    t.join(30)


def wait_for(cond: Callable[[], bool], what: str, actions: list[Action],
             timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.25)
    said = "\n".join(a.line() for a in actions)
    raise AssertionError(f"{what}: not within {timeout} s; watch said:\n{said}\n"
                         f"dmesg:\n{sh('dmesg | tail -20', check=False)}")


def test_watch_follows_a_mac_change_and_a_driver_rebind(netconsole: None,
                                                        kmsg: Callable[..., None],
                                                        tmp_path: Path) -> None:
    if not all(Path(f"/sys/class/net/{n}").exists() for n in LOOP_NICS):
        pytest.skip("the VM was booted without the two NICs on a QEMU hub")
    fs = ConfigFS()
    sh(f"ip netns add {NS} && ip link set {RECV} netns {NS}"
       f" && ip -n {NS} addr add {RECV_IP}/24 dev {RECV} && ip -n {NS} link set {RECV} up"
       f" && ip -n {NS} link set lo up")
    sh(f"ip addr add {SEND_IP}/24 dev {SEND} && ip link set {SEND} up")
    # Only ncsend0 leads to the receiver: while it is gone, the default route (slirp's eth0)
    # must not, or watch would rightly move the target there.
    sh(f"ip route add unreachable {RECV_NET} metric 4000")
    rx = NsReceiver()
    config = tmp_path / "watch.toml"
    config.write_text(f'[targets.{TARGET}]\nremote_ip = "{RECV_IP}"\nremote_port = {PORT}\n'
                      "extended = true\n")
    actions: list[Action] = []
    watcher = Watcher(System(), config, WatchOptions(revalidate=0), actions.append,
                      arp_timeout=3.0, arp_retries=5)
    failed: list[BaseException] = []
    started = threading.Event()

    def run() -> None:
        try:
            watcher.start()
            started.set()
            watcher.run()
        except BaseException as e:
            failed.append(e)
            started.set()
        finally:
            watcher.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert started.wait(300), "watch did not start"
        assert not failed, failed
        assert fs.exists(TARGET), actions
        assert (fs.read(f"{TARGET}/enabled"), fs.read(f"{TARGET}/dev_name"),
                fs.read(f"{TARGET}/local_ip")) == ("1", SEND, SEND_IP), actions
        old_mac = fs.read(f"{TARGET}/remote_mac")
        assert old_mac == LOOP_NICS[RECV], actions
        m1 = f"NCK-watch1-{uuid.uuid4().hex[:8]}"
        kmsg(m1)
        assert rx.got(m1), "the first message did not reach the receiver"

        # 2. The receiver's MAC changes; its next ARP request tells the sender.
        sh(f"ip -n {NS} link set {RECV} address {NEW_RECV_MAC} && ip -n {NS} neigh flush all")
        _from_receiver()
        wait_for(lambda: fs.read(f"{TARGET}/remote_mac") == NEW_RECV_MAC
                 and fs.read(f"{TARGET}/enabled") == "1"
                 and any(a.action == "changed" for a in actions), "remote_mac rewritten",
                 actions)
        m2 = f"NCK-watch2-{uuid.uuid4().hex[:8]}"
        kmsg(m2)
        assert rx.got(m2), "after the MAC change, the message did not reach the receiver"

        # 3. Driver unbound and bound again: the device unregisters and comes back.
        dev = os.path.basename(os.readlink(f"/sys/class/net/{SEND}/device"))
        before = len(actions)
        Path("/sys/bus/virtio/drivers/virtio_net/unbind").write_text(dev)
        wait_for(lambda: fs.read(f"{TARGET}/enabled") == "0", "the kernel disabling the target",
                 actions, timeout=60)
        assert "as it unregistered" in sh("dmesg | tail -50")
        Path("/sys/bus/virtio/drivers/virtio_net/bind").write_text(dev)
        # The NIC registers as ethN (net.ifnames=0); the guest's udev may still be handling
        # it, so it is found by its MAC and renamed until the name sticks.
        mac = LOOP_NICS[SEND]
        assert mac is not None

        def renamed() -> bool:
            name = nic_by_mac(mac)
            if name is None:
                return False
            if name != SEND:
                sh(f"ip link set {name} name {SEND}", check=False)
            return nic_by_mac(mac) == SEND

        wait_for(renamed, "the NIC coming back as ncsend0", actions, timeout=60)
        sh(f"ip addr add {SEND_IP}/24 dev {SEND} && ip link set {SEND} up")
        # watch reports an action after its configfs writes: wait for both, as in step 2
        wait_for(lambda: fs.read(f"{TARGET}/enabled") == "1"
                 and fs.read(f"{TARGET}/dev_name") == SEND
                 and any("enabled" in a.changes for a in actions[before:]),
                 "watch enabling the target", actions)
        assert fs.read(f"{TARGET}/remote_mac") == NEW_RECV_MAC, actions
        assert any("enabled" in a.changes for a in actions[before:]), actions[before:]
        m3 = f"NCK-watch3-{uuid.uuid4().hex[:8]}"
        kmsg(m3)
        assert rx.got(m3), (
            "after the rebind, the message did not reach the receiver; watch said:\n"
            + "\n".join(a.line() for a in actions) + "\nconfigfs: "
            + str({a: fs.read(f"{TARGET}/{a}") for a in ("enabled", "dev_name", "local_ip",
                                                           "remote_mac", "local_mac")})
            + "\n" + sh("ip -br link; ip route; dmesg | tail -15", check=False))
    finally:
        watcher.request_stop()
        thread.join(60)
        rx.stop.set()
        remove_target(fs, TARGET)
        sh(f"ip netns del {NS}; ip route del unreachable {RECV_NET} metric 4000",
           check=False)

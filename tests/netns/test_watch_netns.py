"""watch against real kernel networking: the network changes in a namespace, watch follows.

The target lives on the kernel-faithful fake configfs (veth has no netpoll, so no real target
could be enabled on it); everything else is real: watch's rtnetlink subscription, discovery's
route and neighbour lookups and ARP probes, the events the changes below cause. Where the real
kernel's netconsole would react to a device event itself (disable on unregister or enslave),
the test calls the fake's model of that notifier next to the real change.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from netconsolectl.host.system import System
from netconsolectl.sender.emulation import Device, Emulation
from netconsolectl.watch import Action, Watcher, WatchOptions, mark_disabled
from tests.conftest import make_system
from tests.netns.conftest import H_MAC, R2_MAC, R_MAC
from tests.netns.lab import NETNS_DIR, Lab

pytestmark = pytest.mark.netns

NEW_R_MAC = "02:00:00:00:00:fd"
CONFIG = """
[targets.collector]
remote_ip = "10.0.2.2"
extended = true
"""


@dataclass
class Running:
    """A Watcher running on a thread inside the host namespace."""

    watcher: Watcher
    kernel: Emulation
    system: System
    actions: list[Action] = field(default_factory=list)
    error: list[BaseException] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def attr(self, attr: str) -> str:
        return self.kernel.read(f"collector/{attr}")

    def wait_for(self, cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.error:
                raise self.error[0]
            if cond():
                return
            time.sleep(0.02)
        lines = "\n".join(a.line() for a in self.actions)
        raise AssertionError(f"{what} did not happen within {timeout} s; watch said:\n{lines}")

    def wait_action(self, action: str, timeout: float = 10.0) -> Action:
        """The first report of ``action`` after start (a write is reported after it is done)."""
        self.wait_for(lambda: any(a.action == action for a in self.actions[1:]),
                      f"a {action!r} report", timeout)
        return next(a for a in self.actions[1:] if a.action == action)

    def settle(self, seconds: float = 0.6) -> None:
        """Longer than the debounce bound: what watch would do after a change, it has done."""
        time.sleep(seconds)
        if self.error:
            raise self.error[0]


def _enter(ns: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(NETNS_DIR / ns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, 0x40000000) != 0:
            raise OSError(ctypes.get_errno(), f"setns({ns})")
    finally:
        os.close(fd)


@pytest.fixture
def world(lab: Lab, tmp_path: Path) -> Iterator[tuple[Lab, str, str, Callable[..., Running]]]:
    """H -- R -- C (the collector 10.0.2.2), and a second way out of H: eth1 to R2."""
    h, r, r2, c = lab.netns("h"), lab.netns("r"), lab.netns("r2"), lab.netns("c")
    lab.veth(h, "eth0", r, "eth0", mac_a=H_MAC, mac_b=R_MAC)
    lab.veth(h, "eth1", r2, "eth0", mac_a="02:00:00:00:01:01", mac_b=R2_MAC)
    lab.veth(r, "eth1", c, "eth0")
    lab.addr(h, "eth0", "10.0.1.1/24")
    lab.addr(h, "eth1", "10.0.3.1/24")
    lab.addr(r, "eth0", "10.0.1.254/24")
    lab.addr(r2, "eth0", "10.0.3.254/24")
    lab.addr(r, "eth1", "10.0.2.254/24")
    lab.addr(c, "eth0", "10.0.2.2/24")
    lab.sysctl(r, "net.ipv4.ip_forward", "1")
    lab.sysctl(h, "net.ipv4.conf.all.promote_secondaries", "1")
    lab.sysctl(h, "net.ipv4.conf.eth0.promote_secondaries", "1")
    lab.ip(h, "route", "add", "default", "via", "10.0.1.254")
    runs: list[Running] = []

    def start(config: str = CONFIG, **opts: float) -> Running:
        kernel = Emulation(tmp_path / "config", {
            "eth0": Device("eth0", mac=H_MAC, ipv4=["10.0.1.1"]),
            "eth1": Device("eth1", mac="02:00:00:00:01:01", ipv4=["10.0.3.1"]),
        })
        system = make_system(tmp_path, kernel)
        system.network = None  # the namespace's real network, not the fake kernel's devices
        path = tmp_path / "netconsolectl.toml"
        path.write_text(config)
        run = Running(Watcher(system, path, WatchOptions(**opts), arp_timeout=0.3),
                      kernel, system)
        run.watcher.report = run.actions.append

        def body() -> None:
            try:
                _enter(h)
                run.watcher.start()
                run.ready.set()
                run.watcher.run()
            except BaseException as e:
                run.error.append(e)
                run.ready.set()
            finally:
                run.watcher.close()

        run.thread = threading.Thread(target=body, name="watch", daemon=True)
        run.thread.start()
        assert run.ready.wait(30), "watch did not start"
        if run.error:
            raise run.error[0]
        runs.append(run)
        return run

    try:
        yield lab, h, r, start
    finally:
        for run in runs:
            run.watcher.request_stop()
            if run.thread is not None:
                run.thread.join(10)


def test_start_applies_the_file_with_discovery(world: tuple[Lab, str, str, Callable[..., Running]]
                                               ) -> None:
    _lab, _h, _r, start = world
    run = start()
    assert (run.attr("enabled"), run.attr("dev_name"), run.attr("local_ip"),
            run.attr("remote_mac")) == ("1", "eth0", "10.0.1.1", R_MAC)
    assert [a.action for a in run.actions] == ["created"]


def test_gateway_mac_change_rewrites_remote_mac(world: tuple[Lab, str, str,
                                                             Callable[..., Running]]) -> None:
    lab, h, r, start = world
    run = start()
    lab.ip(r, "link", "set", "eth0", "address", NEW_R_MAC)
    # The router announces itself (as a replaced router or a failover does): the host's
    # neighbour entry changes, which is the event watch follows.
    lab.neigh(h, "replace", "10.0.1.254", "lladdr", NEW_R_MAC, "dev", "eth0", "nud", "reachable")
    act = run.wait_action("changed")
    assert (run.attr("remote_mac"), run.attr("enabled")) == (NEW_R_MAC, "1")
    assert act.changes == [f"remote_mac {R_MAC} -> {NEW_R_MAC}"]
    assert "next hop 10.0.1.254 is now at " + NEW_R_MAC in act.why


def test_source_address_replaced_rewrites_local_ip(world: tuple[Lab, str, str,
                                                               Callable[..., Running]]) -> None:
    lab, h, _r, start = world
    run = start()
    lab.addr(h, "eth0", "10.0.1.7/24")
    lab.ip(h, "addr", "del", "10.0.1.1/24", "dev", "eth0")  # 10.0.1.7 is promoted
    run.wait_for(lambda: run.attr("local_ip") == "10.0.1.7", "local_ip rewritten")
    run.settle()
    assert (run.attr("enabled"), run.attr("dev_name"), run.attr("remote_mac")) == (
        "1", "eth0", R_MAC)


def test_default_route_moved_to_another_device(world: tuple[Lab, str, str,
                                                            Callable[..., Running]]) -> None:
    lab, h, _r, start = world
    run = start()
    lab.ip(h, "route", "replace", "default", "via", "10.0.3.254", "dev", "eth1")
    run.wait_action("changed")
    assert (run.attr("dev_name"), run.attr("enabled"), run.attr("local_ip"),
            run.attr("remote_mac")) == ("eth1", "1", "10.0.3.1", R2_MAC)


def test_device_deleted_and_recreated_is_enabled_again(
        world: tuple[Lab, str, str, Callable[..., Running]]) -> None:
    lab, h, r, start = world
    run = start()
    lab.ip(h, "link", "del", "eth0")  # both veth ends go
    run.kernel.unregister("eth0")  # what 6.12's netconsole does on NETDEV_UNREGISTER
    run.wait_for(lambda: any(a.action == "waiting" for a in run.actions), "watch waiting")
    assert run.attr("enabled") == "0"
    lab.veth(h, "eth0", r, "eth0", mac_a=H_MAC, mac_b=R_MAC)
    run.kernel.register(Device("eth0", mac=H_MAC, ipv4=["10.0.1.1"]))
    lab.addr(h, "eth0", "10.0.1.1/24")
    lab.addr(r, "eth0", "10.0.1.254/24")
    lab.ip(h, "route", "replace", "default", "via", "10.0.1.254")
    act = run.wait_action("changed")
    assert (run.attr("enabled"), run.attr("dev_name"), run.attr("local_ip"),
            run.attr("remote_mac")) == ("1", "eth0", "10.0.1.1", R_MAC)
    assert act.changes == ["enabled"]


def test_device_added_to_a_bridge_moves_the_target_to_the_bridge(
        world: tuple[Lab, str, str, Callable[..., Running]]) -> None:
    lab, h, _r, start = world
    run = start()
    lab.ip(h, "link", "add", "br0", "type", "bridge")
    lab.ip(h, "link", "set", "br0", "address", "02:00:00:00:00:b0")
    run.kernel.register(Device("br0", mac="02:00:00:00:00:b0", ipv4=["10.0.1.1"]))
    lab.ip(h, "link", "set", "eth0", "master", "br0")
    run.kernel.enslave("eth0", "br0")  # NETDEV_JOIN: the kernel disables the target
    lab.ip(h, "addr", "flush", "dev", "eth0")
    lab.ip(h, "link", "set", "br0", "up")
    lab.addr(h, "br0", "10.0.1.1/24")
    lab.ip(h, "route", "replace", "default", "via", "10.0.1.254")
    run.wait_for(lambda: run.attr("dev_name") == "br0" and run.attr("enabled") == "1",
                 "target moved to br0 and enabled")
    run.settle()
    assert (run.attr("dev_name"), run.attr("enabled"), run.attr("local_ip"),
            run.attr("remote_mac")) == ("br0", "1", "10.0.1.1", R_MAC)


def test_enslaved_with_addresses_left_on_the_port_moves_to_the_master(
        world: tuple[Lab, str, str, Callable[..., Running]]) -> None:
    lab, h, _r, start = world
    run = start()
    lab.ip(h, "link", "add", "br0", "type", "bridge")
    run.kernel.register(Device("br0", mac="02:00:00:00:00:b0"))
    lab.ip(h, "link", "set", "br0", "up")
    lab.ip(h, "link", "set", "eth0", "master", "br0")
    run.kernel.enslave("eth0", "br0")
    act = run.wait_action("changed")
    assert (run.attr("dev_name"), run.attr("enabled"), run.attr("local_ip"),
            run.attr("remote_mac")) == ("br0", "1", "10.0.1.1", R_MAC)
    assert "kept local_ip and remote_mac" in act.why


def test_a_persons_disable_is_left_alone(world: tuple[Lab, str, str, Callable[..., Running]]
                                         ) -> None:
    lab, h, r, start = world
    run = start()
    # What `netconsolectl disable collector` does (tests/unit covers the command itself).
    with run.system.lock():
        mark_disabled(run.system, "collector")
        run.kernel.write("collector/enabled", "0")
    lab.ip(h, "link", "del", "eth0")
    run.kernel.unregister("eth0")
    lab.veth(h, "eth0", r, "eth0", mac_a=H_MAC, mac_b=R_MAC)
    run.kernel.register(Device("eth0", mac=H_MAC, ipv4=["10.0.1.1"]))
    lab.addr(h, "eth0", "10.0.1.1/24")
    lab.addr(r, "eth0", "10.0.1.254/24")
    lab.ip(h, "route", "replace", "default", "via", "10.0.1.254")
    run.wait_for(lambda: any("netconsolectl disable" in a.why for a in run.actions),
                 "watch saying it leaves the target alone")
    run.settle()
    assert run.attr("enabled") == "0"
    assert run.watcher.writes == 0


def test_disabled_without_a_kernel_reason_is_left_alone(
        world: tuple[Lab, str, str, Callable[..., Running]]) -> None:
    lab, h, _r, start = world
    run = start()
    with run.system.lock():
        run.kernel.write("collector/enabled", "0")  # `echo 0 > enabled` by hand
    lab.neigh(h, "replace", "10.0.1.254", "lladdr", NEW_R_MAC, "dev", "eth0", "nud", "reachable")
    run.wait_for(lambda: any(a.action == "left" for a in run.actions), "watch leaving it")
    run.settle()
    assert (run.attr("enabled"), run.attr("remote_mac")) == ("0", R_MAC)


def test_a_burst_of_unrelated_events_costs_no_rewrite(
        world: tuple[Lab, str, str, Callable[..., Running]], tmp_path: Path) -> None:
    lab, h, _r, start = world
    run = start()
    ops = len(run.kernel.log)
    # 1,000 notifications about an interface and networks that no target uses.
    lab.veth(h, "x0", lab.netns("x"), "x0")
    batch = tmp_path / "burst.batch"
    lines = []
    for i in range(250):
        a, b = divmod(i, 250)
        lines.append(f"addr add 192.168.{a}.{b + 1}/32 dev x0")
        lines.append(f"route add 172.16.{i}.0/24 dev x0")
        lines.append(f"neigh add 192.168.100.{i + 1} lladdr 02:00:00:00:{i // 256:02x}:"
                     f"{i % 256:02x} dev x0")
        lines.append(f"route del 172.16.{i}.0/24 dev x0")
    batch.write_text("\n".join(lines) + "\n")
    lab.ip(h, "-batch", str(batch))
    run.settle(1.0)
    assert run.watcher.writes == 0
    assert len(run.kernel.log) == ops
    assert run.watcher.replans == 0
    assert run.attr("remote_mac") == R_MAC

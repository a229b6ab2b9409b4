"""watch on the fake: which events concern a target, what it leaves alone, the CLI contract.

The event decisions are tested with events as the kernel sends them (netns tier:
tests/netns/test_watch_netns.py); here they are fed by hand, so each rule is pinned alone.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from netconsolectl.host.system import System
from netconsolectl.sender.emulation import Device, Emulation
from netconsolectl.watch import Action, Watcher, WatchOptions, disabled_by_person
from netconsolectl.watch.events import NUD_REACHABLE, NUD_STALE, NetlinkEvent
from netconsolectl.watch.features import resumes_unregistered_targets
from tests.conftest import Cli
from tests.unit.test_sandbox import needs_netns

PINNED = """
[targets.t1]
remote_ip = "192.0.2.1"
dev_name = "eth0"
local_ip = "192.0.2.10"
remote_mac = "02:00:00:00:00:01"
"""
GW_MAC = "02:00:00:00:00:01"


@pytest.fixture
def watcher(system: System, tmp_path: Path) -> Watcher:
    path = tmp_path / "nc.toml"
    path.write_text(PINNED)
    w = Watcher(system, path, WatchOptions())
    w.actions = []  # type: ignore[attr-defined]
    w.report = w.actions.append  # type: ignore[attr-defined]
    from netconsolectl.declarative.config import load

    w._apply(load(path), why="test")
    b = w.bound["t1"]
    b.index, b.next_hop, b.up = 7, "192.0.2.1", True  # as if discovered on interface 7
    return w


def test_start_applies_the_file(watcher: Watcher, kernel: Emulation) -> None:
    assert kernel.read("t1/enabled") == "1"
    assert [a.action for a in watcher.actions] == ["created"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(("event", "concerned"), [
    (NetlinkEvent("neigh", index=7, address="192.0.2.1", lladdr="02:00:00:00:00:99",
           state=NUD_REACHABLE), True),
    (NetlinkEvent("neigh", index=7, address="192.0.2.1", lladdr=GW_MAC, state=NUD_STALE), False),
    (NetlinkEvent("neigh", index=7, address="192.0.2.1", lladdr="02:00:00:00:00:99", state=0x20),
     False),  # NUD_FAILED: no MAC to use
    (NetlinkEvent("neigh", index=8, address="192.0.2.1", lladdr="02:00:00:00:00:99",
           state=NUD_REACHABLE), False),  # another interface
    (NetlinkEvent("neigh", index=7, address="192.0.2.9", lladdr="02:00:00:00:00:99",
           state=NUD_REACHABLE), False),  # another neighbour
    (NetlinkEvent("route", family=socket.AF_INET, prefix="0.0.0.0/0"), True),
    (NetlinkEvent("route", family=socket.AF_INET, prefix="192.0.2.0/24"), True),
    (NetlinkEvent("route", family=socket.AF_INET, prefix="198.51.100.0/24"), False),
    (NetlinkEvent("route", family=socket.AF_INET6, prefix="::/0"), False),
    (NetlinkEvent("addr", index=7, address="192.0.2.11"), True),
    (NetlinkEvent("addr", index=9, address="198.51.100.3"), False),
    (NetlinkEvent("addr", new=False, index=9, address="192.0.2.10"), True),  # our source, elsewhere
    (NetlinkEvent("link", index=7, name="eth0", up=True), False),  # nothing that matters changed
    (NetlinkEvent("link", index=7, name="eth0", up=False), True),
    (NetlinkEvent("link", index=7, name="eth0", up=True, master=12), True),
    (NetlinkEvent("link", new=False, index=7, name="eth0"), True),
    (NetlinkEvent("link", index=9, name="eth1", up=True), False),
    (NetlinkEvent("overrun"), True),
])
def test_which_events_concern_a_target(watcher: Watcher, event: NetlinkEvent,
                                       concerned: bool) -> None:
    watcher.feed([event])
    assert ("t1" in watcher._dirty) is concerned


def test_a_thousand_unrelated_events_mark_nothing(watcher: Watcher) -> None:
    events = []
    for i in range(250):
        events += [
            NetlinkEvent("addr", index=20, address=f"198.51.100.{i}"),
            NetlinkEvent("route", family=socket.AF_INET, prefix=f"10.{i}.0.0/16"),
            NetlinkEvent("neigh", index=20, address=f"198.51.100.{i}", lladdr="02:00:00:00:00:05",
                  state=NUD_REACHABLE),
            NetlinkEvent("link", index=20, name="x0", up=True),
        ]
    watcher.feed(events)
    assert watcher._dirty == {}


def test_kernel_dropped_target_is_enabled_again(watcher: Watcher, kernel: Emulation) -> None:
    kernel.unregister("eth0")
    watcher.feed([NetlinkEvent("link", new=False, index=7, name="eth0")])
    kernel.register(Device("eth0", ipv4=["192.0.2.10"]))
    watcher.feed([NetlinkEvent("link", index=8, name="eth0", up=True)])
    watcher.flush()
    assert kernel.read("t1/enabled") == "1"
    assert watcher.actions[-1].changes == ["enabled"]  # type: ignore[attr-defined]


def test_disabled_by_hand_is_left_alone(watcher: Watcher, kernel: Emulation) -> None:
    with watcher.system.lock():
        kernel.write("t1/enabled", "0")
    watcher.feed([NetlinkEvent("link", index=7, name="eth0", up=False)])
    watcher.flush()
    assert kernel.read("t1/enabled") == "0"
    assert watcher.actions[-1].action == "left"  # type: ignore[attr-defined]


def test_a_kernel_that_resumes_targets_is_left_to_do_it(watcher: Watcher, kernel: Emulation,
                                                       system: System) -> None:
    (system.proc / "sys/kernel/osrelease").write_text("7.0.0-1-amd64\n")
    kernel.unregister("eth0")
    watcher.feed([NetlinkEvent("link", new=False, index=7, name="eth0")])
    kernel.register(Device("eth0", ipv4=["192.0.2.10"]))
    watcher.feed([NetlinkEvent("link", index=8, name="eth0", up=True)])
    watcher.flush()
    assert kernel.read("t1/enabled") == "0"
    assert "this kernel resumes it itself" in watcher.actions[-1].why  # type: ignore[attr-defined]


@pytest.mark.parametrize(("release", "resumes"), [
    ("6.12.57+deb13-amd64", False), ("6.19.1", False), ("7.0.0-rc1", True), ("7.1.2", True),
    (None, False),
])
def test_which_kernels_resume_targets(system: System, release: str | None,
                                      resumes: bool) -> None:
    if release is not None:
        (system.proc / "sys/kernel/osrelease").write_text(release + "\n")
    assert resumes_unregistered_targets(system) is resumes


def test_action_json_shape() -> None:
    a = Action("t1", "changed", "next hop 192.0.2.1 is now at 02:00:00:00:00:99",
               ["remote_mac 02:00:00:00:00:01 -> 02:00:00:00:00:99"], time=0.0)
    assert a.to_json() == {
        "time": "1970-01-01T00:00:00.000Z", "target": "t1", "action": "changed",
        "changes": ["remote_mac 02:00:00:00:00:01 -> 02:00:00:00:00:99"],
        "why": "next hop 192.0.2.1 is now at 02:00:00:00:00:99", "error": None,
    }
    assert a.line() == ("t1: changed: remote_mac 02:00:00:00:00:01 -> 02:00:00:00:00:99 "
                        "(next hop 192.0.2.1 is now at 02:00:00:00:00:99)")
    json.dumps(a.to_json())


# -- the CLI ----------------------------------------------------------------------------------


def test_invalid_file_fails_as_apply_does_and_changes_nothing(cli: Cli, tmp_path: Path,
                                                              kernel: Emulation) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[targets.t1]\nremote_ip = "192.0.2.999"\n')
    applied = cli("apply", str(bad))
    watched = cli("watch", str(bad))
    assert watched.exit_code == applied.exit_code == 2
    assert watched.stderr == applied.stderr
    assert len(watched.stderr.strip().splitlines()) == 1
    assert kernel.listdir() == []


def test_disable_is_remembered_until_enable_or_apply(cli: Cli, system: System,
                                                      tmp_path: Path) -> None:
    path = tmp_path / "nc.toml"
    path.write_text(PINNED)
    assert cli("apply", str(path)).exit_code == 0
    assert cli("disable", "t1").exit_code == 0
    assert disabled_by_person(system, "t1")
    assert cli("disable", "t1").exit_code == 0  # idempotent, still remembered
    assert disabled_by_person(system, "t1")
    assert cli("enable", "t1").exit_code == 0
    assert not disabled_by_person(system, "t1")
    assert cli("disable", "t1").exit_code == 0
    assert cli("apply", str(path)).exit_code == 0
    assert not disabled_by_person(system, "t1")
    assert cli("disable", "t1", "--dry-run").exit_code == 0
    assert not disabled_by_person(system, "t1")


def test_watch_has_help(cli: Cli) -> None:
    r = cli("watch", "--help")
    assert r.exit_code == 0
    for opt in ("--json", "--heartbeat", "--revalidate"):
        assert opt in r.stdout


# -- issue 23 item 2: a target whose creation failed is tried again -----------------------------

LATE = """
[targets.late]
remote_ip = "192.0.2.1"
dev_name = "eth7"
"""


def test_retry_delay_doubles_from_one_second_to_a_minute() -> None:
    from netconsolectl.watch.core import retry_delay

    assert [retry_delay(n) for n in range(1, 10)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_failed_creation_is_retried_until_the_device_appears(system: System, kernel: Emulation,
                                                             tmp_path: Path) -> None:
    """The boot race: the NIC registers after watch started. Each attempt is said once, and
    the target comes up at the first retry after the device is there."""
    path = tmp_path / "late.toml"
    path.write_text(LATE)
    w = Watcher(system, path, WatchOptions())
    actions: list[Action] = []
    w.report = actions.append
    from netconsolectl.declarative.config import load

    w._apply(load(path), why="test")
    assert not kernel.exists("late")
    assert [a.action for a in actions] == ["failed"]
    b = w.bound["late"]
    assert b.waiting and b.attempts == 1
    first = b.retry_at
    assert w.retry_due(first - 0.5) == 0  # not yet due
    assert w.retry_due(first) == 1
    w.flush()
    assert not kernel.exists("late") and b.attempts == 2
    assert [a.action for a in actions] == ["failed", "waiting"]
    assert "retry 1" in actions[-1].why and "next try in 2 s" in actions[-1].why
    # The NIC appears (with its address); the next retry creates and enables the target.
    kernel.devices["eth7"] = Device("eth7", mac="52:54:00:00:00:e7", ipv4=["192.0.2.70"])
    (system.sysfs / "class/net/eth7").mkdir(parents=True)
    assert w.retry_due(b.retry_at) == 1
    w.flush()
    assert kernel.read("late/enabled") == "1" and kernel.read("late/dev_name") == "eth7"
    assert actions[-1].action == "created" and b.waiting is None and b.attempts == 0
    assert w.next_retry() == float("inf")


@needs_netns
def test_watch_json_events_go_to_stdout(tmp_path: Path) -> None:
    """Issue 23 item 2: --json events were on stderr, mixed with the text messages."""
    import os
    import signal
    import subprocess
    import sys

    from tests.unit.test_sandbox import NETNS_SETUP

    root = tmp_path / "root"
    root.mkdir()
    path = tmp_path / "nc.toml"
    path.write_text('[targets.t1]\nremote_ip = "192.0.2.1"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETCONSOLECTL_")}
    p = subprocess.Popen(
        ["unshare", "-nm", "sh", "-c", NETNS_SETUP, "sh", sys.executable, "-m",
         "netconsolectl", "--configfs-root", str(root), "watch", str(path), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert p.stderr is not None
    try:
        for line in p.stderr:  # said once the file is applied and the events are out
            if "watching 1 target" in line:
                break
    finally:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert "{" not in err and "stopped watching" in err
    event = json.loads(out.splitlines()[0])
    assert (event["target"], event["action"]) == ("t1", "created")
    assert len(out.splitlines()) == 1  # nothing but the events on stdout


def _watch_on(tmp_path: Path, profile: str, config: str) -> tuple[Watcher, Emulation]:
    from netconsolectl.declarative.config import load
    from tests.conftest import default_devices, make_system

    kernel = Emulation(tmp_path / "config", default_devices(), profile=profile)
    system = make_system(tmp_path, kernel)
    (system.proc / "sys/kernel/osrelease").write_text(kernel.kernel_release() + "\n")
    path = tmp_path / "nc.toml"
    path.write_text(config)
    w = Watcher(system, path, WatchOptions())
    w.actions = []  # type: ignore[attr-defined]
    w.report = w.actions.append  # type: ignore[attr-defined]
    w._apply(load(path), why="test")
    b = w.bound["t1"]
    b.index, b.up = 7, True
    return w, kernel


def test_the_kernels_own_resume_is_reported(tmp_path: Path) -> None:
    """Issue 22: on 7.x watch never reported the kernel's resume of a target whose device
    came back (the tier's watch test waited for it in vain)."""
    watcher, kernel = _watch_on(tmp_path, "7.3", PINNED)
    kernel.unregister("eth0")
    watcher.feed([NetlinkEvent("link", new=False, index=7, name="eth0")])
    watcher.flush()
    assert watcher.actions[-1].action == "left"  # type: ignore[attr-defined]
    assert kernel.deactivated("t1")
    kernel.register(Device("eth0", mac="52:54:00:12:34:56", ipv4=["192.0.2.10"]))
    watcher.feed([NetlinkEvent("link", index=8, name="eth0", up=True)])
    writes = watcher.writes
    watcher.flush()
    last = watcher.actions[-1]  # type: ignore[attr-defined]
    assert (last.action, last.changes) == ("resumed", ["enabled"]), watcher.actions  # type: ignore[attr-defined]
    assert "the kernel resumed it when eth0 registered again" in last.why
    assert watcher.writes == writes and kernel.read("t1/enabled") == "1"


def test_resume_does_not_take_another_devices_source(tmp_path: Path) -> None:
    """Issue 22: at the kernel's resume, the returning device has no address yet; planning
    then found the collector through another device and wrote that device's source address.
    The resumed target is left where the kernel put it."""
    config = '[targets.t1]\nremote_ip = "192.0.2.1"\nremote_mac = "02:00:00:00:00:01"\n'
    watcher, kernel = _watch_on(tmp_path, "7.3", config)
    assert kernel.read("t1/dev_name") == "eth0"
    assert kernel.read("t1/local_ip") == "192.0.2.10"
    kernel.unregister("eth0")
    (watcher.system.sysfs / "class/net/eth0").rmdir()
    watcher.feed([NetlinkEvent("link", new=False, index=7, name="eth0")])
    watcher.flush()
    # eth0 comes back without its address; br0 now has the collector's prefix.
    kernel.devices["br0"].ipv4 = ["192.0.2.99"]
    kernel.register(Device("eth0", mac="52:54:00:12:34:56"))
    (watcher.system.sysfs / "class/net/eth0").mkdir()
    watcher.feed([NetlinkEvent("link", index=8, name="eth0", up=True)])
    watcher.flush()
    assert (kernel.read("t1/dev_name"), kernel.read("t1/local_ip")) == ("eth0", "192.0.2.10")
    assert kernel.read("t1/enabled") == "1"

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
from netconsolectl.watch.events import NUD_REACHABLE, NUD_STALE, Event
from netconsolectl.watch.features import resumes_unregistered_targets
from tests.conftest import Cli

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
    (Event("neigh", index=7, address="192.0.2.1", lladdr="02:00:00:00:00:99",
           state=NUD_REACHABLE), True),
    (Event("neigh", index=7, address="192.0.2.1", lladdr=GW_MAC, state=NUD_STALE), False),
    (Event("neigh", index=7, address="192.0.2.1", lladdr="02:00:00:00:00:99", state=0x20),
     False),  # NUD_FAILED: no MAC to use
    (Event("neigh", index=8, address="192.0.2.1", lladdr="02:00:00:00:00:99",
           state=NUD_REACHABLE), False),  # another interface
    (Event("neigh", index=7, address="192.0.2.9", lladdr="02:00:00:00:00:99",
           state=NUD_REACHABLE), False),  # another neighbour
    (Event("route", family=socket.AF_INET, prefix="0.0.0.0/0"), True),
    (Event("route", family=socket.AF_INET, prefix="192.0.2.0/24"), True),
    (Event("route", family=socket.AF_INET, prefix="198.51.100.0/24"), False),
    (Event("route", family=socket.AF_INET6, prefix="::/0"), False),
    (Event("addr", index=7, address="192.0.2.11"), True),
    (Event("addr", index=9, address="198.51.100.3"), False),
    (Event("addr", new=False, index=9, address="192.0.2.10"), True),  # our source, elsewhere
    (Event("link", index=7, name="eth0", up=True), False),  # nothing that matters changed
    (Event("link", index=7, name="eth0", up=False), True),
    (Event("link", index=7, name="eth0", up=True, master=12), True),
    (Event("link", new=False, index=7, name="eth0"), True),
    (Event("link", index=9, name="eth1", up=True), False),
    (Event("overrun"), True),
])
def test_which_events_concern_a_target(watcher: Watcher, event: Event, concerned: bool) -> None:
    watcher.feed([event])
    assert ("t1" in watcher._dirty) is concerned


def test_a_thousand_unrelated_events_mark_nothing(watcher: Watcher) -> None:
    events = []
    for i in range(250):
        events += [
            Event("addr", index=20, address=f"198.51.100.{i}"),
            Event("route", family=socket.AF_INET, prefix=f"10.{i}.0.0/16"),
            Event("neigh", index=20, address=f"198.51.100.{i}", lladdr="02:00:00:00:00:05",
                  state=NUD_REACHABLE),
            Event("link", index=20, name="x0", up=True),
        ]
    watcher.feed(events)
    assert watcher._dirty == {}


def test_kernel_dropped_target_is_enabled_again(watcher: Watcher, kernel: Emulation) -> None:
    kernel.unregister("eth0")
    watcher.feed([Event("link", new=False, index=7, name="eth0")])
    kernel.register(Device("eth0", ipv4=["192.0.2.10"]))
    watcher.feed([Event("link", index=8, name="eth0", up=True)])
    watcher.flush()
    assert kernel.read("t1/enabled") == "1"
    assert watcher.actions[-1].changes == ["enabled"]  # type: ignore[attr-defined]


def test_disabled_by_hand_is_left_alone(watcher: Watcher, kernel: Emulation) -> None:
    with watcher.system.lock():
        kernel.write("t1/enabled", "0")
    watcher.feed([Event("link", index=7, name="eth0", up=False)])
    watcher.flush()
    assert kernel.read("t1/enabled") == "0"
    assert watcher.actions[-1].action == "left"  # type: ignore[attr-defined]


def test_a_kernel_that_resumes_targets_is_left_to_do_it(watcher: Watcher, kernel: Emulation,
                                                       system: System) -> None:
    (system.proc / "sys/kernel/osrelease").write_text("7.0.0-1-amd64\n")
    kernel.unregister("eth0")
    watcher.feed([Event("link", new=False, index=7, name="eth0")])
    kernel.register(Device("eth0", ipv4=["192.0.2.10"]))
    watcher.feed([Event("link", index=8, name="eth0", up=True)])
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
    watcher.feed([Event("link", new=False, index=7, name="eth0")])
    watcher.flush()
    assert watcher.actions[-1].action == "left"  # type: ignore[attr-defined]
    assert kernel.deactivated("t1")
    kernel.register(Device("eth0", mac="52:54:00:12:34:56", ipv4=["192.0.2.10"]))
    watcher.feed([Event("link", index=8, name="eth0", up=True)])
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
    watcher.feed([Event("link", new=False, index=7, name="eth0")])
    watcher.flush()
    # eth0 comes back without its address; br0 now has the collector's prefix.
    kernel.devices["br0"].ipv4 = ["192.0.2.99"]
    kernel.register(Device("eth0", mac="52:54:00:12:34:56"))
    (watcher.system.sysfs / "class/net/eth0").mkdir()
    watcher.feed([Event("link", index=8, name="eth0", up=True)])
    watcher.flush()
    assert (kernel.read("t1/dev_name"), kernel.read("t1/local_ip")) == ("eth0", "192.0.2.10")
    assert kernel.read("t1/enabled") == "1"

"""Declarative apply on the kernel-faithful fake: library and command line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from netconsolectl.declarative.apply import apply_config, diff
from netconsolectl.declarative.config import loads
from netconsolectl.errors import KernelRefused
from netconsolectl.host.system import System
from netconsolectl.sender.emulation import Emulation
from netconsolectl.sender.setup import read_live
from netconsolectl.sender.spec import TargetSpec
from tests.conftest import Cli, default_devices, make_system

T1 = """\
[targets.t1]
remote_ip = "192.0.2.1"
dev_name = "eth0"
local_ip = "192.0.2.10"
remote_mac = "02:00:00:00:00:01"
"""

T2 = """\
[targets.t2]
remote_ip = "2001:db8::1"
remote_port = 514
dev_name = "eth0"
local_ip = "2001:db8::10"
remote_mac = "02:00:00:00:00:02"
extended = true
release = true

[targets.t2.userdata]
host = "web1"
rack = "r7"
"""


def write(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def add(cli: Cli, name: str, *extra: str) -> None:
    r = cli("add", name, "--remote-ip", "192.0.2.1", "--dev", "eth0", "--local-ip",
            "192.0.2.10", "--remote-mac", "02:00:00:00:00:01", *extra)
    assert r.exit_code == 0, r


# -- library ----------------------------------------------------------------------------------


def test_apply_creates_then_changes_nothing(system: System, kernel: Emulation) -> None:
    config = loads(T1 + "\n" + T2)
    ap = apply_config(system, config)
    assert [(i.name, i.action, i.failed) for i in ap.items] == [
        ("t1", "create", False), ("t2", "create", False)]
    assert ap.changes and not ap.failures
    assert kernel.read("t1/enabled") == "1"
    assert kernel.read("t2/remote_ip") == "2001:db8::1"
    assert kernel.read("t2/release") == "1" and kernel.read("t2/extended") == "1"
    assert kernel.read("t2/userdata/rack/value") == "r7"
    again = apply_config(system, config)
    assert [i.action for i in again.items] == ["unchanged", "unchanged"]
    assert not again.changes


def test_ipv6_spelling_does_not_count_as_a_change(system: System, kernel: Emulation) -> None:
    apply_config(system, loads(T2))
    spelled = T2.replace('"2001:db8::1"', '"2001:DB8:0:0::0001"').replace(
        '"02:00:00:00:00:02"', '"02:00:00:00:00:02"'.upper())
    ap = apply_config(system, loads(spelled))
    assert [i.action for i in ap.items] == ["unchanged"]


def test_change_writes_only_what_differs_around_a_disable(system: System,
                                                          kernel: Emulation) -> None:
    apply_config(system, loads(T1))
    ap = apply_config(system, loads(T1 + "remote_port = 514\n"), dry_run=True)
    item = ap.items[0]
    assert item.action == "change" and item.changes == ["remote_port 6666 -> 514"]
    assert item.plan is not None
    assert [(o.kind, o.attr, o.value) for o in item.plan.ops] == [
        ("write", "enabled", "0"), ("write", "remote_port", "514"), ("write", "enabled", "1")]
    assert kernel.read("t1/remote_port") == "6666"  # dry run
    apply_config(system, loads(T1 + "remote_port = 514\n"))
    assert kernel.read("t1/remote_port") == "514" and kernel.read("t1/enabled") == "1"


def test_userdata_table_is_the_complete_set(system: System, kernel: Emulation,
                                            cli: Cli) -> None:
    add(cli, "t1", "--userdata", "old=1", "--userdata", "keep=same", "--userdata", "chg=a")
    text = T1 + '[targets.t1.userdata]\nkeep = "same"\nchg = "b"\nnew = "n"\n'
    ap = apply_config(system, loads(text))
    assert ap.items[0].changes == ["userdata old removed", "userdata chg changed",
                                   "userdata new added"]
    plan = ap.items[0].plan
    assert plan is not None
    assert all(o.attr != "enabled" for o in plan.ops)  # userdata changes while enabled
    assert sorted(kernel.listdir("t1/userdata")) == ["chg", "keep", "new"]
    assert kernel.read("t1/userdata/chg/value") == "b"


def test_enabled_false_disables(system: System, kernel: Emulation) -> None:
    apply_config(system, loads(T1))
    ap = apply_config(system, loads(T1 + "enabled = false\n"))
    assert ap.items[0].changes == ["disabled"]
    assert kernel.read("t1/enabled") == "0"


def test_unset_keys_take_kernel_defaults(system: System, kernel: Emulation, cli: Cli) -> None:
    add(cli, "t1", "--extended", "--remote-port", "514", "--local-port", "7000")
    ap = apply_config(system, loads(T1))
    assert ap.items[0].changes == ["local_port 7000 -> 6665", "remote_port 514 -> 6666",
                                   "extended true -> false"]
    assert kernel.read("t1/extended") == "0"


def test_ipv6_to_ipv4_recreates_the_target(system: System, kernel: Emulation) -> None:
    apply_config(system, loads(T2))
    v4 = T2.replace("2001:db8::1", "192.0.2.1").replace("2001:db8::10", "192.0.2.10")
    ap = apply_config(system, loads(v4))
    assert not ap.failures, ap.failures
    assert kernel.read("t2/remote_ip") == "192.0.2.1"
    assert kernel.read("t2/userdata/host/value") == "web1"
    assert apply_config(system, loads(v4)).items[0].action == "unchanged"


def test_prune_keeps_boot_targets_and_absent_removes_them(system: System, kernel: Emulation,
                                                          cli: Cli) -> None:
    add(cli, "extra", "--userdata", "k=v")
    kernel.mkdir("cmdline0")  # as the kernel shows a boot target once attached
    ap = apply_config(system, loads(T1), prune=True)
    assert [(i.name, i.action) for i in ap.items] == [("t1", "create"), ("extra", "remove")]
    assert any("cmdline0" in n for n in ap.notes)
    assert not kernel.exists("extra") and kernel.exists("cmdline0")
    ap = apply_config(system, loads('[options]\nabsent = ["cmdline0", "gone"]\n' + T1))
    assert [(i.name, i.action) for i in ap.items] == [("t1", "unchanged"),
                                                      ("cmdline0", "remove")]
    assert not kernel.exists("cmdline0")


def test_prune_option_in_the_file(system: System, kernel: Emulation, cli: Cli) -> None:
    add(cli, "extra")
    apply_config(system, loads("[options]\nprune = true\n" + T1))
    assert not kernel.exists("extra")


def test_without_prune_other_targets_are_left_alone(system: System, kernel: Emulation,
                                                    cli: Cli) -> None:
    add(cli, "extra")
    ap = apply_config(system, loads(T1))
    assert [i.name for i in ap.items] == ["t1"]
    assert kernel.exists("extra")


def test_boot_targets_are_attached_and_managed(tmp_path: Path, kernel: Emulation) -> None:
    kernel.boot["cmdline0"] = {"enabled": "1", "dev_name": "eth0", "remote_ip": "192.0.2.1"}
    system = make_system(tmp_path, kernel, cmdline="netconsole=@/eth0,@192.0.2.1/")
    live = read_live(system)
    assert list(live) == ["cmdline0"]
    text = T1.replace("[targets.t1]", "[targets.cmdline0]")
    ap = apply_config(system, loads(text))
    assert ap.items[0].action == "change"
    assert kernel.read("cmdline0/enabled") == "1"


def test_a_failing_target_does_not_stop_the_others(system: System, kernel: Emulation) -> None:
    bad = T1.replace("t1", "bad").replace('"eth0"', '"nosuch0"')
    slave = T1.replace("t1", "slave").replace('"eth0"', '"eth1"')
    ap = apply_config(system, loads(bad + "\n" + slave + "\n" + T2))
    assert [(i.name, i.failed) for i in ap.items] == [("bad", True), ("slave", True),
                                                      ("t2", False)]
    assert "no network device 'nosuch0'" in str(ap.items[0].error)
    assert "br0" in str(ap.items[1].error)
    assert not kernel.exists("bad") and not kernel.exists("slave")  # rolled back
    assert kernel.read("t2/enabled") == "1"
    assert ap.changes


def test_resolver_fills_what_the_file_leaves_out(system: System, kernel: Emulation) -> None:
    seen: list[str] = []

    def resolver(name: str, spec: TargetSpec) -> TargetSpec:
        seen.append(name)
        if name == "broken":
            raise KernelRefused("no answer from 192.0.2.1 on eth0")
        import ipaddress
        from dataclasses import replace

        return replace(spec, dev_name=spec.dev_name or "eth0",
                       local_ip=spec.local_ip or ipaddress.ip_address("192.0.2.10"),
                       remote_mac=spec.remote_mac or "02:00:00:00:00:09")

    text = ('[targets.auto]\nremote_ip = "192.0.2.1"\n'
            '[targets.broken]\nremote_ip = "192.0.2.1"\n' + T1)
    ap = apply_config(system, loads(text), resolver=resolver)
    # t1 is complete: it goes through the resolver too, which checks what it gives.
    assert seen == ["auto", "broken", "t1"]
    assert kernel.read("auto/remote_mac") == "02:00:00:00:00:09"
    assert ap.item("broken") is not None and ap.item("broken").failed  # type: ignore[union-attr]
    assert not kernel.exists("broken")
    assert kernel.exists("t1")


def test_console_loglevel_option(system: System) -> None:
    ap = apply_config(system, loads("[options]\nconsole_loglevel = 8\n"))
    assert ap.loglevel is not None and ap.loglevel.current == 7
    assert system.console_loglevel() == 8
    assert system.printk_path.read_text().split() == ["8", "4", "1", "7"]
    assert apply_config(system, loads("[options]\nconsole_loglevel = 8\n")).loglevel is None


def test_diff_ignores_attributes_the_kernel_lacks() -> None:
    from netconsolectl.sender.target import TargetState

    live = TargetState(
        name="t", enabled=True, dev_name="eth0", local_ip="192.0.2.10", local_port=6665,
        remote_ip="192.0.2.1", remote_port=6666, local_mac=None, remote_mac="ff:ff:ff:ff:ff:ff",
        extended=False, release=None, transmit_errors=None,
    )
    import ipaddress

    want = TargetSpec(remote_ip=ipaddress.ip_address("192.0.2.1"), release=False).with_defaults()
    patch, changes = diff(live, want)
    assert changes == [] and patch.release is None


# -- command line -----------------------------------------------------------------------------


def test_cli_apply_twice_detailed_exit_codes(cli: Cli, tmp_path: Path,
                                             kernel: Emulation) -> None:
    p = write(tmp_path, T1 + "\n" + T2)
    r = cli("apply", str(p), "--detailed-exitcode")
    assert r.exit_code == 2, r
    assert r.stdout.splitlines()[0].startswith("created t1")
    assert "2 created" in r.stderr
    r = cli("apply", str(p), "--detailed-exitcode")
    assert r.exit_code == 0, r
    assert r.stdout.splitlines() == ["unchanged t1", "unchanged t2"]
    r = cli("apply", str(p))
    assert r.exit_code == 0, r


def test_cli_apply_without_detailed_exit_code_is_zero_on_change(cli: Cli, tmp_path: Path
                                                                ) -> None:
    assert cli("apply", str(write(tmp_path, T1))).exit_code == 0


def test_cli_dry_run_prints_the_plan_and_writes_nothing(cli: Cli, tmp_path: Path,
                                                        kernel: Emulation) -> None:
    add(cli, "extra")
    p = write(tmp_path, T1 + "[options]\nconsole_loglevel = 8\n")
    r = cli("apply", str(p), "--dry-run", "--prune", "--detailed-exitcode")
    assert r.exit_code == 2, r
    base = kernel.base
    lines = r.stdout.splitlines()
    assert lines[0] == "create t1: remote 192.0.2.1:6666 via eth0"
    assert f"  mkdir {base}/t1" in lines
    assert "remove extra (not in the configuration)" in lines
    assert f"  rmdir {base}/extra" in lines
    assert lines[-2:] == ["change console loglevel 7 -> 8", "  echo 8 > "
                          f"{kernel.root.parent / 'proc/sys/kernel/printk'}"]
    assert not kernel.exists("t1") and kernel.exists("extra")


def test_cli_failure_exit_codes(cli: Cli, tmp_path: Path, kernel: Emulation) -> None:
    # nk0 passes the checks; the kernel refuses to enable a target on it (no netpoll).
    bad = T1.replace('"eth0"', '"nk0"')
    p = write(tmp_path, bad + "\n" + T2)
    r = cli("apply", str(p))
    assert r.exit_code == 1, r
    assert "netconsolectl: error: t1: cannot enable t1" in r.stderr
    assert "created t2" in r.stdout
    # A device that does not exist is refused before anything is written.
    p = write(tmp_path, T1.replace('"eth0"', '"nosuch0"'))
    r = cli("apply", str(p))
    assert r.exit_code == 1, r
    assert "netconsolectl: error: t1: there is no interface named nosuch0" in r.stderr
    assert not kernel.exists("t1")
    r = cli("apply", str(p), "--detailed-exitcode")
    assert r.exit_code == 1, r


def test_cli_invalid_file_writes_nothing(cli: Cli, tmp_path: Path, kernel: Emulation) -> None:
    p = write(tmp_path, T1 + "\n" + T2.replace("514", "99999"))
    r = cli("apply", str(p))
    assert r.exit_code == 2, r
    assert f"{p}:9: target 't2': invalid remote port 99999" in r.stderr
    assert kernel.listdir() == []
    r = cli("apply", str(p), "--detailed-exitcode")  # 2 would read as "changed"
    assert r.exit_code == 1, r
    r = cli("apply", str(tmp_path / "missing.toml"))
    assert r.exit_code == 2 and "no such configuration file" in r.stderr


def test_cli_unavailable_netconsole(cli: Cli, tmp_path: Path) -> None:
    from netconsolectl.sender.configfs import ConfigFS

    empty = tmp_path / "empty"
    empty.mkdir()
    system = make_system(tmp_path / "o", Emulation(tmp_path / "other", default_devices()))
    system.configfs = ConfigFS(empty)
    p = write(tmp_path, T1)
    r = cli("apply", str(p), system_=system)
    assert r.exit_code == 69, r
    r = cli("apply", str(p), "--dry-run", system_=system)
    assert r.exit_code == 0, r
    assert "planning against no live targets" in r.stderr
    assert r.stdout.startswith("create t1")


def test_cli_permission_failure_exit_code(cli: Cli, tmp_path: Path, kernel: Emulation,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    def refuse(rel: str) -> None:
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(kernel, "mkdir", refuse)
    r = cli("apply", str(write(tmp_path, T1)))
    assert r.exit_code == 77, r
    assert "run as root" in r.stderr


def test_cli_warns_when_the_loglevel_filters_errors(tmp_path: Path, kernel: Emulation,
                                                    cli: Cli) -> None:
    system = make_system(tmp_path, kernel, loglevel=3)
    r = cli("apply", str(write(tmp_path, T1)), system_=system)
    assert r.exit_code == 0, r
    assert "warning: console loglevel is 3" in r.stderr


def test_cli_apply_uses_discovery(cli: Cli, tmp_path: Path, kernel: Emulation,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import ipaddress

    import netconsolectl.discover as discover
    from netconsolectl.discover import Resolution

    calls: list[dict[str, Any]] = []

    def fake_resolve(remote_ip: object, **kw: Any) -> Resolution:
        calls.append(kw)
        return Resolution(
            remote_ip=ipaddress.ip_address("192.0.2.1"), dev_name="eth0", dev_source="route",
            local_ip=ipaddress.ip_address("192.0.2.10"), local_source="route",
            next_hop=ipaddress.ip_address("192.0.2.254"), next_hop_source="gateway",
            remote_mac="02:00:00:00:00:fe", mac_source="neighbour table (REACHABLE)",
            warnings=("something to know",),
        )

    monkeypatch.setattr(discover, "resolve", fake_resolve)
    p = write(tmp_path, '[options]\narp_timeout = 0.2\n[targets.auto]\nremote_ip = "192.0.2.1"\n')
    r = cli("apply", str(p), "--arp-retries", "5")
    assert r.exit_code == 0, r
    assert calls[0]["arp_timeout"] == 0.2 and calls[0]["arp_retries"] == 5
    assert ("auto: discovered dev eth0 (route), local IP 192.0.2.10 (route), next hop 192.0.2.254"
            in r.stderr)
    assert "warning: auto: something to know" in r.stderr
    assert kernel.read("auto/remote_mac") == "02:00:00:00:00:fe"
    r = cli("apply", str(p), "--detailed-exitcode")
    assert r.exit_code == 0, r  # re-resolved, same answer: nothing to do


# -- export and the round trip ----------------------------------------------------------------


def test_export_round_trip(cli: Cli, tmp_path: Path, kernel: Emulation) -> None:
    add(cli, "a", "--extended", "--userdata", "host=web1", "--userdata", "q=say \"hi\"\\")
    add(cli, "b", "--disabled", "--remote-port", "514")
    r = cli("add", "v6", "--remote-ip", "2001:db8::1", "--dev", "eth0", "--local-ip",
            "2001:db8::10", "--remote-mac", "02:00:00:00:00:03", "--release")
    assert r.exit_code == 0, r
    for fmt in ("toml", "json"):
        first = cli("export", "--format", fmt)
        assert first.exit_code == 0, first
        p = write(tmp_path, first.stdout, f"exported.{fmt}")
        for name in ("a", "b", "v6"):
            assert cli("remove", name).exit_code == 0
        r = cli("apply", str(p), "--detailed-exitcode")
        assert r.exit_code == 2, r
        second = cli("export", "--format", fmt)
        assert second.stdout == first.stdout
        assert cli("apply", str(p), "--detailed-exitcode").exit_code == 0


def test_export_shape(cli: Cli) -> None:
    add(cli, "a", "--userdata", "host=web1")
    r = cli("export", "--pin")
    assert r.stdout.splitlines()[2:] == [
        "",
        "[targets.a]",
        'remote_ip = "192.0.2.1"',
        "remote_port = 6666",
        'dev_name = "eth0"',
        'local_ip = "192.0.2.10"',
        "local_port = 6665",
        'remote_mac = "02:00:00:00:00:01"',
        "extended = true",  # turned on by --userdata
        "release = false",
        "enabled = true",
        "",
        "[targets.a.userdata]",
        'host = "web1"',
    ]
    import json

    data = json.loads(cli("export", "--format", "json").stdout)
    assert data["targets"]["a"]["remote_port"] == 6666


def test_export_empty_and_unavailable(cli: Cli, tmp_path: Path) -> None:
    r = cli("export")
    assert r.exit_code == 0 and "empty" in r.stderr
    from netconsolectl.sender.configfs import ConfigFS

    system = make_system(tmp_path / "o", Emulation(tmp_path / "other"))
    (tmp_path / "no-netconsole").mkdir()  # configfs without the netconsole module
    system.configfs = ConfigFS(tmp_path / "no-netconsole")
    assert cli("export", system_=system).exit_code == 69
    assert cli("export", "--format", "yaml").exit_code == 2


def test_configured_boot_target_from_module_options_is_attached_not_created(
        system: System, kernel: Emulation) -> None:
    # /proc/cmdline does not name it (netconsole=... came from modprobe.d), but the kernel
    # attaches `mkdir cmdline1` to the boot target, which is usually enabled: apply must change
    # it (disable, write, enable), never create it.
    text = T1.replace("[targets.t1]", "[targets.cmdline1]")
    dry = apply_config(system, loads(text), dry_run=True)
    assert dry.items[0].action == "create" and not kernel.exists("cmdline1")
    ap = apply_config(system, loads(text))
    assert ap.items[0].action == "change" and not ap.failures
    assert kernel.read("cmdline1/enabled") == "1"
    assert kernel.read("cmdline1/remote_mac") == "02:00:00:00:00:01"
    assert apply_config(system, loads(text)).items[0].action == "unchanged"


def test_cli_userdata_hostname_names_every_target(cli: Cli, tmp_path: Path,
                                                  kernel: Emulation) -> None:
    import socket

    p = write(tmp_path, T1 + 'extended = true\n[targets.t1.userdata]\nrack = "r7"\n')
    r = cli("apply", str(p), "--userdata-hostname")
    assert r.exit_code == 0, r
    assert kernel.read("t1/userdata/hostname/value") == socket.gethostname()
    assert kernel.read("t1/userdata/rack/value") == "r7"
    r = cli("apply", str(p), "--userdata-hostname", "--detailed-exitcode")
    assert r.exit_code == 0, r  # nothing left to change


def test_export_leaves_out_what_discovery_finds_the_same(cli: Cli) -> None:
    # The fake network routes 192.0.2.0/24 out of eth0 from 192.0.2.10, and its neighbour
    # table has 192.0.2.1 at 02:00:00:00:00:01.
    add(cli, "same")
    assert cli("add", "othermac", "--remote-ip", "192.0.2.1", "--remote-port", "7000",
               "--remote-mac", "02:00:00:00:00:99").exit_code == 0
    r = cli("export", "--format", "json")
    assert r.exit_code == 0, r
    targets = json.loads(r.stdout)["targets"]
    assert not {"dev_name", "local_ip", "remote_mac"} & set(targets["same"])
    assert targets["same"]["remote_ip"] == "192.0.2.1"
    # A MAC the neighbour table does not confirm is kept; the route's values still go.
    assert targets["othermac"]["remote_mac"] == "02:00:00:00:00:99"
    assert not {"dev_name", "local_ip"} & set(targets["othermac"])
    assert "same: left out dev_name, local_ip, remote_mac" in r.stderr
    pinned = json.loads(cli("export", "--format", "json", "--pin").stdout)["targets"]
    assert pinned["same"]["dev_name"] == "eth0" and pinned["same"]["local_ip"] == "192.0.2.10"
    assert pinned["same"]["remote_mac"] == "02:00:00:00:00:01"


def test_export_keeps_everything_when_the_route_disagrees(cli: Cli, system: System) -> None:
    from netconsolectl.declarative.export import rediscovered
    from netconsolectl.sender.target import Target

    add(cli, "a")
    live = Target(system.configfs, "a").state()
    assert system.network is not None
    with system.network() as net:
        assert rediscovered(net, live) == {"dev_name", "local_ip", "remote_mac"}
        # The target sends out of another device than the route: it is pinned whole.
        assert rediscovered(net, replace(live, dev_name="eth7")) == frozenset()
        # A broadcast MAC chosen on purpose stays; the route's values still go.
        assert rediscovered(net, replace(live, remote_mac="ff:ff:ff:ff:ff:ff")) == {
            "dev_name", "local_ip"}

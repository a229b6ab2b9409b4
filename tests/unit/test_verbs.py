"""sender/verbs: the target verbs as a library, and the refusals and warnings they carry.

Issue 21 item 4 (a runbook importing the package changes a target as the CLI does) and
issue 23 items 8 (userdata without the extended format), 9 (group collector addresses), 10
(duplicate targets) and 14 (the exit status after a change whose report cannot be written).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from netconsolectl.declarative.apply import apply_config
from netconsolectl.declarative.config import loads
from netconsolectl.errors import InvalidInput
from netconsolectl.host.doctor import run as doctor
from netconsolectl.host.system import System
from netconsolectl.sender.emulation import Emulation
from netconsolectl.sender.setup import read_live
from netconsolectl.sender.spec import TargetSpec, parse_ip, spec_from_options
from tests.conftest import Cli
from tests.unit.test_sandbox import host_printk  # noqa: F401 (a fixture)

EXPLICIT = ["--dev", "eth0", "--local-ip", "192.0.2.10", "--remote-mac", "02:00:00:00:00:01"]


def spec(**kw: object) -> TargetSpec:
    base: dict[str, object] = dict(remote_ip="192.0.2.1", remote_port=None, local_ip=None,
                                   local_port=None, dev=None, remote_mac=None, extended=None,
                                   release=None, userdata=None)
    base.update(kw)
    return spec_from_options(**base)  # type: ignore[arg-type]


# -- item 4: the verbs as a library --------------------------------------------------------------


def test_verbs_change_targets_and_say_what_changed(system: System, kernel: Emulation) -> None:
    from netconsolectl.sender import verbs

    said: list[str] = []
    c = verbs.add(system, "t1", spec(), say=said.append)
    assert c.changed and c.summary == ["created"] and c.action == "add"
    # Discovery (the fake kernel's network) filled the device, source and next hop's MAC.
    assert kernel.read("t1/dev_name") == "eth0" and kernel.read("t1/enabled") == "1"
    assert kernel.read("t1/remote_mac") == "02:00:00:00:00:01"
    c = verbs.set_target(system, "t1", TargetSpec(remote_port=514))
    assert c.changed and c.summary == ["remote_port 6666 -> 514"]
    assert kernel.read("t1/remote_port") == "514"
    again = verbs.set_target(system, "t1", TargetSpec(remote_port=514))
    assert not again.changed and again.summary == []
    dry = verbs.disable(system, "t1", dry_run=True)
    assert dry.would_change and not dry.changed and kernel.read("t1/enabled") == "1"
    assert verbs.disable(system, "t1").changed and kernel.read("t1/enabled") == "0"
    assert not verbs.disable(system, "t1").changed  # idempotent
    assert verbs.enable(system, "t1").changed and kernel.read("t1/enabled") == "1"
    assert verbs.remove(system, "t1").summary == ["removed"] and not kernel.exists("t1")
    gone = verbs.remove(system, "t1", missing_ok=True)
    assert gone.plan is None and not gone.changed


def test_apply_creates_through_the_same_verb_pieces(system: System, kernel: Emulation,
                                                    cli: Cli) -> None:
    """The same target from `add` and from a file: the same configfs operations."""
    r = cli("add", "t1", "--remote-ip", "192.0.2.1", *EXPLICIT, "--dry-run")
    assert r.exit_code == 0, r
    ap = apply_config(system, loads('[targets.t1]\nremote_ip = "192.0.2.1"\n'
                                    'dev_name = "eth0"\nlocal_ip = "192.0.2.10"\n'
                                    'remote_mac = "02:00:00:00:00:01"\n'), dry_run=True)
    assert ap.items[0].plan is not None
    assert ap.items[0].plan.describe(kernel) == r.stdout.splitlines()


# -- item 8: userdata and sysdata need the extended format ---------------------------------------


def test_userdata_turns_extended_on_with_a_notice(cli: Cli, kernel: Emulation) -> None:
    r = cli("add", "t1", "--remote-ip", "192.0.2.1", *EXPLICIT, "--userdata", "rack=a1")
    assert r.exit_code == 0, r
    assert "extended format" in r.stderr and "turned --extended on" in r.stderr
    assert kernel.read("t1/extended") == "1"
    # sysdata too (this emulated 6.12 has none; the rule is the verbs' own)
    from netconsolectl.sender import verbs

    assert verbs.needs_extended(TargetSpec(sysdata=frozenset({"cpu_nr"}))).extended is True


def test_userdata_with_no_extended_is_refused(cli: Cli, kernel: Emulation) -> None:
    r = cli("add", "t1", "--remote-ip", "192.0.2.1", *EXPLICIT, "--userdata", "rack=a1",
            "--no-extended")
    assert r.exit_code == 2, r
    assert "--userdata needs the extended format" in r.stderr
    assert not kernel.exists("t1")


def test_set_userdata_on_a_basic_target_turns_extended_on(cli: Cli, kernel: Emulation) -> None:
    assert cli("add", "t1", "--remote-ip", "192.0.2.1", *EXPLICIT, "--no-extended").exit_code == 0
    r = cli("set", "t1", "--userdata", "rack=a1")
    assert r.exit_code == 0, r
    assert "turned extended on" in r.stderr
    assert kernel.read("t1/extended") == "1" and kernel.read("t1/userdata/rack/value") == "a1"


def test_config_userdata_without_extended_is_applied_extended(system: System,
                                                             kernel: Emulation) -> None:
    apply_config(system, loads('[targets.t1]\nremote_ip = "192.0.2.1"\ndev_name = "eth0"\n'
                               'local_ip = "192.0.2.10"\nremote_mac = "02:00:00:00:00:01"\n'
                               '[targets.t1.userdata]\nrack = "a1"\n'))
    assert kernel.read("t1/extended") == "1"


# -- item 9: a collector address must be unicast -------------------------------------------------


@pytest.mark.parametrize("address", ["239.1.2.3", "224.0.0.1", "ff02::1", "255.255.255.255"])
def test_group_remote_ip_is_refused(cli: Cli, kernel: Emulation, address: str) -> None:
    r = cli("add", "t1", "--remote-ip", address, *EXPLICIT)
    assert r.exit_code == 2, r
    assert "netconsole sends unicast frames" in r.stderr
    assert not kernel.exists("t1")


def test_config_with_group_remote_ip_is_refused() -> None:
    with pytest.raises(InvalidInput, match="multicast"):
        loads('[targets.t1]\nremote_ip = "239.1.2.3"\n')
    with pytest.raises(InvalidInput, match="broadcast"):
        loads('[targets.t1]\nremote_ip = "255.255.255.255"\n')
    assert parse_ip("239.1.2.3").is_multicast  # parse_ip alone (resolve, local_ip) takes it


# -- item 10: two targets to one collector ---------------------------------------------------


def test_duplicate_target_is_warned_in_add_apply_and_doctor(cli: Cli, system: System,
                                                           kernel: Emulation) -> None:
    assert cli("add", "a", "--remote-ip", "192.0.2.1", *EXPLICIT).exit_code == 0
    r = cli("add", "b", "--remote-ip", "192.0.2.1", *EXPLICIT)
    assert r.exit_code == 0, r
    assert "warning: a and b send through eth0 to 192.0.2.1:6666: every message arrives " \
           "twice" in r.stderr
    # Another port, or a disabled target, is no duplicate.
    r = cli("add", "c", "--remote-ip", "192.0.2.1", *EXPLICIT, "--remote-port", "7000")
    assert "warning" not in r.stderr, r
    r = cli("add", "d", "--remote-ip", "192.0.2.1", *EXPLICIT, "--disabled")
    assert "warning" not in r.stderr, r
    checks = doctor(system, list(read_live(system).values()))
    dup = [c for c in checks if c.name == "duplicates"]
    assert len(dup) == 1 and dup[0].verdict == "warn" and "a and b" in dup[0].detail
    ap = apply_config(system, loads('[targets.e]\nremote_ip = "192.0.2.1"\n'
                                    'dev_name = "eth0"\nlocal_ip = "192.0.2.10"\n'
                                    'remote_mac = "02:00:00:00:00:01"\n'), dry_run=True)
    assert ap.warnings == ["a, b and e send through eth0 to 192.0.2.1:6666: every message "
                           "arrives 3 times; remove or change all but one"]


# -- item 14: the exit status says the change happened ---------------------------------------


def _sandbox_cli(root: Path, *args: str, stdout: int | object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETCONSOLECTL_")}
    return subprocess.run(
        [sys.executable, "-c", "from netconsolectl.cli import main; main()",
         "--configfs-root", str(root), *args],
        stdout=stdout, stderr=subprocess.PIPE, text=True, check=False, env=env)  # type: ignore[call-overload]


@pytest.mark.usefixtures("host_printk")
def test_change_with_a_full_disk_for_the_report_exits_0(tmp_path: Path) -> None:
    with open("/dev/full", "wb") as full:
        p = _sandbox_cli(tmp_path, "loglevel", "5", "--json", stdout=full)
    assert p.returncode == 0, p.stderr
    assert "the change was made, but its report could not be written: no space left" in p.stderr
    assert (tmp_path / "proc/sys/kernel/printk").read_text().split()[0] == "5"
    # Nothing changed: the failure is still one.
    with open("/dev/full", "wb") as full:
        p = _sandbox_cli(tmp_path, "loglevel", "5", "--json", stdout=full)
    assert p.returncode == 1, p.stderr


@pytest.mark.usefixtures("host_printk")
def test_change_with_a_closed_pipe_for_the_report_exits_0(tmp_path: Path) -> None:
    r, w = os.pipe()
    os.close(r)
    try:
        p = _sandbox_cli(tmp_path, "loglevel", "6", "--json", stdout=w)
    finally:
        os.close(w)
    assert p.returncode == 0, p.stderr
    assert "the change was made" in p.stderr
    assert (tmp_path / "proc/sys/kernel/printk").read_text().split()[0] == "6"


# -- item 3: what the default (basic) format loses is said -----------------------------------


def test_add_and_doctor_say_what_the_basic_format_loses(cli: Cli, system: System,
                                                        kernel: Emulation) -> None:
    r = cli("add", "t1", "--remote-ip", "192.0.2.1", *EXPLICIT)
    assert r.exit_code == 0, r
    assert "basic format: no sequence numbers" in r.stderr and "--extended" in r.stderr
    assert kernel.read("t1/extended") == "0"  # the kernel's default stays the default
    for quiet in (["--extended"], ["--no-extended"], ["--release"]):
        r = cli("add", f"q{len(quiet[0])}", "--remote-ip", "192.0.2.1", *EXPLICIT,
                "--remote-port", str(7000 + len(quiet[0])), *quiet)
        assert r.exit_code == 0, r
        assert "basic format" not in r.stderr, quiet
    checks = doctor(system, list(read_live(system).values()))
    fmt = [c for c in checks if c.name == "format"]
    assert [(c.target, c.verdict) for c in fmt] == [("q13", "info"), ("t1", "info")]
    assert fmt[1].fix == "netconsolectl set t1 --extended"

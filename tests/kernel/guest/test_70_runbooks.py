"""Runbook commands on a real kernel: apply, export, cmdline, loglevel, test, doctor.

Order matters here (functions run top to bottom, after test_40_loglevel has put the console
loglevel back to 8): the boot targets are restored to their boot settings first, so that
``cmdline`` can be compared with the boot parameter, and the last test removes every target,
boot targets included, to prove the export/apply round trip. The kernel destroys a removed
boot target; ``apply`` then re-creates ``cmdline0`` and ``cmdline1`` as ordinary targets with
the same settings, sending to the same ports. Later guest files (test_80_listen.py,
test_conformance.py) use targets of their own and need neither.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from netconsolectl.sender.configfs import ConfigFS
from tests.kernel.guest.conftest import (
    BOOT_PARAM,
    GATEWAY_MAC,
    GENERATED_BOOT_SPEC,
    GUEST_IP,
    GUEST_IP6,
    HOST_IP,
    HOST_IP6,
    KERNEL,
    NIC,
    Cli,
    Lab,
    Wire,
    kfeat,
    raw_state,
    raw_userdata,
    requires,
    sh,
    userdata_args,
    userdata_sent,
)
from tests.kernel.guest.test_10_targets import explicit
from tests.kernel.guest.test_40_loglevel import console_loglevel

pytestmark = pytest.mark.usefixtures("netconsole")

# The boot-parameter targets, where the kernel shows them in configfs (6.7+; on 6.1 they send
# just the same but have no directory).
BOOTS = ("cmdline0", "cmdline1") if KERNEL.boot_targets_in_configfs else ()


def needs_boot_targets() -> None:
    requires(KERNEL.boot_targets_in_configfs, "boot targets in configfs (cmdlineN)",
             kfeat.BOOT_TARGETS_IN_CONFIGFS)


def toml_target(name: str, port: int, *, userdata: dict[str, str] | None = None,
                **extra: object) -> str:
    """One ``[targets.NAME]`` table that needs no discovery (the guest's NIC and gateway)."""
    keys: dict[str, object] = {"dev_name": NIC, "local_ip": GUEST_IP, "remote_ip": HOST_IP,
                               "remote_port": port, "remote_mac": GATEWAY_MAC,
                               "extended": True, **extra}
    lines = [f"[targets.{name}]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in keys.items()]  # JSON scalars are TOML
    if userdata:
        lines += ["", f"[targets.{name}.userdata]"]
        lines += [f"{k} = {json.dumps(v)}" for k, v in userdata.items()]
    return "\n".join(lines) + "\n"


def ud(fs: ConfigFS, name: str) -> dict[str, str]:
    return raw_userdata(fs, name) if fs.isdir(f"{name}/userdata") else {}


def write(tmp_path: Path, text: str, name: str = "netconsolectl.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def restore_network() -> None:
    """The guest network as conftest's guest_network left it, after ``ip link set down``
    (which drops the default route and, without keep_addr_on_down, the IPv6 address)."""
    sh(f"ip link set {NIC} up")
    sh(f"ip route replace default via {HOST_IP}")
    sh(f"ip -6 addr replace {GUEST_IP6}/64 dev {NIC} nodad")


# -- loglevel ---------------------------------------------------------------------------------


def test_loglevel_show_set_and_apply_restores_it(cli: Cli, wire: Wire, tmp_path: Path,
                                                 names: Callable[[str], str]) -> None:
    assert console_loglevel() == 8, "test_40_loglevel must leave the console loglevel at 8"
    shown = cli("loglevel")
    assert shown.code == 0 and shown.out.startswith("console loglevel 8:"), str(shown)
    data = cli("loglevel", "--json")
    assert data.code == 0, str(data)
    assert data.json()["console_loglevel"] == 8 and len(data.json()["passing"]) == 8, str(data)
    same = cli("loglevel", "8")
    assert same.code == 0 and console_loglevel() == 8, str(same)

    name = names("ll")
    conf = write(tmp_path, "[options]\nconsole_loglevel = 8\n\n" + toml_target(name, wire.port()))
    try:
        low = cli("loglevel", "3")
        assert low.code == 0, str(low)
        assert console_loglevel() == 3
        assert "8 -> 3" in low.out, str(low)
        applied = cli("apply", conf, "--detailed-exitcode")
        assert applied.code == 2, str(applied)
        assert "changed console loglevel 3 -> 8" in applied.out.splitlines(), str(applied)
        assert console_loglevel() == 8
        again = cli("apply", conf, "--detailed-exitcode")
        assert again.code == 0 and "console loglevel" not in again.out, str(again)
    finally:
        sh("dmesg -n 8")


# -- apply ------------------------------------------------------------------------------------


def test_apply_twice_changes_nothing_the_second_time(cli: Cli, wire: Wire,
                                                     kmsg: Callable[..., None],
                                                     configfs: ConfigFS, tmp_path: Path,
                                                     names: Callable[[str], str]) -> None:
    port = wire.port()
    t1 = names("t1")
    conf = write(tmp_path, "[options]\nconsole_loglevel = 8\n\n"
                 + toml_target(t1, port, userdata=userdata_sent({"host": "guest1"})))
    first = cli("apply", conf, "--detailed-exitcode")
    assert first.code == 2, str(first)
    assert first.out.splitlines()[0].startswith(f"created {t1}"), str(first)
    assert console_loglevel() == 8
    state = raw_state(configfs, t1)
    assert (state["enabled"], state["extended"], state["remote_port"]) == ("1", "1", str(port))
    assert (state["dev_name"], state["local_ip"], state["remote_mac"]) == (NIC, GUEST_IP,
                                                                          GATEWAY_MAC)
    if KERNEL.userdata:
        assert raw_userdata(configfs, t1) == {"host": "guest1"}
    marker = wire.marker("applied")
    kmsg(marker)
    wire.expect(port, marker, userdata=userdata_sent({"host": "guest1"}))

    second = cli("apply", conf, "--detailed-exitcode")
    assert second.code == 0, str(second)
    assert second.out.splitlines() == [f"unchanged {t1}"], str(second)
    plain = cli("apply", conf)
    assert plain.code == 0, str(plain)


def test_apply_prune_removes_unlisted_targets_but_not_boot_targets(
        cli: Cli, wire: Wire, configfs: ConfigFS, tmp_path: Path,
        names: Callable[[str], str]) -> None:
    t1, extra = names("t1"), names("extra")
    conf = write(tmp_path, toml_target(t1, wire.port()))
    assert cli("apply", conf).code == 0
    assert cli("add", extra, *explicit(wire.port()), *userdata_args("a=1")).code == 0
    before = {n: (raw_state(configfs, n), ud(configfs, n)) for n in configfs.listdir()}
    assert {*BOOTS, t1, extra} <= set(before), before

    dry = cli("apply", conf, "--prune", "--dry-run", "--detailed-exitcode")
    assert dry.code == 2, str(dry)
    assert any(line.startswith(f"remove {extra}") for line in dry.out.splitlines()), str(dry)
    assert {n: (raw_state(configfs, n), ud(configfs, n))
            for n in configfs.listdir()} == before, "--dry-run must change nothing"

    pruned = cli("apply", conf, "--prune", "--detailed-exitcode")
    assert pruned.code == 2, str(pruned)
    assert any(line.startswith(f"removed {extra}") for line in pruned.out.splitlines()), \
        str(pruned)
    assert not configfs.exists(extra)
    for boot in BOOTS:
        assert configfs.exists(boot) and configfs.read(f"{boot}/enabled") == "1", str(pruned)
        assert boot in pruned.err, f"prune must say it keeps {boot}: {pruned}"
    again = cli("apply", conf, "--prune", "--detailed-exitcode")
    assert again.code == 0, str(again)


# -- cmdline and the boot targets -------------------------------------------------------------


def test_cmdline_prints_the_boot_parameter_the_kernel_was_given(cli: Cli, wire: Wire,
                                                                configfs: ConfigFS) -> None:
    """cmdline0 came from a hand-written value, cmdline1 from netconsolectl's formatter:
    ``cmdline`` for both live targets gives back exactly the value the VM booted with."""
    needs_boot_targets()
    # test_30_boot_target moved cmdline0 to another port: back to where the boot sent it.
    r = cli("set", "cmdline0", "--remote-port", str(wire.boot_port))
    assert r.code == 0 and configfs.read("cmdline0/enabled") == "1", str(r)

    both = cli("cmdline", "cmdline0", "cmdline1", "--value")
    assert both.code == 0, str(both)
    assert both.out.strip() == BOOT_PARAM, str(both)
    cmdline0 = cli("cmdline", "cmdline0", "--value")
    assert cmdline0.out.strip() == BOOT_PARAM.split(";")[0], str(cmdline0)
    module = cli("cmdline", "cmdline0", "cmdline1", "--module")
    assert module.out.strip() == f"options netconsole netconsole={BOOT_PARAM}", str(module)

    parsed = cli("cmdline", "--parse", f"netconsole.netconsole={BOOT_PARAM}", "--json")
    assert parsed.code == 0, str(parsed)
    entries = parsed.json()["targets"]
    assert [e["name"] for e in entries] == ["cmdline0", "cmdline1"], str(parsed)
    for entry, name in zip(entries, ("cmdline0", "cmdline1"), strict=True):
        live = raw_state(configfs, name)
        t = entry["target"]
        assert (t["dev_name"], t["local_ip"], str(t["local_port"]), t["remote_ip"],
                str(t["remote_port"]), t["remote_mac"]) == (
            live["dev_name"], live["local_ip"], live["local_port"], live["remote_ip"],
            live["remote_port"], live["remote_mac"]), (name, entry, live)
        assert (t["extended"], t["release"]) == (live["extended"] == "1",
                                                 live["release"] == "1"), (name, entry, live)


def test_generated_boot_parameter_yields_the_configured_target(cli: Cli, wire: Wire,
                                                               kmsg: Callable[..., None]) -> None:
    """The host wrote cmdline1's piece of the boot parameter with netconsolectl's formatter
    from a spec; the kernel made exactly that target of it, and it sends. (Without boot
    targets in configfs, 6.1, only the packets can tell.)"""
    release = os.uname().release if GENERATED_BOOT_SPEC["release"] else None
    if not KERNEL.boot_targets_in_configfs:
        marker = wire.marker("generated")
        kmsg(marker)
        wire.expect(wire.generated_boot_port, marker, release=release, only_port=False)
        return
    listed = cli("list", "--json")
    assert listed.code == 0, str(listed)
    entry = {e["name"]: e for e in listed.json()}.get("cmdline1")
    assert entry is not None, f"the generated boot target is missing: {listed}"
    assert {k: entry[k] for k in GENERATED_BOOT_SPEC} == GENERATED_BOOT_SPEC, entry
    assert entry["enabled"] is True and entry["userdata"] == {}, entry
    marker = wire.marker("generated")
    kmsg(marker)
    wire.expect(wire.generated_boot_port, marker, release=release, only_port=False)


def test_apply_refuses_a_boot_target_the_kernel_cannot_show(cli: Cli, configfs: ConfigFS,
                                                            tmp_path: Path) -> None:
    """Before 6.7 ``mkdir cmdline0`` would make a second, ordinary target beside the invisible
    boot target (every message sent twice): apply and add refuse it, and write nothing."""
    if KERNEL.boot_targets_in_configfs:
        pytest.skip(f"{KERNEL.release} shows boot targets in configfs (the refusal is for "
                    "kernels before 6.7)")
    conf = write(tmp_path, toml_target("cmdline0", 6666, local_port=6665))
    r = cli("apply", conf)
    assert r.code != 0, str(r)
    assert "cmdline0" in r.err and "6.7" in r.err, str(r)
    assert not configfs.exists("cmdline0")
    r = cli("add", "cmdline0", *explicit(6666))
    assert r.code == 2 and "6.7" in r.err, str(r)
    assert not configfs.exists("cmdline0")


def test_apply_adopts_a_boot_target_named_in_the_file(cli: Cli, wire: Wire,
                                                      kmsg: Callable[..., None],
                                                      configfs: ConfigFS,
                                                      tmp_path: Path) -> None:
    """``[targets.cmdline0]`` with the boot settings plus userdata: apply changes the boot
    target in place (adds the userdata the parameter cannot carry), then has nothing to do."""
    needs_boot_targets()
    settings = toml_target("cmdline0", wire.boot_port, local_port=6665, release=False)
    with_ud = write(tmp_path, toml_target("cmdline0", wire.boot_port, local_port=6665,
                                          release=False, userdata={"role": "boot"}), "ud.toml")
    without = write(tmp_path, settings, "plain.toml")
    try:
        r = cli("apply", with_ud, "--detailed-exitcode")
        assert r.code == 2, str(r)
        assert r.out.splitlines() == ["changed cmdline0: userdata role added"], str(r)
        assert raw_userdata(configfs, "cmdline0") == {"role": "boot"}
        assert configfs.read("cmdline0/enabled") == "1"
        marker = wire.marker("adopted")
        kmsg(marker)
        wire.expect(wire.boot_port, marker, userdata={"role": "boot"}, only_port=False)
        again = cli("apply", with_ud, "--detailed-exitcode")
        assert again.code == 0 and again.out.splitlines() == ["unchanged cmdline0"], str(again)
    finally:
        back = cli("apply", without, "--detailed-exitcode")
    assert back.code == 2 and "userdata role removed" in back.out, str(back)
    assert raw_userdata(configfs, "cmdline0") == {}


# -- test -------------------------------------------------------------------------------------


def test_test_message_reaches_every_enabled_target(cli: Cli, wire: Wire, configfs: ConfigFS,
                                                   names: Callable[[str], str]) -> None:
    on_port, off_port = wire.port(), wire.port()
    on, off = names("test-on"), names("test-off")
    assert cli("add", on, *explicit(on_port), "--extended").code == 0
    assert cli("add", off, *explicit(off_port), "--extended", "--disabled").code == 0

    r = cli("test")
    assert r.code == 0, str(r)
    found = re.search(r"netconsolectl-test-[0-9a-f]+", r.out)
    assert found, str(r)
    marker = found.group(0)
    assert "at level 7 (debug)" in r.out, f"the least severe level passing loglevel 8: {r}"
    enabled = {e["name"]: e for e in cli("list", "--json").json() if e["enabled"]}
    assert {on, *BOOTS} <= set(enabled), enabled
    for name, e in enabled.items():
        assert f"sent to {name}: " in r.out, f"{name} not named: {r}"
        family = "ipv6" if ":" in e["remote_ip"] else "ipv4"
        if e["extended"]:
            wire.expect(e["remote_port"], marker, level=7, family=family, only_port=False,
                        release=os.uname().release if e["release"] else None)
        else:
            wire.expect(e["remote_port"], marker, fmt="basic", family=family, only_port=False)
    assert f"not sent to {off}: disabled" in r.out, str(r)
    wire.expect_absent(marker, port=off_port)

    named = cli("test", on)
    assert named.code == 0 and f"sent to {on}: " in named.out, str(named)
    refused = cli("test", off)
    assert refused.code == 1, str(refused)
    assert off in refused.err and "disabled" in refused.err, str(refused)
    assert configfs.read(f"{off}/enabled") == "0"


# -- doctor -----------------------------------------------------------------------------------


def test_doctor_healthy(cli: Cli) -> None:
    r = cli("doctor")
    assert r.code == 0, str(r)
    assert not re.search(r"^(WARN|FAIL) ", r.out, re.M), str(r)
    assert "no problems found" in r.err, str(r)
    data = cli("doctor", "--json")
    assert data.code == 0 and data.json()["ok"] is True, str(data)
    checks = {(c["target"], c["check"]): c["verdict"] for c in data.json()["checks"]}
    for boot in BOOTS:
        assert checks.get((boot, "device")) == "ok", checks
        assert checks.get((boot, "route")) == "ok", checks


def test_doctor_with_the_nic_down(cli: Cli) -> None:
    needs_boot_targets()
    try:
        sh(f"ip link set {NIC} down")
        r = cli("doctor")
        assert r.code == 1, str(r)
        assert f"WARN  cmdline0 device: {NIC} is down" in r.out, str(r)
        data = cli("doctor", "--json")
        assert data.code == 1 and data.json()["ok"] is False, str(data)
        bad = {(c["target"], c["check"]) for c in data.json()["checks"]
               if c["verdict"] in ("warn", "fail")}
        assert ("cmdline1", "device") in bad, str(data)
    finally:
        restore_network()
    healthy = cli("doctor")
    assert healthy.code == 0, f"the network was not restored: {healthy}"


def test_doctor_target_whose_device_joined_a_bridge(cli: Cli, lab: Lab, configfs: ConfigFS,
                                                    names: Callable[[str], str]) -> None:
    """Enslaving a target's device stops the target (NETDEV_JOIN); doctor names the bridge."""
    dev = "ncdoc0"
    sh(f"ip link add {dev} type dummy && ip addr add 203.0.113.5/24 dev {dev}"
       f" && ip link set {dev} up")
    try:
        name = names("doc-br")
        r = cli("add", name, "--remote-ip", "203.0.113.9", "--remote-port", "9", "--dev", dev,
                "--local-ip", "203.0.113.5", "--remote-mac", "02:00:00:00:00:09")
        assert r.code == 0 and configfs.read(f"{name}/enabled") == "1", str(r)
        sh(f"ip link set {dev} master {lab.devices.bridge}")
        assert configfs.read(f"{name}/enabled") == "0", "the kernel stops a target that joins"
        doc = cli("doctor")
        assert doc.code == 1, str(doc)
        assert f"FAIL  {name} master: {dev} is a port of {lab.devices.bridge}" in doc.out, \
            str(doc)
        assert f"WARN  {name} enabled: " in doc.out, str(doc)
        assert f"--dev {lab.devices.bridge}" in doc.out, f"the fix must name the bridge: {doc}"
    finally:
        sh(f"ip link del {dev}", check=False)


# -- export / apply round trip (last: removes the boot targets) --------------------------------


def test_export_remove_everything_apply_round_trip(cli: Cli, wire: Wire,
                                                   kmsg: Callable[..., None],
                                                   configfs: ConfigFS, tmp_path: Path,
                                                   names: Callable[[str], str]) -> None:
    port = wire.port()
    a, b, v6 = names("rt-a"), names("rt-b"), names("rt-v6")
    sent = userdata_sent({"host": "guest1", "note": 'say "hi"'})
    assert cli("add", a, *explicit(port), "--extended",
               *userdata_args("host=guest1", 'note=say "hi"')).code == 0
    assert cli("add", b, *explicit(wire.port()), "--disabled", "--local-port", "6001").code == 0
    r = cli("add", v6, "--remote-ip", HOST_IP6, "--remote-port", str(wire.port("ipv6")),
            "--dev", NIC, "--local-ip", GUEST_IP6, "--remote-mac", GATEWAY_MAC, "--extended",
            *(["--release"] if KERNEL.release_attr else []))
    assert r.code == 0, str(r)

    for fmt in ("toml", "json"):
        first = cli("export", "--format", fmt)
        assert first.code == 0, str(first)
        data = json.loads(first.out) if fmt == "json" else tomllib.loads(first.out)
        live = configfs.listdir()
        assert sorted(data["targets"]) == sorted(live), str(first)
        assert {*BOOTS, a, b, v6} <= set(live), live
        path = write(tmp_path, first.out, f"exported.{fmt}")

        for name in live:
            removed = cli("remove", name)
            assert removed.code == 0, str(removed)
        assert configfs.listdir() == [], "every target, the boot targets too, must be gone"

        applied = cli("apply", path, "--detailed-exitcode")
        assert applied.code == 2, str(applied)
        second = cli("export", "--format", fmt)
        assert second.code == 0, str(second)
        assert second.out == first.out, f"{fmt} export changed:\n{first.out}\n---\n{second.out}"
        again = cli("apply", path, "--detailed-exitcode")
        assert again.code == 0, str(again)

    if KERNEL.userdata:
        assert raw_userdata(configfs, a) == sent
    assert configfs.read(f"{b}/enabled") == "0"
    marker = wire.marker("round-trip")
    kmsg(marker)
    wire.expect(port, marker, userdata=sent, only_port=False)
    wire.expect(wire.boot_port, marker, only_port=False)
    wire.expect(wire.generated_boot_port, marker, only_port=False,
                release=os.uname().release if GENERATED_BOOT_SPEC["release"] else None)

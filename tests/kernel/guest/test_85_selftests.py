"""The kernel's own netconsole selftests, replayed with netconsolectl end to end.

Linux keeps netconsole selftests in tools/testing/selftests/drivers/net/ (netcons_basic.sh,
netcons_fragmented_msg.sh, netcons_overflow.sh, netcons_sysdata.sh, the userdata checks of
lib_netcons.sh, netcons_resume.sh, netcons_cmdline.sh, netcons_torture.sh): they configure
targets by hand in configfs and check with socat what arrives. Here each scenario configures
its target with ``netconsolectl apply`` (a configuration file, as a user would) and the host
checks with ``netconsolectl listen --json`` (a second listen, ``wire.replay_port``) that each
message was reported exactly once, whole, with the fields the scenario expects:
tests/kernel/test_selftests.py judges each scenario by name. A scenario whose feature this
kernel lacks skips with "needs Linux X or newer".
"""

from __future__ import annotations

import errno
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from netconsolectl.sender.configfs import ConfigFS
from tests.kernel.guest import kfacts
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
    Wire,
    kfeat,
    requires,
    sh,
)

pytestmark = pytest.mark.usefixtures("netconsole")

LOCAL_PORT = 6690  # the replay targets' source port (others use their own)


def _toml(name: str, port: int, *, extended: bool = True, ipv6: bool = False,
          userdata: dict[str, str] | None = None, sysdata: list[str] | None = None) -> str:
    keys: dict[str, object] = {
        "dev_name": NIC, "local_ip": GUEST_IP6 if ipv6 else GUEST_IP,
        "remote_ip": HOST_IP6 if ipv6 else HOST_IP, "remote_port": port,
        "remote_mac": GATEWAY_MAC, "local_port": LOCAL_PORT, "extended": extended,
    }
    if sysdata is not None:
        keys["sysdata"] = sysdata
    lines = [f"[targets.{name}]", *(f"{k} = {json.dumps(v)}" for k, v in keys.items())]
    if userdata:
        lines += ["", f"[targets.{name}.userdata]"]
        lines += [f"{json.dumps(k)} = {json.dumps(v)}" for k, v in userdata.items()]
    return "\n".join(lines) + "\n"


def _apply(cli: Cli, tmp_path: Path, text: str, *args: str) -> int:
    conf = tmp_path / f"replay-{time.monotonic_ns()}.toml"
    conf.write_text(text)
    r = cli("apply", str(conf), *args)
    if r.code not in (0, 2):
        raise AssertionError(str(r))
    return r.code


def _replay_port(wire: Wire) -> int:
    assert wire.replay_port is not None, "the replay listen did not start on the host"
    return wire.replay_port


def _remove(cli: Cli, name: str) -> None:
    r = cli("remove", name)
    assert r.code == 0, str(r)


def test_selftest_basic(cli: Cli, wire: Wire, kmsg: Callable[..., None], tmp_path: Path,
                        names: Callable[[str], str]) -> None:
    """netcons_basic.sh: one message through a basic and through an extended target, over
    IPv4 and IPv6. listen takes IPv4; the IPv6 copy is checked on the raw wire."""
    port = _replay_port(wire)
    for extended in (False, True):
        name = names("st-basic")
        _apply(cli, tmp_path, _toml(name, port, extended=extended))
        text = wire.marker("st-basic-ext" if extended else "st-basic-basic")
        kmsg(text, level=4)
        # listen reports a basic line ("[    s.us] text") as it came, without level or fields
        wire.expect_replay("basic", text, level=4 if extended else None, basic=not extended)
        _remove(cli, name)
        v6 = wire.port("ipv6")
        name6 = names("st-basic6")
        _apply(cli, tmp_path, _toml(name6, v6, extended=extended, ipv6=True))
        text6 = wire.marker("st-basic6")
        kmsg(text6)
        wire.expect(v6, text6, fmt="extended" if extended else "basic", family="ipv6")
        _remove(cli, name6)


def test_selftest_userdata(cli: Cli, wire: Wire, kmsg: Callable[..., None], tmp_path: Path,
                           names: Callable[[str], str]) -> None:
    """lib_netcons.sh's userdata check: a key=value pair set through userdata/ follows every
    message of an extended target."""
    requires(kfacts.measure().userdata, "userdata", kfeat.USERDATA)
    name = names("st-ud")
    _apply(cli, tmp_path, _toml(name, _replay_port(wire), userdata={"key": "value"}))
    text = wire.marker("st-userdata")
    kmsg(text, level=6)
    wire.expect_replay("userdata", text, level=6, fields={"key": "value"})
    _remove(cli, name)


def test_selftest_sysdata(cli: Cli, wire: Wire, kmsg: Callable[..., None], tmp_path: Path,
                          names: Callable[[str], str]) -> None:
    """netcons_sysdata.sh: with every sysdata toggle on, each message carries cpu=,
    taskname=, release= (and msgid= from 6.17); with them off, none."""
    facts = kfacts.measure()
    requires(bool(facts.sysdata), "sysdata", kfeat.SYSDATA)
    port = _replay_port(wire)
    name = names("st-sys")
    toggles = [t for t in kfacts.SYSDATA_ORDER if t in facts.sysdata]
    _apply(cli, tmp_path, _toml(name, port, sysdata=toggles))
    text = wire.marker("st-sysdata")
    kmsg(text)
    wire_names = {"cpu_nr": "cpu", "taskname": "taskname", "release": "release",
                  "msgid": "msgid"}
    fields: dict[str, str | None] = {wire_names[t]: None for t in toggles}
    if "release" in toggles:
        fields["release"] = os.uname().release
    wire.expect_replay("sysdata", text, fields=fields)
    _apply(cli, tmp_path, _toml(name, port, sysdata=[]))
    quiet = wire.marker("st-sysdata-off")
    kmsg(quiet)
    wire.expect_replay("sysdata", quiet, fields={})
    _remove(cli, name)


def test_selftest_fragmented_msg(cli: Cli, wire: Wire, kmsg: Callable[..., None],
                                 tmp_path: Path, names: Callable[[str], str]) -> None:
    """netcons_fragmented_msg.sh: a message that with its userdata is over 1000 bytes leaves
    in ncfrag fragments; listen puts it back together with the userdata intact."""
    requires(kfacts.measure().userdata, "userdata", kfeat.USERDATA)
    name = names("st-frag")
    userdata = {"key": "v" * 150, "other": "w" * 150}
    _apply(cli, tmp_path, _toml(name, _replay_port(wire), userdata=userdata))
    text = wire.marker("st-frag") + " " + "".join(f"{i:04d}fragmented" for i in range(60))
    kmsg(text, level=5)
    wire.expect_replay("fragmented_msg", text, level=5, fields=dict(userdata))
    _remove(cli, name)


def test_selftest_overflow(cli: Cli, wire: Wire, kmsg: Callable[..., None], tmp_path: Path,
                           configfs: ConfigFS, names: Callable[[str], str]) -> None:
    """netcons_overflow.sh: a target filled to the kernel's userdata limit (16 up to 6.18,
    256 on 7.x) still sends every entry; one entry more is refused whole (apply exits 1 or 2
    and changes nothing), and the kernel itself answers ENOSPC to it."""
    requires(kfacts.measure().userdata, "userdata", kfeat.USERDATA)
    limit = kfacts.measure().max_userdata
    port = _replay_port(wire)
    name = names("st-over")
    full = {f"k{i:03d}": f"v{i}" for i in range(limit)}
    _apply(cli, tmp_path, _toml(name, port, userdata=full))
    text = wire.marker("st-overflow")
    kmsg(text)
    wire.expect_replay("overflow", text, fields=dict(full))
    conf = tmp_path / "over.toml"
    conf.write_text(_toml(name, port, userdata={**full, "one_more": "x"}))
    r = cli("apply", str(conf))
    assert r.code in (1, 2) and "Traceback" not in r.err, str(r)
    assert len(configfs.listdir(f"{name}/userdata")) == limit
    try:
        configfs.mkdir(f"{name}/userdata/one_more")
    except OSError as e:
        assert e.errno == errno.ENOSPC, e
    else:
        raise AssertionError(f"the kernel took userdata entry {limit + 1}")
    after = wire.marker("st-overflow-after")
    kmsg(after)
    wire.expect_replay("overflow", after, fields=dict(full))
    _remove(cli, name)


def _kernel_resumes() -> bool:
    """Whether this kernel resumes a target whose device went away and came back (7.x), tried
    on a dummy device: the answer comes from the kernel, not from a version table."""
    fs = ConfigFS()
    t = "st-resume-probe"
    sh("ip link add strs0 type dummy && ip addr add 192.0.2.61/24 dev strs0"
       " && ip link set strs0 up")
    fs.mkdir(t)
    try:
        for attr, value in (("dev_name", "strs0"), ("remote_ip", "192.0.2.62"),
                            ("enabled", "1")):
            fs.write(f"{t}/{attr}", value)
        sh("ip link del strs0")
        gone = fs.read(f"{t}/enabled")
        sh("ip link add strs0 type dummy")
        for _ in range(50):
            if fs.read(f"{t}/enabled") == "1":
                break
            time.sleep(0.2)
        assert gone == "0", "the kernel kept a target enabled on a removed device"
        return fs.read(f"{t}/enabled") == "1"
    finally:
        fs.rmdir(t)
        sh("ip link del strs0", check=False)


RESUME_DEV, RESUME_IP = "stmv0", "10.0.2.16"  # a macvlan on the slirp NIC: it has netpoll


def _add_resume_dev() -> None:
    sh(f"ip link add {RESUME_DEV} link {NIC} type macvlan mode bridge"
       f" && ip addr add {RESUME_IP}/24 dev {RESUME_DEV} && ip link set {RESUME_DEV} up")


def test_selftest_resume(cli: Cli, wire: Wire, kmsg: Callable[..., None], tmp_path: Path,
                         configfs: ConfigFS, names: Callable[[str], str]) -> None:
    """netcons_resume.sh: the target's device goes away and comes back; a kernel that resumes
    targets (7.x) sends again without anyone writing ``enabled``. The device is a macvlan on
    the slirp NIC, so its frames still reach the host (and eth0 is left alone)."""
    resumes = _kernel_resumes()
    if not resumes:
        assert not KERNEL.keeps_deactivated_targets, (
            "netconsolectl expects this kernel to resume targets, but it did not")
        pytest.skip(KERNEL.lacks("resuming a target when its device returns",
                                 kfeat.DEACTIVATED))
    name = names("st-resume")
    _add_resume_dev()
    try:
        conf = _toml(name, _replay_port(wire)).replace(f'"{NIC}"', f'"{RESUME_DEV}"')
        _apply(cli, tmp_path, conf.replace(f'"{GUEST_IP}"', f'"{RESUME_IP}"'))
        before = wire.marker("st-resume-before")
        kmsg(before)
        wire.expect_replay("resume", before)
        sh(f"ip link del {RESUME_DEV}")
        assert configfs.read(f"{name}/enabled") == "0", "deactivated while the device is gone"
        lost = wire.marker("st-resume-gone")
        kmsg(lost)
        wire.expect_replay_absent("resume", lost)
        _add_resume_dev()
        for _ in range(100):
            if configfs.read(f"{name}/enabled") == "1":
                break
            time.sleep(0.2)
        assert configfs.read(f"{name}/enabled") == "1", (
            "the kernel did not resume the target:\n"
            + sh("ip -br link; dmesg | grep -i netcons | tail -8", check=False))
        after = wire.marker("st-resume-after")
        kmsg(after)
        wire.expect_replay("resume", after)
        _remove(cli, name)
    finally:
        sh(f"ip link del {RESUME_DEV}", check=False)


def test_selftest_cmdline(cli: Cli, wire: Wire, tmp_path: Path) -> None:
    """netcons_cmdline.sh: a target given as the module's ``netconsole=`` parameter sends.
    This boot's second boot target is the value netconsolectl formatted (harness.py); the
    kernel accepted it and it sent the kernel log from the start (the "Linux version" banner,
    on the host's raw wire). ``cmdline --config`` gives that same value for the same target."""
    spec = dict(GENERATED_BOOT_SPEC)
    lines = ["[targets.cmdline1]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in spec.items()]
    conf = tmp_path / "boot.toml"
    conf.write_text("\n".join(lines) + "\n")
    r = cli("cmdline", "--config", str(conf), "cmdline1")
    assert r.code == 0, str(r)
    assert r.out.strip().endswith(BOOT_PARAM.split(";", 1)[1]), str(r)
    release = os.uname().release if spec.get("release") else None
    wire.expect(wire.generated_boot_port, f"Linux version {os.uname().release}",
                release=release, only_port=False)


def test_selftest_torture(cli: Cli, wire: Wire, kmsg: Callable[..., None], tmp_path: Path,
                          configfs: ConfigFS, names: Callable[[str], str]) -> None:
    """netcons_torture.sh (scaled down for an emulated CPU): targets are created, toggled and
    removed over and over while messages are logged; the kernel and netconsolectl stay
    consistent, and a message logged after the storm arrives exactly once."""
    port, noise = _replay_port(wire), wire.port()
    base = names("st-tort")
    for i in range(6):
        _apply(cli, tmp_path, _toml(base, port) + _toml(f"{base}-{i}", noise))
        kmsg(wire.marker("st-torture-noise"), settle=0)
        assert cli("disable", base).code == 0
        kmsg(wire.marker("st-torture-noise"), settle=0)
        assert cli("enable", base).code == 0
        _remove(cli, f"{base}-{i}")
    assert configfs.read(f"{base}/enabled") == "1"
    leftovers = [t for t in configfs.listdir() if t.startswith(f"{base}-")]
    assert not leftovers, leftovers
    text = wire.marker("st-torture-final")
    kmsg(text)
    wire.expect_replay("torture", text)
    _remove(cli, base)

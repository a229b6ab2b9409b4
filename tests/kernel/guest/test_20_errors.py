"""Every errno the kernel can be made to return, as the CLI reports it (and cleans up)."""

from __future__ import annotations

import errno
from collections.abc import Callable

import pytest

from netconsolectl.sender.configfs import ConfigFS
from tests.kernel.guest import kfacts
from tests.kernel.guest.conftest import (
    GATEWAY_MAC,
    GUEST_IP,
    HOST_IP,
    KERNEL,
    NIC,
    NO_NETPOLL_REASON,
    Cli,
    Lab,
    Wire,
    kfeat,
    raw_userdata,
    requires,
)
from tests.kernel.guest.test_10_targets import explicit

pytestmark = pytest.mark.usefixtures("netconsole")


def via(dev: str, port: int = 9) -> list[str]:
    return ["--remote-ip", HOST_IP, "--remote-port", str(port), "--dev", dev,
            "--local-ip", GUEST_IP, "--remote-mac", GATEWAY_MAC]


def assert_one_error_line(err: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and "Traceback" not in err, err
    assert any("error" in line for line in lines), err


def test_missing_device_leaves_nothing(cli: Cli, configfs: ConfigFS,
                                       names: Callable[[str], str]) -> None:
    name = names("nodev")
    r = cli("add", name, *via("nosuch0"))
    assert r.code == 1, str(r)
    assert "nosuch0" in r.err, str(r)
    assert_one_error_line(r.err)
    assert not configfs.exists(name), "a failed add must remove what it created"


def test_bridge_port_names_the_bridge(cli: Cli, lab: Lab, configfs: ConfigFS,
                                      names: Callable[[str], str]) -> None:
    name = names("brport")
    r = cli("add", name, *via(lab.devices.bridge_port))
    assert r.code == 1, str(r)
    assert lab.devices.bridge in r.err, f"EBUSY must name the bridge to use instead: {r}"
    assert not configfs.exists(name)


def test_bond_slave_names_the_bond(cli: Cli, lab: Lab, configfs: ConfigFS,
                                   names: Callable[[str], str]) -> None:
    name = names("bondslave")
    r = cli("add", name, *via(lab.devices.bond_slave))
    assert r.code == 1, str(r)
    assert "ncbond0" in r.err, f"EBUSY must name the bond to use instead: {r}"
    assert not configfs.exists(name)


def test_device_without_netpoll(cli: Cli, lab: Lab, configfs: ConfigFS,
                                names: Callable[[str], str]) -> None:
    if not lab.devices.no_netpoll:
        pytest.skip(NO_NETPOLL_REASON)
    name = names("nonetpoll")
    r = cli("add", name, *via(lab.devices.no_netpoll))
    assert r.code == 1, str(r)
    assert "netpoll" in r.err, f"errno 524 must be explained, not shown raw: {r}"
    assert not configfs.exists(name)


def test_no_address_on_device(cli: Cli, lab: Lab, configfs: ConfigFS,
                              names: Callable[[str], str]) -> None:
    """EDESTADDRREQ needs local_ip unset, which add never leaves: a hand-made target."""
    name = names("noaddr")
    configfs.mkdir(name)
    configfs.write(f"{name}/dev_name", lab.devices.no_address)
    configfs.write(f"{name}/remote_ip", HOST_IP)
    r = cli("enable", name)
    assert r.code == 1, str(r)
    assert lab.devices.no_address in r.err and "address" in r.err, str(r)
    assert configfs.read(f"{name}/enabled") == "0"


def test_release_without_extended(cli: Cli, configfs: ConfigFS,
                                  names: Callable[[str], str]) -> None:
    """A target left with release=1, extended=0 (by another tool): enable explains the rule."""
    requires(KERNEL.release_attr, "the release attribute", kfeat.RELEASE)
    name = names("relnoext")
    configfs.mkdir(name)
    for attr, value in (("dev_name", NIC), ("local_ip", GUEST_IP), ("remote_ip", HOST_IP),
                        ("release", "1")):
        configfs.write(f"{name}/{attr}", value)
    r = cli("enable", name)
    assert r.code in (1, 2), str(r)
    assert "extended" in r.err, str(r)
    assert configfs.read(f"{name}/enabled") == "0"


def test_userdata_entry_limit(cli: Cli, wire: Wire, configfs: ConfigFS,
                              names: Callable[[str], str]) -> None:
    """One entry more than the kernel allows (16 on 6.9-6.18, 256 on 7.x, as measured) is
    refused before writing (exit 2), nothing else changes."""
    requires(KERNEL.userdata, "--userdata", kfeat.USERDATA)
    limit = kfacts.measure().max_userdata
    name = names("udmax")
    full = [f"--userdata=k{i:03d}=v{i}" for i in range(limit)]
    r = cli("add", name, *explicit(wire.port()), "--extended", *full)
    assert r.code == 0, str(r)
    assert len(raw_userdata(configfs, name)) == limit

    r = cli("set", name, "--userdata", f"k{limit:03d}=one-more")
    assert r.code == 2, str(r)
    assert str(limit) in r.err, f"the message must give the limit: {r}"
    assert_one_error_line(r.err)
    assert len(raw_userdata(configfs, name)) == limit
    assert configfs.read(f"{name}/enabled") == "1", "a refused userdata entry must not disable"

    other = names("udover")
    r = cli("add", other, *explicit(wire.port()), "--extended", *full,
            f"--userdata=k{limit:03d}=v")
    assert r.code == 2, str(r)
    assert not configfs.exists(other), "a failed add must remove what it created"


def test_userdata_value_size(cli: Cli, wire: Wire, kmsg: Callable[..., None],
                             configfs: ConfigFS, names: Callable[[str], str]) -> None:
    """199 bytes is the largest value: it arrives whole; 200 is refused before writing."""
    requires(KERNEL.userdata, "--userdata", kfeat.USERDATA)
    too_big = names("ud200")
    r = cli("add", too_big, *explicit(wire.port()), "--extended", "--userdata", "k=" + "x" * 200)
    assert r.code == 2, str(r)
    assert not configfs.exists(too_big)

    port = wire.port()
    name = names("ud199")
    value = "v" * 199
    r = cli("add", name, *explicit(port), "--extended", "--userdata", f"k={value}")
    assert r.code == 0, str(r)
    assert configfs.read(f"{name}/userdata/k/value") == value
    marker = wire.marker("ud199")
    kmsg(marker)
    wire.expect(port, marker, userdata={"k": value})


def test_remove_enabled_target_with_userdata(cli: Cli, wire: Wire, kmsg: Callable[..., None],
                                             configfs: ConfigFS,
                                             names: Callable[[str], str]) -> None:
    """rmdir with userdata keys is ENOTEMPTY in the kernel; remove takes the keys out first."""
    requires(KERNEL.userdata, "--userdata", kfeat.USERDATA)
    port = wire.port()
    name = names("rmud")
    assert cli("add", name, *explicit(port), "--extended", "--userdata", "a=1").code == 0
    r = cli("remove", name)
    assert r.code == 0, str(r)
    assert not configfs.exists(name)
    gone = wire.marker("after-remove")
    kmsg(gone)
    wire.expect_absent(gone)


def test_refused_200_byte_value_is_read_but_not_sent(cli: Cli, wire: Wire,
                                                     kmsg: Callable[..., None],
                                                     configfs: ConfigFS,
                                                     names: Callable[[str], str]) -> None:
    """A 200-byte value is refused by every kernel, but differently: 6.9-6.18 answer E2BIG
    after strscpy stored 199 bytes (configfs then reads the new text), 7.x answers EMSGSIZE
    up front. Either way the packets keep the old value: why the CLI caps values at 199 bytes
    before writing."""
    requires(KERNEL.userdata, "--userdata", kfeat.USERDATA)
    facts = kfacts.measure()
    port = wire.port()
    name = names("v200")
    assert cli("add", name, *explicit(port), "--extended", "--userdata", "k=old").code == 0
    try:
        configfs.write(f"{name}/userdata/k/value", "n" * 200)
    except OSError as e:
        assert e.errno in (errno.E2BIG, errno.EMSGSIZE), e
        assert e.errno == facts.value_200_errno, e
    else:
        raise AssertionError("a 200-byte value was accepted")
    seen = configfs.read(f"{name}/userdata/k/value")
    assert seen == ("n" * 199 if facts.value_200_stored else "old"), seen
    marker = wire.marker("v200")
    kmsg(marker)
    wire.expect(port, marker, userdata={"k": "old"})


def test_set_to_a_missing_device_is_refused_before_writing(cli: Cli, wire: Wire,
                                                          configfs: ConfigFS,
                                                          names: Callable[[str], str]) -> None:
    """set checks a new --dev as add does: a missing device is refused and the enabled target
    is left as it was (the kernel's refusal on re-enable is covered by the fake's tier)."""
    name = names("reenable")
    assert cli("add", name, *explicit(wire.port()), "--extended").code == 0
    r = cli("set", name, "--dev", "nosuch0")
    assert r.code == 1, str(r)
    assert "there is no interface named nosuch0" in r.err, str(r)
    assert configfs.read(f"{name}/enabled") == "1"
    assert configfs.read(f"{name}/dev_name") == NIC

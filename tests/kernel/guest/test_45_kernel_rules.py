"""Kernel rules that differ between the eras, end to end on the real kernel (issue 22).

- The address family: 6.1 and 6.12 keep a sticky IPv6 flag (switching to IPv4 recreates the
  target); 6.18 and 7.x switch in place, so nothing is recreated.
- A device that goes away: up to 6.18 the target is disabled for good; 7.x keeps it
  deactivated, ``list``/``show`` say so, ``enable`` leaves the resume to the kernel, the kernel
  resumes it when the device returns (forcing the link up), and ``disable`` cancels that.
- The console netconsole registers: nbcon on 7.x (whose panic text is held back by a
  non-zero kernel.panic), legacy before; the product's release rule must match the flags.

Each scenario uses a dummy device of its own (dummy carries netconsole: it has netpoll).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest

from netconsolectl.sender.configfs import ConfigFS
from tests.kernel.guest.conftest import (
    GATEWAY_MAC,
    GUEST_IP,
    GUEST_IP6,
    HOST_IP,
    HOST_IP6,
    KERNEL,
    NIC,
    Cli,
    sh,
)

pytestmark = pytest.mark.usefixtures("netconsole")

DUMMY, DUMMY_IP, COLLECTOR = "ncdm45", "192.0.2.45", "192.0.2.9"


def wait_for(cond: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def add_dummy() -> None:
    sh(f"ip link add {DUMMY} type dummy && ip addr add {DUMMY_IP}/24 dev {DUMMY}")


@pytest.fixture
def dummy() -> Iterator[None]:
    add_dummy()
    sh(f"ip link set {DUMMY} up")
    try:
        yield
    finally:
        sh(f"ip link del {DUMMY}", check=False)


def state_of(cli: Cli, name: str) -> str:
    r = cli("show", name, "--json")
    assert r.code == 0, str(r)
    return str(json.loads(r.out)["state"])


def test_family_switch_follows_the_kernel(cli: Cli, configfs: ConfigFS,
                                          names: Callable[[str], str]) -> None:
    """IPv6 -> IPv4: recreated on 6.1/6.12 (sticky flag), written in place on 6.18 and 7.x."""
    name = names("family")
    r = cli("add", name, "--remote-ip", HOST_IP6, "--dev", NIC, "--local-ip", GUEST_IP6,
            "--remote-mac", GATEWAY_MAC, "--disabled")
    assert r.code == 0, str(r)
    v4 = ["--remote-ip", HOST_IP, "--local-ip", GUEST_IP, "--dev", NIC,
          "--remote-mac", GATEWAY_MAC]
    dry = cli("set", name, *v4, "--dry-run")
    recreated = not KERNEL.family_switch_in_place
    assert (f"rmdir {configfs.path(name)}" in dry.out) is recreated, str(dry)
    r = cli("set", name, *v4)
    assert r.code == 0, str(r)
    assert ("removed and created again" in r.err) is recreated, str(r)
    assert (configfs.read(f"{name}/remote_ip"), configfs.read(f"{name}/local_ip")) == (
        HOST_IP, GUEST_IP)


def test_device_gone_deactivated_or_disabled(cli: Cli, configfs: ConfigFS, dummy: None,
                                             names: Callable[[str], str]) -> None:
    name = names("gone")
    r = cli("add", name, "--remote-ip", COLLECTOR, "--dev", DUMMY, "--local-ip", DUMMY_IP,
            "--remote-mac", "02:00:00:00:00:09")
    assert r.code == 0, str(r)
    sh(f"ip link del {DUMMY}")
    wait_for(lambda: configfs.read(f"{name}/enabled") == "0", "the kernel stopping the target")
    if not KERNEL.keeps_deactivated_targets:
        # Up to 6.18: disabled for good; the device's return changes nothing.
        assert state_of(cli, name) == "disabled"
        add_dummy()
        time.sleep(2)
        assert configfs.read(f"{name}/enabled") == "0"
        return
    assert state_of(cli, name) == "deactivated"
    r = cli("enable", name)
    assert r.code == 0 and "resumes it by itself" in r.err, str(r)
    add_dummy()  # left down: the kernel's resume forces it up
    wait_for(lambda: configfs.read(f"{name}/enabled") == "1", "the kernel's resume")
    assert "UP" in sh(f"ip -br link show {DUMMY}")
    assert state_of(cli, name) == "enabled"


def test_disable_cancels_the_kernels_resume(cli: Cli, configfs: ConfigFS, dummy: None,
                                            names: Callable[[str], str]) -> None:
    if not KERNEL.keeps_deactivated_targets:
        pytest.skip(KERNEL.lacks("deactivated targets", (7, 0)))
    name = names("cancel")
    r = cli("add", name, "--remote-ip", COLLECTOR, "--dev", DUMMY, "--local-ip", DUMMY_IP,
            "--remote-mac", "02:00:00:00:00:09")
    assert r.code == 0, str(r)
    sh(f"ip link del {DUMMY}")
    wait_for(lambda: configfs.read(f"{name}/enabled") == "0", "the kernel deactivating it")
    r = cli("disable", name)
    assert r.code == 0 and "cancels that resume" in r.err, str(r)
    assert state_of(cli, name) == "disabled"
    add_dummy()
    time.sleep(3)
    assert configfs.read(f"{name}/enabled") == "0", "the kernel resumed a disabled target"


def test_console_kind_matches_the_release_rule(cli: Cli, names: Callable[[str], str]) -> None:
    """The release decides nbcon only when no target is enabled; with one, /proc/consoles
    shows the truth, and the two must agree on every kernel of the tier."""
    from netconsolectl.sender.kernel import netconsole_console_flags

    name = names("console")
    r = cli("add", name, "--remote-ip", HOST_IP, "--remote-port", "9", "--dev", NIC,
            "--local-ip", GUEST_IP, "--remote-mac", GATEWAY_MAC)
    assert r.code == 0, str(r)
    with open("/proc/consoles") as f:
        flags = netconsole_console_flags(f.read())
    assert flags is not None, "no netcon console registered while a target is enabled"
    assert ("N" in flags.split()) is KERNEL.nbcon_console, flags
    shown = json.loads(cli("show", name, "--json").out)["panic_capture"]
    with open("/proc/sys/kernel/panic") as f:
        timeout = int(f.read())
    assert shown["delivered"] is (not KERNEL.nbcon_console or timeout == 0), shown

"""The target from the ``netconsole.netconsole=`` boot parameter: listed, sending, changeable."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from netconsolectl.sender.configfs import ConfigFS
from tests.kernel.guest.conftest import (
    GATEWAY_MAC,
    GUEST_IP,
    HOST_IP,
    KERNEL,
    NIC,
    Cli,
    Wire,
    kfeat,
    requires,
)

pytestmark = pytest.mark.usefixtures("netconsole")


def test_boot_target_without_configfs_directory(cli: Cli, wire: Wire,
                                                kmsg: Callable[..., None],
                                                configfs: ConfigFS) -> None:
    """Before 6.7 the boot target sends from the module parameter alone: no cmdline0
    directory, and list/show/setup create none (a mkdir would make a second target)."""
    if KERNEL.boot_targets_in_configfs:
        pytest.skip(f"{KERNEL.release} shows boot targets as cmdlineN (the case without a "
                    "directory is for kernels before 6.7)")
    for args in (("list", "--json"), ("list",), ("setup",)):
        r = cli(*args)
        assert r.code == 0, str(r)
        assert not configfs.exists("cmdline0"), f"{args} made a cmdline0 directory: {r}"
    assert cli("list", "--json").json() == [] or all(
        e["name"] != "cmdline0" for e in cli("list", "--json").json())
    shown = cli("show", "cmdline0")
    assert shown.code == 3 and not configfs.exists("cmdline0"), str(shown)
    marker = wire.marker("boot-no-dir")
    kmsg(marker)
    wire.expect(wire.boot_port, marker, only_port=False)


def test_boot_target_listed_and_changeable(cli: Cli, wire: Wire, kmsg: Callable[..., None],
                                           configfs: ConfigFS) -> None:
    requires(KERNEL.boot_targets_in_configfs, "boot targets in configfs (cmdlineN)",
             kfeat.BOOT_TARGETS_IN_CONFIGFS)
    listed = cli("list", "--json")
    assert listed.code == 0, str(listed)
    boot = {e["name"]: e for e in listed.json()}.get("cmdline0")
    assert boot is not None, f"cmdline0 missing from list: {listed}"
    assert boot["enabled"] is True and boot["extended"] is True, boot
    assert (boot["dev_name"], boot["local_ip"], boot["remote_ip"]) == (NIC, GUEST_IP, HOST_IP)
    assert (boot["remote_port"], boot["remote_mac"]) == (wire.boot_port, GATEWAY_MAC)

    human = cli("list")
    assert human.code == 0 and "cmdline0" in human.out, str(human)

    before = wire.marker("boot-before")
    kmsg(before)
    wire.expect(wire.boot_port, before, only_port=False)

    port = wire.port()
    r = cli("set", "cmdline0", "--remote-port", str(port))
    assert r.code == 0, str(r)
    assert configfs.read("cmdline0/remote_port") == str(port)
    assert configfs.read("cmdline0/enabled") == "1"
    wire.logs_everything(port)  # the boot target now sends every message there

    after = wire.marker("boot-after")
    kmsg(after)
    wire.expect(port, after, only_port=False)
    wire.expect_absent(after, port=wire.boot_port)

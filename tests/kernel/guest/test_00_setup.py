"""``setup`` from nothing: modules not loaded, configfs not mounted (runs first)."""

from __future__ import annotations

import os

from tests.kernel.guest.conftest import KERNEL, Cli, Wire


def _loaded(module: str) -> bool:
    with open("/proc/modules") as f:
        return any(line.split()[0] == module for line in f)


def _configfs_mounted() -> bool:
    with open("/proc/mounts") as f:
        return any(line.split()[2] == "configfs" for line in f)


def test_setup_from_nothing_twice(cli: Cli, wire: Wire) -> None:
    assert not _loaded("netconsole"), "the guest must start without netconsole"
    assert not _configfs_mounted(), "the guest must start without configfs mounted"

    first = cli.sub("setup")  # the installed entry point, as an admin would run it
    assert first.code == 0, str(first)
    assert _loaded("netconsole"), str(first)
    assert _configfs_mounted()
    assert os.path.isdir("/sys/kernel/config/netconsole")
    assert "mounted configfs" in first.err and "netconsole" in first.err, str(first)
    # The boot parameter's target exists once the module is loaded; from 6.7 setup makes it
    # visible. Before, it cannot be shown, and setup must not mkdir an ordinary cmdline0
    # beside it (that would send every message twice).
    visible = os.path.isdir("/sys/kernel/config/netconsole/cmdline0")
    assert visible == KERNEL.boot_targets_in_configfs, str(first)
    assert ("cmdline0" in first.err) == KERNEL.boot_targets_in_configfs, str(first)

    second = cli("setup")
    assert second.code == 0, str(second)
    assert "nothing to do" in second.err, str(second)

    # Loading the module started the boot target with CON_PRINTBUFFER: the kernel log since
    # boot (at the loglevel already raised to 8) was replayed to the boot port, banner first.
    wire.expect(wire.boot_port, "Linux version ", level=5, only_port=False)

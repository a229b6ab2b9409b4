"""Fixtures shared by the tiers: the kernel-faithful fake and a CLI runner wired to it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from netconsolectl.host.system import System
from netconsolectl.sender.emulation import Device, Emulation
from tests.fakenetwork import DeviceNetwork


def default_devices() -> dict[str, Device]:
    """A small machine: a NIC, a bridge with a port, a bond with a slave, odd devices."""
    return {
        "eth0": Device("eth0", mac="52:54:00:12:34:56", ipv4=["192.0.2.10"],
                           ipv6=["2001:db8::10"]),
        "br0": Device("br0", mac="52:54:00:00:00:b0", ipv4=["198.51.100.1"], kind="bridge"),
        "eth1": Device("eth1", mac="52:54:00:00:00:e1", master="br0"),
        "bond0": Device("bond0", mac="52:54:00:00:00:b1", ipv4=["203.0.113.5"],
                        kind="bond"),
        "eth2": Device("eth2", mac="52:54:00:00:00:e2", master="bond0"),
        "noaddr0": Device("noaddr0", mac="52:54:00:00:00:a0"),
        "nk0": Device("nk0", mac="52:54:00:00:00:c0", ipv4=["192.0.2.99"], netpoll=False),
        "down0": Device("down0", mac="52:54:00:00:00:d0", ipv4=["192.0.2.77"], up=False),
    }


@pytest.fixture
def kernel(tmp_path: Path) -> Emulation:
    return Emulation(tmp_path / "config", default_devices())


def make_system(tmp_path: Path, configfs: Emulation, *, loglevel: int = 7,
                cmdline: str = "quiet") -> System:
    proc = tmp_path / "proc"
    (proc / "sys/kernel").mkdir(parents=True, exist_ok=True)
    (proc / "sys/kernel/printk").write_text(f"{loglevel}\t4\t1\t7\n")
    (proc / "cmdline").write_text(cmdline + "\n")
    (proc / "mounts").write_text(f"configfs {configfs.root} configfs rw 0 0\n")
    sysfs = tmp_path / "sys"
    devices = configfs.devices if isinstance(configfs, Emulation) else {}
    for dev in devices.values():
        d = sysfs / "class/net" / dev.name
        d.mkdir(parents=True, exist_ok=True)
        if dev.master and not (d / "master").is_symlink():
            (sysfs / "class/net" / dev.master).mkdir(parents=True, exist_ok=True)
            (d / "master").symlink_to(os.path.relpath(sysfs / "class/net" / dev.master, d))
    (tmp_path / "lock").mkdir(exist_ok=True)
    # Discovery, doctor and watch ask the fake kernel's devices, not the test host's network.
    network = DeviceNetwork(devices, neighbours={"192.0.2.1": "02:00:00:00:00:01"})
    return System(configfs=configfs, proc=proc, sysfs=sysfs, dev_kmsg=tmp_path / "kmsg",
                  lock_dir=tmp_path / "lock", lock_timeout=2.0, run_dir=tmp_path / "run",
                  network=network.open)


@pytest.fixture
def system(tmp_path: Path, kernel: Emulation) -> System:
    return make_system(tmp_path, kernel)


class CliResult:
    """What one CLI invocation printed and returned."""

    def __init__(self, exit_code: int, stdout: str, stderr: str) -> None:
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr

    def __repr__(self) -> str:
        return f"CliResult({self.exit_code}, stdout={self.stdout!r}, stderr={self.stderr!r})"


Cli = Callable[..., CliResult]


@pytest.fixture
def cli(system: System) -> Cli:
    """Run the real typer app in-process against the injected System."""
    from typer.testing import CliRunner

    from netconsolectl.cli import app

    runner = CliRunner()

    def run(*args: str, system_: System | None = None, env: dict[str, str] | None = None
            ) -> CliResult:
        r = runner.invoke(app, list(args), obj=system_ or system, env=env)
        if r.exception and not isinstance(r.exception, SystemExit):
            raise r.exception
        return CliResult(r.exit_code, r.stdout, r.stderr)

    return run

"""--configfs-root on a plain directory: a sandbox that behaves like the kernel's configfs."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from netconsolectl.sender.configfs import ConfigFS, is_configfs_mount
from netconsolectl.sender.emulation import Emulation
from netconsolectl.sender.root import open_configfs

NOTE = "is not a configfs mount: using it as a sandbox"
# The sandbox enables on the machine's real devices and checks given values as a real host
# does, so the commands that need a device run in a throwaway network namespace (with its own
# sysfs) holding one veth with 192.0.2.10/24 and a neighbour 192.0.2.1.
DEV = ["--dev", "eth0", "--local-ip", "192.0.2.10", "--remote-mac", "02:00:00:00:00:01"]
NETNS_SETUP = (
    "mount -t sysfs sysfs /sys && ip link add eth0 type veth peer name peer0 && "
    "ip link set eth0 up && ip link set peer0 up && ip addr add 192.0.2.10/24 dev eth0 && "
    "ip neigh add 192.0.2.1 lladdr 02:00:00:00:00:01 dev eth0 && exec \"$@\""
)


def _netns_reason() -> str | None:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs root, unshare and ip for a throwaway network namespace"
    probe = subprocess.run(["unshare", "-nm", "sh", "-c", NETNS_SETUP, "sh", "true"],
                           capture_output=True, text=True, check=False)
    return None if probe.returncode == 0 else f"no network namespace: {probe.stderr.strip()}"


@pytest.fixture
def host_printk() -> Iterator[str]:
    """The host's console loglevel line, put back after the test if something changed it
    (code from before the sandbox kept to itself wrote it)."""
    path = Path("/proc/sys/kernel/printk")
    before = path.read_text()
    yield before
    if path.read_text() != before:
        with contextlib.suppress(OSError):
            path.write_text(before.split()[0] + "\n")


needs_netns = pytest.mark.skipif(_netns_reason() is not None, reason=str(_netns_reason()))


def run(root: Path, *args: str, kernel: str | None = None, netns: bool = False
        ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETCONSOLECTL_")}
    if kernel:
        env["NETCONSOLECTL_SANDBOX_KERNEL"] = kernel
    cmd = [sys.executable, "-m", "netconsolectl", "--configfs-root", str(root), *args]
    if netns:
        cmd = ["unshare", "-nm", "sh", "-c", NETNS_SETUP, "sh", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)


def test_plain_directory_is_a_sandbox_and_the_default_root_is_not(tmp_path: Path) -> None:
    assert isinstance(open_configfs(tmp_path), Emulation)
    assert type(open_configfs()) is ConfigFS
    assert type(open_configfs(tmp_path / "missing")) is ConfigFS  # "not mounted" explains it
    mounts = tmp_path / "mounts"
    mounts.write_text(f"none {tmp_path} configfs rw 0 0\n")
    assert is_configfs_mount(tmp_path, mounts)


@needs_netns
def test_add_set_remove_in_a_sandbox(tmp_path: Path) -> None:
    """The README's promise: runbooks tried on a directory, no kernel module."""
    r = run(tmp_path, "add", "web", "--remote-ip", "192.0.2.1", *DEV, "--userdata", "k=v",
            netns=True)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count(NOTE) == 1, r.stderr
    # mkdir made the kernel's attribute files with their defaults (newest profile).
    assert (tmp_path / "netconsole/web/userdata/msgid_enabled").read_text() == "0\n"
    assert (tmp_path / "netconsole/web/enabled").read_text() == "1\n"
    shown = json.loads(run(tmp_path, "show", "web", "--json").stdout)
    assert shown["enabled"] is True and shown["userdata"] == {"k": "v"}
    # The kernel's rules hold: a parameter of an enabled target needs disable/write/enable.
    r = run(tmp_path, "set", "web", "--remote-port", "7000", netns=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "netconsole/web/remote_port").read_text() == "7000\n"
    assert run(tmp_path, "remove", "web").returncode == 0
    assert os.listdir(tmp_path / "netconsole") == []


@needs_netns
def test_sandbox_profile_from_the_environment(tmp_path: Path) -> None:
    r = run(tmp_path, "add", "old", "--remote-ip", "192.0.2.1", *DEV, "--release",
            kernel="6.1", netns=True)
    assert r.returncode == 69, r.stderr
    assert "6.1.0-emulated" in r.stderr and "Linux 6.6" in r.stderr, r.stderr
    assert not (tmp_path / "netconsole/old").exists()
    r = run(tmp_path, "add", "old", "--remote-ip", "192.0.2.1", *DEV, kernel="6.1", netns=True)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "netconsole/old/userdata").exists()
    assert not (tmp_path / "netconsole/old/release").exists()


@needs_netns
def test_sandbox_checks_given_values_as_a_real_host(tmp_path: Path) -> None:
    """Issue 23 item 7: with dev, source and MAC all given, the sandbox used to take them as
    they were (loopback, a multicast MAC, a missing device)."""
    for args, what in [
        (["--dev", "lo", "--local-ip", "127.0.0.1", "--remote-mac", "02:00:00:00:00:01"],
         "loopback"),
        (["--dev", "eth0", "--local-ip", "192.0.2.10", "--remote-mac", "01:00:5e:00:00:01"],
         "multicast"),
        (["--dev", "nosuch0", "--local-ip", "192.0.2.10", "--remote-mac", "02:00:00:00:00:01"],
         "nosuch0"),
    ]:
        r = run(tmp_path, "add", "t", "--remote-ip", "192.0.2.1", *args, netns=True)
        assert r.returncode != 0, (what, r.stderr)
        assert what in r.stderr, r.stderr
        assert not (tmp_path / "netconsole/t").exists()


def test_sandbox_loglevel_and_test_never_touch_the_host(tmp_path: Path, host_printk: str
                                                        ) -> None:
    """Issue 23 item 6: a sandbox's loglevel wrote the host's /proc/sys/kernel/printk and
    `test` the host's /dev/kmsg; both go under the sandbox root now."""
    level = 2 if host_printk.split()[0] != "2" else 3
    r = run(tmp_path, "loglevel", str(level))
    assert r.returncode == 0, r.stderr
    assert Path("/proc/sys/kernel/printk").read_text() == host_printk
    assert (tmp_path / "proc/sys/kernel/printk").read_text().split()[0] == str(level)
    assert run(tmp_path, "loglevel").stdout.startswith(f"console loglevel {level}:")
    from netconsolectl.host.kmsgtest import write_kmsg
    from netconsolectl.host.system import System

    system = System(configfs=open_configfs(tmp_path), dev_kmsg=tmp_path / "must-not-be-used",
                    sandbox=tmp_path)
    write_kmsg(system, 4, "netconsolectl: heartbeat 1")
    assert (tmp_path / "dev/kmsg").read_text() == "<4>netconsolectl: heartbeat 1\n"
    assert not (tmp_path / "must-not-be-used").exists()

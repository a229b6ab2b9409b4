"""--configfs-root on a plain directory: a sandbox that behaves like the kernel's configfs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from netconsolectl.sender.configfs import ConfigFS, is_configfs_mount
from netconsolectl.sender.emulation import Emulation
from netconsolectl.sender.root import open_configfs

NOTE = "is not a configfs mount: using it as a sandbox"
# The sandbox enables on this machine's real devices; loopback exists everywhere and has
# 127.0.0.1, so a target on it can be enabled without root.
LOOP = ["--dev", "lo", "--local-ip", "127.0.0.1", "--remote-mac", "02:00:00:00:00:01"]


def run(root: Path, *args: str, kernel: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETCONSOLECTL_")}
    if kernel:
        env["NETCONSOLECTL_SANDBOX_KERNEL"] = kernel
    return subprocess.run([sys.executable, "-m", "netconsolectl", "--configfs-root",
                           str(root), *args], capture_output=True, text=True, env=env,
                          check=False)


def test_plain_directory_is_a_sandbox_and_the_default_root_is_not(tmp_path: Path) -> None:
    assert isinstance(open_configfs(tmp_path), Emulation)
    assert type(open_configfs()) is ConfigFS
    assert type(open_configfs(tmp_path / "missing")) is ConfigFS  # "not mounted" explains it
    mounts = tmp_path / "mounts"
    mounts.write_text(f"none {tmp_path} configfs rw 0 0\n")
    assert is_configfs_mount(tmp_path, mounts)


def test_add_set_remove_in_a_sandbox(tmp_path: Path) -> None:
    """The README's promise: runbooks tried on a directory, no root, no kernel module."""
    r = run(tmp_path, "add", "web", "--remote-ip", "127.0.0.1", *LOOP, "--userdata", "k=v")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count(NOTE) == 1, r.stderr
    # mkdir made the kernel's attribute files with their defaults (newest profile).
    assert (tmp_path / "netconsole/web/userdata/msgid_enabled").read_text() == "0\n"
    assert (tmp_path / "netconsole/web/enabled").read_text() == "1\n"
    shown = json.loads(run(tmp_path, "show", "web", "--json").stdout)
    assert shown["enabled"] is True and shown["userdata"] == {"k": "v"}
    # The kernel's rules hold: a parameter of an enabled target needs disable/write/enable.
    r = run(tmp_path, "set", "web", "--remote-port", "7000")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "netconsole/web/remote_port").read_text() == "7000\n"
    assert run(tmp_path, "remove", "web").returncode == 0
    assert os.listdir(tmp_path / "netconsole") == []


def test_sandbox_profile_from_the_environment(tmp_path: Path) -> None:
    r = run(tmp_path, "add", "old", "--remote-ip", "127.0.0.1", *LOOP, "--release",
            kernel="6.1")
    assert r.returncode == 69, r.stderr
    assert "6.1.0-emulated" in r.stderr and "Linux 6.6" in r.stderr, r.stderr
    assert not (tmp_path / "netconsole/old").exists()
    r = run(tmp_path, "add", "old", "--remote-ip", "127.0.0.1", *LOOP, kernel="6.1")
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "netconsole/old/userdata").exists()
    assert not (tmp_path / "netconsole/old/release").exists()

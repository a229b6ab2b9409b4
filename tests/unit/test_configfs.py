"""The real file code path of the seam, on a plain directory, and host helpers."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from netconsolectl.host.system import System
from netconsolectl.sender.configfs import ConfigFS
from netconsolectl.sender.setup import boot_target_names


def test_read_strips_exactly_one_newline(tmp_path: Path) -> None:
    fs = ConfigFS(tmp_path)
    (tmp_path / "netconsole/t1").mkdir(parents=True)
    (tmp_path / "netconsole/t1/dev_name").write_bytes(b"eth0\n")
    (tmp_path / "netconsole/t1/value").write_bytes(b"a\n\n")
    assert fs.read("t1/dev_name") == "eth0"
    assert fs.read("t1/value") == "a\n"


def test_write_is_one_unbuffered_store_without_newline(tmp_path: Path) -> None:
    fs = ConfigFS(tmp_path)
    (tmp_path / "netconsole/t1").mkdir(parents=True)
    (tmp_path / "netconsole/t1/remote_port").write_text("6666\n")
    fs.write("t1/remote_port", "514")
    assert (tmp_path / "netconsole/t1/remote_port").read_bytes() == b"514"


def test_write_missing_attribute_keeps_errno(tmp_path: Path) -> None:
    fs = ConfigFS(tmp_path)
    (tmp_path / "netconsole/t1").mkdir(parents=True)
    with pytest.raises(OSError) as e:
        fs.write("t1/release", "1")
    assert e.value.errno == errno.ENOENT  # O_WRONLY never creates a stray file
    assert not (tmp_path / "netconsole/t1/release").exists()


def test_listdir_only_directories(tmp_path: Path) -> None:
    fs = ConfigFS(tmp_path)
    base = tmp_path / "netconsole"
    (base / "b").mkdir(parents=True)
    (base / "a").mkdir()
    (base / "file").write_text("")
    assert fs.listdir() == ["a", "b"]
    assert fs.available() and not fs.is_default_root


@pytest.mark.parametrize(
    ("cmdline", "modular", "names"),
    [
        ("quiet", False, []),
        ("netconsole=@/eth0,@10.0.0.1/", False, ["cmdline0"]),
        ("netconsole=@/eth0,@10.0.0.1/;+@/eth1,@10.0.0.2/", False, ["cmdline0", "cmdline1"]),
        ("netconsole=@/eth0,@10.0.0.1/", True, []),  # a module ignores the bare parameter
        ("netconsole.netconsole=@/eth0,@10.0.0.1/ ro", True, ["cmdline0"]),
        ("netconsole.netconsole=@/eth0,@10.0.0.1/", False, ["cmdline0"]),
    ],
)
def test_boot_target_names(cmdline: str, modular: bool, names: list[str]) -> None:
    assert boot_target_names(cmdline, modular=modular) == names


def test_loglevel_warning_thresholds(tmp_path: Path) -> None:
    printk = tmp_path / "sys/kernel/printk"
    printk.parent.mkdir(parents=True)
    system = System(proc=tmp_path)
    for level, expect in [(8, None), (5, None), (4, "warnings"), (1, "errors")]:
        printk.write_text(f"{level} 4 1 7\n")
        msg = system.loglevel_warning()
        assert (msg is None) if expect is None else (expect in str(msg))
    printk.unlink()
    assert system.console_loglevel() is None and system.loglevel_warning() is None

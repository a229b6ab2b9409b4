"""cmdline and loglevel on the command line, against the fake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netconsolectl.sender.emulation import Emulation
from netconsolectl.sender.setup import boot_target_names
from tests.conftest import Cli, make_system

EXPLICIT = ["--dev", "eth0", "--local-ip", "192.0.2.10", "--remote-mac", "02:00:00:00:00:01"]
T1_PARAM = "6665@192.0.2.10/eth0,6666@192.0.2.1/02:00:00:00:00:01"


def add(cli: Cli, name: str, *extra: str) -> None:
    r = cli("add", name, "--remote-ip", "192.0.2.1", *EXPLICIT, *extra)
    assert r.exit_code == 0, r


# -- cmdline from live targets ----------------------------------------------------------------


def test_cmdline_from_enabled_live_targets(cli: Cli) -> None:
    add(cli, "t1")
    add(cli, "t2", "--disabled", "--remote-port", "514")
    add(cli, "t3", "--extended", "--release", "--userdata", "k=v")
    r = cli("cmdline")
    assert r.exit_code == 0, r
    assert r.stdout == f"netconsole={T1_PARAM};+r{T1_PARAM}\n"
    assert "left out (disabled): t2" in r.stderr
    assert "t3: userdata cannot be given at boot" in r.stderr
    assert "at boot these become cmdline0 (t1), cmdline1 (t3)" in r.stderr


def test_cmdline_named_targets_in_the_order_given(cli: Cli) -> None:
    add(cli, "t1")
    add(cli, "t2", "--disabled", "--remote-port", "514")
    r = cli("cmdline", "t2", "t1", "--value")
    assert r.stdout == T1_PARAM.replace("6666@", "514@") + ";" + T1_PARAM + "\n"
    r = cli("cmdline", "t1", "--module")
    assert r.stdout == f"options netconsole netconsole={T1_PARAM}\n"
    data = json.loads(cli("cmdline", "t1", "--json").stdout)
    assert data == {"value": T1_PARAM, "bytes": len(T1_PARAM), "targets": {"cmdline0": "t1"}}


def test_cmdline_errors(cli: Cli) -> None:
    r = cli("cmdline")
    assert r.exit_code == 2 and "no enabled target" in r.stderr
    add(cli, "t1")
    assert cli("cmdline", "nosuch").exit_code == 3
    assert cli("cmdline", "t1", "--parse", "x").exit_code == 2


def test_cmdline_too_long(cli: Cli) -> None:
    for i in range(6):
        r = cli("add", f"t{i}", "--remote-ip", "2001:db8:aaaa:bbbb:cccc:dddd:eeee:1", "--dev",
                "eth0", "--local-ip", "2001:db8:aaaa:bbbb:cccc:dddd:eeee:2", "--remote-mac",
                "02:00:00:00:00:01", "--disabled")
        assert r.exit_code == 0, r
    r = cli("cmdline", *[f"t{i}" for i in range(6)])
    assert r.exit_code == 2 and "at most 255" in r.stderr


def test_cmdline_output_is_what_the_kernel_parses_back(cli: Cli, tmp_path: Path) -> None:
    add(cli, "t1")
    add(cli, "t2", "--extended")
    value = cli("cmdline", "--value").stdout.strip()
    assert boot_target_names(f"quiet netconsole={value}") == ["cmdline0", "cmdline1"]
    r = cli("cmdline", "--parse", f"netconsole={value}")
    assert r.exit_code == 0, r
    assert "target 2 (cmdline1)" in r.stdout


def test_cmdline_from_a_config_file(cli: Cli, tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text(
        '[targets.a]\nremote_ip = "192.0.2.1"\ndev_name = "eth0"\nlocal_ip = "192.0.2.10"\n'
        'remote_mac = "02:00:00:00:00:01"\n'
        '[targets.b]\nremote_ip = "192.0.2.2"\ndev_name = "eth0"\nremote_mac = '
        '"ff:ff:ff:ff:ff:ff"\nlocal_ip = "192.0.2.10"\nenabled = false\n'
    )
    r = cli("cmdline", "--config", str(p))
    assert r.exit_code == 0, r
    assert r.stdout == f"netconsole={T1_PARAM}\n"
    r = cli("cmdline", "--config", str(p), "b", "--value")
    assert r.stdout == "6665@192.0.2.10/eth0,6666@192.0.2.2/\n"
    assert cli("cmdline", "--config", str(p), "zzz").exit_code == 3


# -- cmdline --parse --------------------------------------------------------------------------


def test_parse_explains_each_field(cli: Cli) -> None:
    r = cli("cmdline", "--parse", "netconsole=+4444@10.0.0.2/eth1,9353@10.0.0.1/12:34:56:78:9a:bc")
    assert r.exit_code == 0, r
    lines = r.stdout.splitlines()
    assert lines[0] == "target 1 (cmdline0): '+4444@10.0.0.2/eth1,9353@10.0.0.1/12:34:56:78:9a:bc'"
    assert any("local UDP port 4444" in x for x in lines)
    assert any("next-hop MAC 12:34:56:78:9a:bc" in x for x in lines)


def test_parse_reports_the_kernel_errors(cli: Cli) -> None:
    r = cli("cmdline", "--parse", "r@/eth0,@10.0.0.1/;@/eth0, 6666@10.0.0.1/;@/eth0,@10.0.0.1")
    assert r.exit_code == 2, r
    out = r.stdout
    assert "Release feature requires extended log message" in out
    assert "warning: whitespace is not allowed" in out
    assert "couldn't parse config at ' 6666'!" in out
    assert "couldn't parse config at '10.0.0.1'!" in out
    assert "3 of 3 target(s) would not be created" in r.stderr


def test_parse_json_and_length(cli: Cli) -> None:
    r = cli("cmdline", "--parse", "@/,@10.0.0.1/;bad", "--json")
    data = json.loads(r.stdout)
    assert r.exit_code == 2
    assert [t["name"] for t in data["targets"]] == ["cmdline0", None]
    assert data["targets"][0]["target"]["remote_ip"] == "10.0.0.1"
    long = ";".join(["@/eth0,@10.0.0.1/"] * 16)
    r = cli("cmdline", "--parse", long)
    assert r.exit_code == 2 and "287 bytes" in r.stderr
    assert cli("cmdline", "--parse", "").stdout == "empty value: no targets\n"


# -- loglevel ---------------------------------------------------------------------------------


def test_loglevel_show_and_set(cli: Cli, tmp_path: Path, kernel: Emulation) -> None:
    r = cli("loglevel")
    assert r.exit_code == 0, r
    assert r.stdout == "console loglevel 7: emerg to info reach netconsole; debug is filtered\n"
    r = cli("loglevel", "8")
    assert r.stdout.startswith("console loglevel 7 -> 8: every level")
    assert (tmp_path / "proc/sys/kernel/printk").read_text() == "8\t4\t1\t7\n"
    r = cli("loglevel", "3")
    assert r.exit_code == 0
    assert "warning: console loglevel is 3" in r.stderr
    data = json.loads(cli("loglevel", "--json").stdout)
    assert data["console_loglevel"] == 3 and data["passing"] == ["emerg", "alert", "crit"]
    assert data["default_console_loglevel"] == 7


@pytest.mark.parametrize("bad", ["0", "9", "x"])
def test_loglevel_refuses_bad_levels(cli: Cli, bad: str) -> None:
    r = cli("loglevel", bad)
    assert r.exit_code == 2, r


def test_loglevel_ignore_loglevel(cli: Cli, tmp_path: Path, kernel: Emulation) -> None:
    system = make_system(tmp_path, kernel, loglevel=1)
    p = system.sysfs / "module/printk/parameters"
    p.mkdir(parents=True)
    (p / "ignore_loglevel").write_text("Y\n")
    r = cli("loglevel", system_=system)
    assert "ignore_loglevel is set" in r.stderr and "warning" not in r.stderr


def test_loglevel_errors(cli: Cli, tmp_path: Path, kernel: Emulation,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    real_open = os.open

    def refuse(path: object, flags: int, *a: object) -> int:
        if str(path).endswith("printk") and flags & os.O_WRONLY:
            raise OSError(errno.EACCES, "Permission denied")
        return real_open(path, flags, *a)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refuse)
    r = cli("loglevel", "8")
    assert r.exit_code == 77, r
    monkeypatch.undo()
    (tmp_path / "proc/sys/kernel/printk").unlink()
    assert cli("loglevel").exit_code == 69
    assert cli("loglevel", "8").exit_code == 69

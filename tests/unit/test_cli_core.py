"""The command-line contract of the core commands, on the kernel-faithful fake."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from netconsolectl.host.system import System
from netconsolectl.sender.configfs import ConfigFS
from netconsolectl.sender.emulation import Emulation
from tests.conftest import Cli, default_devices, make_system

EXPLICIT = ["--dev", "eth0", "--local-ip", "192.0.2.10", "--remote-mac", "02:00:00:00:00:01"]


def add(cli: Cli, name: str = "t1", *extra: str) -> None:
    r = cli("add", name, "--remote-ip", "192.0.2.1", *EXPLICIT, *extra)
    assert r.exit_code == 0, r


def one_line_error(r: object, code: int, *needles: str) -> None:
    assert r.exit_code == code, r  # type: ignore[attr-defined]
    lines = r.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1, r
    assert lines[0].startswith("netconsolectl: error: "), r
    assert "Traceback" not in r.stderr  # type: ignore[attr-defined]
    for n in needles:
        assert n in lines[0], r


# -- add ------------------------------------------------------------------------------------


def test_add_creates_and_enables(cli: Cli, kernel: Emulation) -> None:
    add(cli, "t1", "--extended", "--userdata", "host=web1", "--userdata", "rack=r7",
        "--remote-port", "514", "--local-port", "6000")
    assert kernel.read("t1/enabled") == "1"
    assert kernel.read("t1/dev_name") == "eth0"
    assert kernel.read("t1/remote_port") == "514"
    assert kernel.read("t1/local_port") == "6000"
    assert kernel.read("t1/extended") == "1"
    assert kernel.read("t1/remote_mac") == "02:00:00:00:00:01"
    assert kernel.read("t1/userdata/host/value") == "web1"
    assert kernel.read("t1/local_mac") == "52:54:00:12:34:56"


def test_add_defaults_follow_the_kernel(cli: Cli, kernel: Emulation) -> None:
    add(cli)
    assert kernel.read("t1/local_port") == "6665"
    assert kernel.read("t1/remote_port") == "6666"
    assert kernel.read("t1/extended") == "0"


def test_add_disabled(cli: Cli, kernel: Emulation) -> None:
    add(cli, "t1", "--disabled")
    assert kernel.read("t1/enabled") == "0"


def test_add_dry_run_prints_ordered_ops_and_changes_nothing(cli: Cli, kernel: Emulation) -> None:
    r = cli("add", "t1", "--remote-ip", "192.0.2.1", *EXPLICIT, "--userdata", "k=v", "--dry-run")
    assert r.exit_code == 0, r
    base = kernel.base
    assert r.stdout.splitlines() == [
        f"mkdir {base}/t1",
        f"echo eth0 > {base}/t1/dev_name",
        f"echo 192.0.2.10 > {base}/t1/local_ip",
        f"echo 6665 > {base}/t1/local_port",
        f"echo 192.0.2.1 > {base}/t1/remote_ip",
        f"echo 6666 > {base}/t1/remote_port",
        f"echo 02:00:00:00:00:01 > {base}/t1/remote_mac",
        f"echo 1 > {base}/t1/extended",  # userdata is sent only in the extended format
        f"mkdir {base}/t1/userdata/k",
        f"echo v > {base}/t1/userdata/k/value",
        f"echo 1 > {base}/t1/enabled",
    ]
    assert not kernel.exists("t1")


def test_add_release_implies_extended(cli: Cli, kernel: Emulation) -> None:
    r = cli("add", "t1", "--remote-ip", "192.0.2.1", *EXPLICIT, "--release")
    assert r.exit_code == 0, r
    assert "implies --extended" in r.stderr
    assert kernel.read("t1/extended") == "1" and kernel.read("t1/release") == "1"
    assert kernel.read("t1/enabled") == "1"


def test_add_release_with_no_extended_refused_before_writing(cli: Cli, kernel: Emulation
                                                             ) -> None:
    r = cli("add", "t1", "--remote-ip", "192.0.2.1", *EXPLICIT, "--release", "--no-extended")
    one_line_error(r, 2, "--release needs the extended format")
    assert kernel.listdir() == []


def test_add_existing_target_exit_4(cli: Cli) -> None:
    add(cli)
    r = cli("add", "t1", "--remote-ip", "192.0.2.1", *EXPLICIT)
    one_line_error(r, 4, "already exists")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--remote-ip", "300.1.1.1"], "invalid remote IP"),
        (["--remote-ip", "192.0.2.1", "--remote-mac", "aa-bb-cc-dd-ee-ff"], "invalid MAC"),
        (["--remote-ip", "192.0.2.1", "--remote-port", "0"], "between 1 and 65535"),
        (["--remote-ip", "192.0.2.1", "--local-port", "70000"], "between 1 and 65535"),
        (["--remote-ip", "192.0.2.1", "--dev", "averyveryverylongname"], "at most 15"),
        (["--remote-ip", "192.0.2.1", "--dev", "a/b"], "invalid interface name"),
        (["--remote-ip", "192.0.2.1", "--local-ip", "2001:db8::1"], "different families"),
        (["--remote-ip", "192.0.2.1", "--userdata", "novalue"], "KEY=VALUE"),
        (["--remote-ip", "192.0.2.1", "--userdata", "k" * 54 + "=v"], "at most 53"),
        (["--remote-ip", "192.0.2.1", "--userdata", "k=" + "v" * 200], "at most 199"),
        (["--remote-ip", "192.0.2.1", "--userdata", "k=a", "--userdata", "k=b"], "given twice"),
        (["--remote-ip", "192.0.2.1", "--userdata", "k="], "empty value"),
        (["--remote-ip", "192.0.2.1", "--broadcast", "--remote-mac", "02:00:00:00:00:01"],
         "exclude each other"),
    ],
)
def test_add_invalid_input_exit_2_nothing_written(
    cli: Cli, kernel: Emulation, args: list[str], needle: str
) -> None:
    full = ["add", "t1", *args]
    for opt, val in zip(EXPLICIT[::2], EXPLICIT[1::2], strict=True):
        if opt not in args:
            full += [opt, val]
    r = cli(*full)
    one_line_error(r, 2, needle)
    assert kernel.listdir() == []


@pytest.mark.parametrize("name", ["a/b", "..", "a b", ".x", "x" * 65])
def test_add_invalid_name(cli: Cli, kernel: Emulation, name: str) -> None:
    r = cli("add", name, "--remote-ip", "192.0.2.1", *EXPLICIT)
    one_line_error(r, 2, "invalid target name")
    assert kernel.listdir() == []


def test_usage_errors_one_line_exit_2(cli: Cli) -> None:
    one_line_error(cli("add", "t1", "--remote-ip", "192.0.2.1", "--bogus"), 2, "--bogus")
    one_line_error(cli("add", "t1"), 2, "--remote-ip")
    one_line_error(cli("add", "t1", "--remote-ip", "x", "--remote-port", "http"), 2,
                   "--remote-port")
    one_line_error(cli("frobnicate"), 2, "frobnicate")


# -- errno mappings on enable: a failed add leaves nothing behind ---------------------------


@pytest.mark.parametrize(
    ("dev", "needles"),
    [
        ("nosuch0", ["no network device 'nosuch0'"]),
        ("eth1", ["eth1 is a port of br0", "use --dev br0"]),
        ("eth2", ["eth2 is a port of bond0", "use --dev bond0"]),
        ("nk0", ["does not support netpoll"]),
    ],
)
def test_enable_errno_mapping_and_rollback(
    system: System, kernel: Emulation, dev: str, needles: list[str]
) -> None:
    # The kernel's refusals when enabling, past discovery's own checks (the plan applied as
    # add applies it): each becomes a sentence, and what was created is removed again.
    from netconsolectl.errors import NetconsoleError
    from netconsolectl.sender.plan import apply, plan_add
    from netconsolectl.sender.spec import TargetSpec, parse_ip

    plan = plan_add("t1", TargetSpec(remote_ip=parse_ip("192.0.2.1"), dev_name=dev,
                                     local_ip=parse_ip("192.0.2.10"),
                                     remote_mac="02:00:00:00:00:01", userdata={"k": "v"}))
    with pytest.raises(NetconsoleError) as info:
        apply(system, plan)
    assert info.value.exit_code == 1
    said = f"{info.value} (hint: {info.value.hint})"
    for n in [*needles, "nothing was left behind"]:
        assert n in said
    assert kernel.listdir() == []


@pytest.mark.parametrize(
    ("dev", "needles"),
    [
        ("nosuch0", ["there is no interface named nosuch0"]),
        ("eth1", ["eth1 is a port of bridge br0; use --dev br0"]),
        ("eth2", ["eth2 is a port of bond bond0; use --dev bond0"]),
        ("down0", ["down0 is down; netconsole would force it up"]),
    ],
)
def test_overrides_are_checked_even_when_all_are_given(
    cli: Cli, kernel: Emulation, dev: str, needles: list[str]
) -> None:
    r = cli("add", "t1", "--remote-ip", "192.0.2.1", "--dev", dev, "--local-ip", "192.0.2.10",
            "--remote-mac", "02:00:00:00:00:01", "--userdata", "k=v")
    one_line_error(r, 1, *needles)
    assert kernel.listdir() == []


def test_given_values_are_warned_about(cli: Cli, kernel: Emulation) -> None:
    r = cli("add", "t1", "--remote-ip", "192.0.2.1", "--dev", "eth0", "--local-ip",
            "192.0.2.99", "--remote-mac", "02:00:00:00:00:01")
    assert r.exit_code == 0, r
    assert "warning: local IP 192.0.2.99 is not assigned to eth0" in r.stderr
    r = cli("add", "t2", "--remote-ip", "192.0.2.1", "--dev", "eth0", "--local-ip",
            "192.0.2.10", "--remote-mac", "01:00:5e:00:00:01")
    one_line_error(r, 2, "--remote-mac 01:00:5e:00:00:01 is a multicast address")
    assert kernel.listdir() == ["t1"]


def test_enable_without_address_edestaddrreq(cli: Cli, kernel: Emulation, system: System
                                             ) -> None:
    from netconsolectl.sender.plan import Op, apply, plan_add
    from netconsolectl.sender.spec import TargetSpec, parse_ip

    plan = plan_add("t1", TargetSpec(remote_ip=parse_ip("192.0.2.1"), dev_name="noaddr0",
                                     remote_mac="02:00:00:00:00:01"))
    assert Op("write", "t1/local_ip", "192.0.2.10") not in plan.ops
    with pytest.raises(Exception) as e:
        apply(system, plan)
    assert "no usable IP address" in str(e.value)
    assert getattr(e.value, "exit_code", None) == 1
    assert kernel.listdir() == []


def test_enable_release_without_extended_einval_explained(cli: Cli, kernel: Emulation) -> None:
    add(cli, "t1", "--disabled")
    kernel.write("t1/release", "1")  # as another tool would have left it
    r = cli("enable", "t1")
    one_line_error(r, 2, "release needs the extended format")
    assert kernel.read("t1/enabled") == "0"


def test_permission_denied_exit_77(tmp_path: Path, kernel: Emulation, cli: Cli) -> None:
    class ReadOnly(Emulation):
        def mkdir(self, rel: str) -> None:
            raise PermissionError(13, "Permission denied")

    ro = ReadOnly(kernel.root, kernel.devices)
    r = cli("add", "t1", "--remote-ip", "192.0.2.1", *EXPLICIT,
            system_=make_system(tmp_path / "ro", ro))
    one_line_error(r, 77, "permission denied", "run as root")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop privileges")
def test_permission_denied_real_filesystem(tmp_path: Path) -> None:
    """The real file code path, unprivileged, against a root-owned tree: exit 77. Runs from any
    checkout, even one in a directory only root can enter (tests/unprivileged.py)."""
    import shutil
    import subprocess
    import tempfile

    from tests.unprivileged import NOBODY, nobody_python

    top = Path(tempfile.mkdtemp(prefix="netconsolectl-perm-"))  # parents traversable by all
    os.chmod(top, 0o755)
    root = top / "config"
    (root / "netconsole").mkdir(parents=True)
    python, env = nobody_python()
    try:
        r = subprocess.run(
            [*python, "-m", "netconsolectl", "--configfs-root", str(root), "add", "t1",
             "--remote-ip", "192.0.2.1", *EXPLICIT],
            user=NOBODY, group=NOBODY, extra_groups=[], cwd="/", capture_output=True, text=True,
            env={**os.environ, **env}, timeout=60, check=False,
        )
        assert r.returncode == 77, r.stderr
        assert "run as root" in r.stderr and not (root / "netconsole/t1").exists()
    finally:
        shutil.rmtree(top)


# -- set ------------------------------------------------------------------------------------


def test_set_enabled_target_disables_writes_diff_enables(cli: Cli, kernel: Emulation) -> None:
    add(cli)
    r = cli("set", "t1", "--remote-port", "7000", "--dry-run")
    base = kernel.base
    assert r.stdout.splitlines() == [
        f"echo 0 > {base}/t1/enabled",
        f"echo 7000 > {base}/t1/remote_port",
        f"echo 1 > {base}/t1/enabled",
    ]
    r = cli("set", "t1", "--remote-port", "7000")
    assert r.exit_code == 0, r
    assert kernel.read("t1/remote_port") == "7000" and kernel.read("t1/enabled") == "1"
    assert not any("disable to update" in line for line in kernel.log)


def test_set_same_values_is_a_no_op(cli: Cli, kernel: Emulation) -> None:
    add(cli)
    r = cli("set", "t1", "--remote-port", "6666", "--dev", "eth0")
    assert r.exit_code == 0 and "nothing to do" in r.stderr


def test_set_userdata_only_does_not_disable(cli: Cli, kernel: Emulation) -> None:
    add(cli, "t1", "--extended", "--userdata", "a=1", "--userdata", "b=2")
    r = cli("set", "t1", "--userdata", "a=", "--userdata", "b=3", "--userdata", "c=4", "--dry-run")
    base = kernel.base
    assert r.stdout.splitlines() == [
        f"rmdir {base}/t1/userdata/a",
        f"echo 3 > {base}/t1/userdata/b/value",
        f"mkdir {base}/t1/userdata/c",
        f"echo 4 > {base}/t1/userdata/c/value",
    ]
    assert cli("set", "t1", "--userdata", "a=", "--userdata", "b=3", "--userdata", "c=4"
               ).exit_code == 0
    assert kernel.listdir("t1/userdata") == ["b", "c"]


def test_set_reenable_failure_leaves_disabled_with_new_values(cli: Cli, kernel: Emulation
                                                              ) -> None:
    add(cli)
    # nk0 passes the checks (with warnings); the kernel refuses to enable on it.
    r = cli("set", "t1", "--dev", "nk0")
    assert r.exit_code == 1, r
    error = r.stderr.strip().splitlines()[-1]
    assert "does not support netpoll" in error and "left disabled with the new values" in error
    assert kernel.read("t1/enabled") == "0"
    assert kernel.read("t1/dev_name") == "nk0"
    r = cli("set", "t1", "--dev", "nosuch0")  # refused before anything is written
    one_line_error(r, 1, "there is no interface named nosuch0")
    assert kernel.read("t1/dev_name") == "nk0"


def test_set_ipv6_back_to_ipv4_recreates(cli: Cli, kernel: Emulation) -> None:
    r = cli("add", "t1", "--remote-ip", "2001:db8::1", "--dev", "eth0", "--local-ip",
            "2001:db8::10", "--remote-mac", "02:00:00:00:00:01", "--userdata", "k=v")
    assert r.exit_code == 0, r
    r = cli("set", "t1", "--remote-ip", "192.0.2.1", "--local-ip", "192.0.2.10", "--dev", "eth0",
            "--remote-mac", "02:00:00:00:00:01")
    assert r.exit_code == 0, r
    assert "removed and created again" in r.stderr
    assert kernel.read("t1/remote_ip") == "192.0.2.1"
    assert kernel.read("t1/local_ip") == "192.0.2.10"
    assert kernel.read("t1/userdata/k/value") == "v"
    assert kernel.read("t1/enabled") == "1"


def test_set_no_extended_with_release_refused(cli: Cli, kernel: Emulation) -> None:
    add(cli, "t1", "--release")
    r = cli("set", "t1", "--no-extended")
    one_line_error(r, 2, "--no-release", "would leave release on")
    assert "--release needs" not in r.stderr  # the user never gave --release
    assert kernel.read("t1/extended") == "1"


def test_set_disabled_flag(cli: Cli, kernel: Emulation) -> None:
    add(cli)
    assert cli("set", "t1", "--remote-port", "7000", "--disabled").exit_code == 0
    assert kernel.read("t1/enabled") == "0" and kernel.read("t1/remote_port") == "7000"


def test_set_missing_target_exit_3(cli: Cli) -> None:
    one_line_error(cli("set", "nope", "--remote-port", "1"), 3, "no netconsole target")


# -- enable / disable -----------------------------------------------------------------------


def test_enable_disable_idempotent(cli: Cli, kernel: Emulation) -> None:
    add(cli, "t1", "--disabled")
    for _ in range(2):
        r = cli("enable", "t1")
        assert r.exit_code == 0, r
        assert kernel.read("t1/enabled") == "1"
    assert "already enabled" in r.stderr
    for _ in range(2):
        r = cli("disable", "t1")
        assert r.exit_code == 0, r
        assert kernel.read("t1/enabled") == "0"
    assert "already disabled" in r.stderr
    assert not any("already" in line for line in kernel.log), kernel.log


def test_enable_missing_exit_3(cli: Cli) -> None:
    one_line_error(cli("enable", "nope"), 3)
    one_line_error(cli("disable", "nope"), 3)


# -- list / show ----------------------------------------------------------------------------


def test_list_json_shape(cli: Cli) -> None:
    add(cli, "t1", "--extended", "--userdata", "k=v")
    add(cli, "t2", "--disabled")
    r = cli("list", "--json")
    assert r.exit_code == 0, r
    data = json.loads(r.stdout)
    assert [t["name"] for t in data] == ["t1", "t2"]
    t1 = data[0]
    assert list(t1) == ["name", "enabled", "state", "dev_name", "local_ip", "local_port",
                        "remote_ip",
                        "remote_port", "local_mac", "remote_mac", "extended", "release",
                        "transmit_errors", "userdata", "sysdata"]
    assert t1["sysdata"] is None  # 6.12 has no sysdata toggles
    assert t1["enabled"] is True and t1["extended"] is True and t1["release"] is False
    assert t1["local_port"] == 6665 and t1["remote_port"] == 6666
    assert t1["transmit_errors"] is None  # 6.12 has no such attribute
    assert t1["userdata"] == {"k": "v"}
    assert data[1]["enabled"] is False and data[1]["local_mac"] == "ff:ff:ff:ff:ff:ff"
    assert [t["state"] for t in data] == ["enabled", "disabled"]


def test_transmit_errors_integer_when_present(tmp_path: Path) -> None:

    k = Emulation(tmp_path / "c", default_devices(), profile="6.18")
    k.mkdir("t1")
    from netconsolectl.sender.target import Target

    assert Target(k, "t1").state().transmit_errors == 0


def test_list_human_and_empty(cli: Cli) -> None:
    r = cli("list")
    assert r.exit_code == 0 and "no netconsole targets" in r.stderr
    add(cli, "web-collector", "--extended")
    r = cli("list")
    assert "web-collector" in r.stdout and "192.0.2.1:6666" in r.stdout
    assert "02:00:00:00:00:01" in r.stdout and "extended" in r.stdout


def test_show(cli: Cli) -> None:
    add(cli, "t1", "--userdata", "rack=r7")
    r = cli("show", "t1", "--json")
    assert json.loads(r.stdout)["userdata"] == {"rack": "r7"}
    # What the kernel supports, decided from the target's attribute files and the release.
    assert json.loads(r.stdout)["kernel"] == {
        "release": "6.12.0-emulated", "version": "6.12", "release_attr": True,
        "userdata": True, "max_userdata": 16, "transmit_errors": False, "sysdata": [],
        "boot_targets_in_configfs": True, "family_switch_in_place": False,
        "keeps_deactivated_targets": False, "overlong_value_errno": "E2BIG",
        "release_sysdata_readable": True, "nbcon_console": False}
    r = cli("show", "t1")
    assert "userdata.rack" in r.stdout and "r7" in r.stdout and "local_mac" in r.stdout
    one_line_error(cli("show", "nope"), 3)


def test_list_show_without_netconsole_exit_69(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from netconsolectl.cli import app
    from tests.conftest import CliResult  # noqa: F401

    r = CliRunner().invoke(app, ["--configfs-root", str(tmp_path / "none"), "list"])
    assert r.exit_code == 2, r.stderr  # a path the user gave that does not exist
    assert "does not exist" in r.stderr
    # A directory that is not a configfs mount is a sandbox with netconsole "loaded".
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(app, ["--configfs-root", str(tmp_path / "empty"), "show", "x"])
    assert r.exit_code == 3 and "no netconsole target named 'x'" in r.stderr, r.stderr


def test_show_markup_in_values_printed_literally(cli: Cli) -> None:
    add(cli, "t1", "--userdata", "note=[bold]x[/bold]")
    assert "[bold]x[/bold]" in cli("show", "t1").stdout


def test_boot_targets_attached_listed_and_not_resurrected(tmp_path: Path, cli: Cli) -> None:

    kernel = Emulation(tmp_path / "cfg", default_devices(), boot={"cmdline0": {
        "enabled": "1", "dev_name": "eth0", "local_ip": "192.0.2.10", "remote_ip": "192.0.2.1",
        "local_mac": "52:54:00:12:34:56"}})
    sysm = make_system(tmp_path / "boot", kernel,
                       cmdline="quiet netconsole=@/eth0,@192.0.2.1/;@/eth0,@192.0.2.2/")
    r = cli("list", "--json", system_=sysm)
    data = json.loads(r.stdout)
    # cmdline1 was never created by the kernel (say its netpoll setup failed before 6.12):
    # the mkdir made a blank target, which is taken back.
    assert [(t["name"], t["enabled"], t["remote_ip"]) for t in data] == [
        ("cmdline0", True, "192.0.2.1")]
    assert cli("set", "cmdline0", "--remote-port", "7000", system_=sysm).exit_code == 0
    assert kernel.read("cmdline0/remote_port") == "7000" and kernel.read("cmdline0/enabled") == "1"
    assert cli("remove", "cmdline0", system_=sysm).exit_code == 0
    r = cli("list", "--json", system_=sysm)
    assert json.loads(r.stdout) == [] and kernel.listdir() == []


# -- remove ---------------------------------------------------------------------------------


def test_remove_with_userdata_and_missing_ok(cli: Cli, kernel: Emulation) -> None:
    add(cli, "t1", "--userdata", "a=1", "--userdata", "b=2")
    r = cli("remove", "t1", "--dry-run")
    base = kernel.base
    assert r.stdout.splitlines() == [f"rmdir {base}/t1/userdata/a",
                                     f"rmdir {base}/t1/userdata/b", f"rmdir {base}/t1"]
    assert cli("remove", "t1").exit_code == 0
    assert kernel.listdir() == []
    one_line_error(cli("remove", "t1"), 3, "no netconsole target")
    r = cli("remove", "t1", "--missing-ok")
    assert r.exit_code == 0 and "nothing to do" in r.stderr


# -- setup, loglevel warning, lock, help ----------------------------------------------------


def test_setup_on_sandbox_root(cli: Cli) -> None:
    r = cli("setup")
    assert r.exit_code == 0 and "nothing to do" in r.stderr
    assert cli("setup").exit_code == 0


def test_setup_sandbox_without_netconsole_exit_69(tmp_path: Path) -> None:
    (tmp_path / "cfg").mkdir()
    system = System(configfs=ConfigFS(tmp_path / "cfg"), lock_dir=tmp_path)
    from typer.testing import CliRunner

    from netconsolectl.cli import app

    r = CliRunner().invoke(app, ["setup"], obj=system)
    assert r.exit_code == 69


def test_loglevel_warning(tmp_path: Path, kernel: Emulation, cli: Cli) -> None:
    sysm = make_system(tmp_path / "low", kernel, loglevel=1)
    r = cli("add", "t1", "--remote-ip", "192.0.2.1", *EXPLICIT, system_=sysm)
    assert r.exit_code == 0
    assert "console loglevel is 1" in r.stderr and "dmesg -n 8" in r.stderr
    r = cli("add", "t2", "--remote-ip", "192.0.2.1", *EXPLICIT)  # loglevel 7: quiet
    assert "loglevel" not in r.stderr


def test_lock_serialises(cli: Cli, system: System) -> None:
    import fcntl

    fd = os.open(system.lock_path(), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    system.lock_timeout = 0.2
    try:
        r = cli("add", "t1", "--remote-ip", "192.0.2.1", *EXPLICIT)
        one_line_error(r, 1, "another netconsolectl")
    finally:
        os.close(fd)
    add(cli)


def test_every_command_has_help(cli: Cli) -> None:
    from netconsolectl.cli import app

    r = cli("--help")
    assert "Exit codes" in r.stdout and "77" in r.stdout
    import typer.main

    group = typer.main.get_command(app)
    for name, cmd in group.commands.items():  # type: ignore[attr-defined]
        assert cmd.help, f"{name} has no help"
        assert cli(name, "--help").exit_code == 0


def test_debug_shows_traceback(cli: Cli) -> None:
    r = cli("--debug", "show", "nope")
    assert r.exit_code == 3 and "Traceback" in r.stderr


def test_verify_compares_addresses_as_the_kernel_prints_them(system: System) -> None:
    from ipaddress import ip_address

    from netconsolectl.sender.plan import Op, Plan, verify
    from netconsolectl.sender.spec import TargetSpec

    fs = system.configfs
    fs.mkdir("t1")
    fs.write("t1/remote_ip", "fe80::5efe:c000:201")  # ISATAP: %pI6c prints it dotted
    fake_read = fs.read

    def read(rel: str) -> str:
        return "fe80::5efe:192.0.2.1" if rel == "t1/remote_ip" else fake_read(rel)

    fs.read = read  # type: ignore[method-assign]
    plan = Plan("t1", ops=[Op("write", "t1/remote_ip", "fe80::5efe:c000:201"),
                           Op("write", "t1/remote_port", "7")],
                desired=TargetSpec(remote_ip=ip_address("fe80::5efe:c000:201"), remote_port=7))
    assert verify(system, plan) == [f"{fs.path('t1/remote_port')} reads '6666', expected '7'"]


def test_set_userdata_goes_before_disable_and_enospc_keeps_target_running(
    cli: Cli, kernel: Emulation
) -> None:
    add(cli, "t1", "--extended", *[f"--userdata=k{i}=v" for i in range(16)])
    r = cli("set", "t1", "--remote-port", "7000", "--userdata", "k0=", "--userdata", "new=1",
            "--dry-run")
    base = kernel.base
    assert r.stdout.splitlines() == [
        f"rmdir {base}/t1/userdata/k0",
        f"mkdir {base}/t1/userdata/new",
        f"echo 1 > {base}/t1/userdata/new/value",
        f"echo 0 > {base}/t1/enabled",
        f"echo 7000 > {base}/t1/remote_port",
        f"echo 1 > {base}/t1/enabled",
    ]
    # A 17th entry is invalid input on this kernel: refused before the first write.
    r = cli("set", "t1", "--remote-port", "7000", "--userdata", "extra=1")
    one_line_error(r, 2, "allows at most 16 per target")
    assert kernel.read("t1/enabled") == "1" and kernel.read("t1/remote_port") == "6666"
    assert "extra" not in kernel.listdir("t1/userdata")


# -- global options and the configfs root -----------------------------------------------------


def test_global_options_after_the_command_name(cli: Cli, kernel: Emulation, tmp_path: Path
                                               ) -> None:
    other = Emulation(tmp_path / "other", {})
    r = cli("list", "--json", "--configfs-root", str(other.root))
    assert r.exit_code == 0, r
    assert r.stdout.strip() == "[]"
    r = cli("add", "t1", "--remote-ip", "192.0.2.1", *EXPLICIT, f"--configfs-root={other.root}",
            "--dry-run")
    assert r.exit_code == 0, r
    assert f"mkdir {other.root}/netconsole/t1" in r.stdout
    r = cli("show", "nope", "--debug")
    assert r.exit_code == 3 and "Traceback" in r.stderr
    # after `--`, nothing is taken for a global option
    from netconsolectl.cli.argv import hoist_global_options

    assert hoist_global_options(["show", "--", "--debug"]) == ["show", "--", "--debug"]
    assert hoist_global_options(["--debug", "list", "--configfs-root", "/x"]) == [
        "--debug", "--configfs-root", "/x", "list"]


@pytest.mark.parametrize("root, message", [
    ("/nonexistent/configfs", "configfs root /nonexistent/configfs does not exist"),
    ("/etc/hostname", "configfs root /etc/hostname is not a directory"),
    ("", "--configfs-root is empty"),
])
def test_bad_configfs_root_is_invalid_input(cli: Cli, root: str, message: str) -> None:
    for args in (["list"], ["add", "t1", "--remote-ip", "192.0.2.1", *EXPLICIT]):
        r = cli("--configfs-root", root, *args)
        one_line_error(r, 2, message)
    assert "not mounted" not in r.stderr


def test_apply_a_directory_is_invalid_input(cli: Cli, tmp_path: Path) -> None:
    one_line_error(cli("apply", str(tmp_path)), 2, "is a directory, not a configuration file")


def test_add_userdata_hostname(cli: Cli, kernel: Emulation) -> None:
    import socket

    add(cli, "t1", "--extended", "--userdata-hostname")
    assert kernel.read("t1/userdata/hostname/value") == socket.gethostname()
    r = cli("add", "t2", "--remote-ip", "192.0.2.1", *EXPLICIT, "--extended",
            "--userdata-hostname", "--userdata", "hostname=other")
    one_line_error(r, 2, "hostname")
    assert not kernel.exists("t2")

"""Version-correct behaviour, on each kernel profile of the emulation (sender/kernel.py rules).

Each test builds the CLI on an emulated kernel of one profile and checks what that kernel
has and refuses: 6.1 (no release, no userdata, no cmdlineN), 6.12 (sticky IPv6 flag), 6.18
(sysdata, ENOSPC at 16 with the toggles, the release_enabled read bug, family switched in
place), 7.3 (256 keys, deactivated targets resumed by the kernel).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from netconsolectl.host.system import System
from netconsolectl.sender.emulation import Device, Emulation
from tests.conftest import Cli, CliResult, default_devices, make_system
from tests.unit.test_cli_core import EXPLICIT, one_line_error


def on_kernel(tmp_path: Path, profile: str, boot: dict[str, dict[str, str]] | None = None
              ) -> tuple[Emulation, Cli]:
    """An emulated kernel of ``profile`` and a CLI runner wired to it."""
    from typer.testing import CliRunner

    from netconsolectl.cli import app

    kernel = Emulation(tmp_path / "config", default_devices(), profile=profile, boot=boot)
    system: System = make_system(tmp_path, kernel)

    def run(*args: str) -> CliResult:
        r = CliRunner().invoke(app, list(args), obj=system)
        if r.exception and not isinstance(r.exception, SystemExit):
            raise r.exception
        return CliResult(r.exit_code, r.stdout, r.stderr)

    return kernel, run


def add_args(name: str, *extra: str) -> list[str]:
    return ["add", name, "--remote-ip", "192.0.2.1", *EXPLICIT, *extra]


# -- 6.1 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("extra", "since"), [
    (["--release"], "Linux 6.6"),
    (["--extended", "--userdata", "k=v"], "Linux 6.9"),
    (["--extended", "--sysdata", "cpu_nr"], "Linux 6.15"),
])
def test_6_1_refuses_what_it_lacks_before_writing(tmp_path: Path, extra: list[str],
                                                  since: str) -> None:
    kernel, cli = on_kernel(tmp_path, "6.1")
    r = cli(*add_args("t1", *extra))
    one_line_error(r, 69, since, "6.1.0-emulated")
    assert kernel.listdir() == []


def test_6_1_set_refuses_userdata_and_leaves_the_target_alone(tmp_path: Path) -> None:
    kernel, cli = on_kernel(tmp_path, "6.1")
    assert cli(*add_args("t1", "--extended")).exit_code == 0
    r = cli("set", "t1", "--remote-port", "7000", "--userdata", "k=v")
    one_line_error(r, 69, "Linux 6.9")
    assert kernel.read("t1/remote_port") == "6666" and kernel.read("t1/enabled") == "1"


def test_6_1_no_boot_target_attach_or_adoption(tmp_path: Path) -> None:
    """The boot target is invisible before 6.7: list/show/setup make no cmdline0, and add or
    apply of a cmdline0 is refused (it would be a second target, every message twice)."""
    boot = {"cmdline0": {"enabled": "1", "dev_name": "eth0", "remote_ip": "192.0.2.1"}}
    kernel, cli = on_kernel(tmp_path, "6.1", boot=boot)
    system_cmdline = tmp_path / "proc/cmdline"
    system_cmdline.write_text("netconsole=@/eth0,@192.0.2.1/\n")
    for args in (("list",), ("list", "--json"), ("show", "cmdline0"), ("setup",)):
        cli(*args)
        assert not kernel.exists("cmdline0"), args
    r = cli(*add_args("cmdline0"))
    one_line_error(r, 2, "cmdline0", "6.7")
    conf = tmp_path / "c.toml"
    conf.write_text('[targets.cmdline0]\nremote_ip = "192.0.2.1"\ndev_name = "eth0"\n'
                    'local_ip = "192.0.2.10"\nremote_mac = "02:00:00:00:00:01"\n')
    r = cli("apply", str(conf))
    assert r.exit_code != 0 and "6.7" in (r.stdout + r.stderr), r
    assert kernel.listdir() == []


def test_6_12_attaches_the_boot_target(tmp_path: Path) -> None:
    boot = {"cmdline0": {"enabled": "1", "dev_name": "eth0", "remote_ip": "192.0.2.1"}}
    _kernel, cli = on_kernel(tmp_path, "6.12", boot=boot)
    (tmp_path / "proc/cmdline").write_text("netconsole=@/eth0,@192.0.2.1/\n")
    listed = json.loads(cli("list", "--json").stdout)
    assert [e["name"] for e in listed] == ["cmdline0"]


# -- userdata limits ------------------------------------------------------------------------


@pytest.mark.parametrize(("profile", "limit"), [("6.12", 16), ("6.18", 16), ("7.3", 256)])
def test_userdata_count_refused_before_writing(tmp_path: Path, profile: str, limit: int
                                               ) -> None:
    """Issue: one more entry than the kernel allows is invalid input: exit 2, nothing
    written, on add (before discovery) and on set."""
    kernel, cli = on_kernel(tmp_path, profile)
    many = [f"--userdata=k{i:03d}=v" for i in range(limit + 1)]
    r = cli("add", "t1", "--remote-ip", "192.0.2.1", "--extended", *many)  # no --dev: discovery
    one_line_error(r, 2, f"at most {limit}")
    assert kernel.listdir() == []
    assert cli(*add_args("t1", "--extended", *many[:limit])).exit_code == 0
    r = cli("set", "t1", "--userdata", f"k{limit:03d}=v")
    one_line_error(r, 2, f"at most {limit}")
    assert len(kernel.listdir("t1/userdata")) == limit


def test_6_18_sysdata_count_toward_16(tmp_path: Path) -> None:
    """6.15-6.18: enabled toggles count toward the 16 entries (ENOSPC in the kernel);
    refused before writing, and the kernel's own ENOSPC explained if met."""
    kernel, cli = on_kernel(tmp_path, "6.18")
    keys = [f"--userdata=k{i:02d}=v" for i in range(15)]
    r = cli(*add_args("t1", "--extended", *keys, "--sysdata", "cpu_nr,msgid"))
    one_line_error(r, 2, "15 userdata entries and 2 sysdata toggles", "at most 16")
    assert kernel.listdir() == []
    assert cli(*add_args("t1", "--extended", *keys, "--sysdata", "cpu_nr")).exit_code == 0
    r = cli("set", "t1", "--sysdata", "cpu_nr,taskname")
    one_line_error(r, 2, "at most 16")
    assert kernel.read("t1/userdata/taskname_enabled") == "0"
    # On 7.x the toggles are counted apart.
    kernel, cli = on_kernel(tmp_path / "new", "7.3")
    r = cli(*add_args("t1", "--extended", *keys, "--userdata=k15=v",
                      "--sysdata", "cpu_nr,taskname,release,msgid"))
    assert r.exit_code == 0, r


# -- sysdata --------------------------------------------------------------------------------


def test_sysdata_round_trip_on_6_18(tmp_path: Path) -> None:
    kernel, cli = on_kernel(tmp_path, "6.18")
    assert cli(*add_args("t1", "--extended", "--sysdata", "msgid,cpu_nr")).exit_code == 0
    assert kernel.read("t1/userdata/msgid_enabled") == "1"
    assert kernel.read("t1/userdata/cpu_nr_enabled") == "1"
    shown = json.loads(cli("show", "t1", "--json").stdout)
    # release_enabled reads the taskname bit on 6.18: reported as unknown, not as a lie.
    assert shown["sysdata"] == {"cpu_nr": True, "taskname": False, "release": None,
                                "msgid": True}
    listed = json.loads(cli("list", "--json").stdout)
    assert listed[0]["sysdata"] == shown["sysdata"]
    # set: the given list is the complete set; writable while enabled (no disable).
    r = cli("set", "t1", "--sysdata", "taskname", "--dry-run")
    assert "/t1/enabled" not in r.stdout, r
    assert cli("set", "t1", "--sysdata", "taskname").exit_code == 0
    assert [kernel.read(f"t1/userdata/{n}_enabled") for n in ("cpu_nr", "taskname", "msgid")
            ] == ["0", "1", "0"]
    assert kernel.read("t1/enabled") == "1"
    # 6.18 cannot say whether release is on, so export leaves sysdata out rather than
    # write a set that would turn release off; it says so (7.3 below exports it).
    r = cli("export")
    assert "sysdata" not in tomllib.loads(r.stdout)["targets"]["t1"], r.stdout
    assert "t1: sysdata left out" in r.stderr and "release_enabled" in r.stderr, r
    kernel, cli = on_kernel(tmp_path / "new", "7.3")
    assert cli(*add_args("t1", "--extended", "--sysdata", "taskname")).exit_code == 0
    exported = cli("export").stdout
    assert tomllib.loads(exported)["targets"]["t1"]["sysdata"] == ["taskname"], exported
    # Remove and apply the export: the toggles come back.
    assert cli("remove", "t1").exit_code == 0
    conf = tmp_path / "x.toml"
    conf.write_text(exported)
    r = cli("apply", str(conf))
    assert r.exit_code == 0, r
    assert kernel.read("t1/userdata/taskname_enabled") == "1"
    again = cli("apply", str(conf), "--detailed-exitcode")
    assert again.exit_code == 0, again
    assert cli("set", "t1", "--sysdata", "none").exit_code == 0
    assert kernel.read("t1/userdata/taskname_enabled") == "0"


def test_sysdata_null_before_6_15_and_refused(tmp_path: Path) -> None:
    _kernel, cli = on_kernel(tmp_path, "6.12")
    assert cli(*add_args("t1", "--extended")).exit_code == 0
    assert json.loads(cli("show", "t1", "--json").stdout)["sysdata"] is None
    one_line_error(cli("set", "t1", "--sysdata", "msgid"), 69, "Linux 6.17")
    _kernel, cli = on_kernel(tmp_path / "b", "6.18")
    one_line_error(cli(*add_args("t1", "--sysdata", "bogus")), 2, "cpu_nr")


# -- address family, deactivated targets ----------------------------------------------------


@pytest.mark.parametrize(("profile", "recreated"), [
    ("6.12", True), ("6.18", False), ("7.3", False)])
def test_family_switch_recreates_only_where_the_flag_is_sticky(
        tmp_path: Path, profile: str, recreated: bool) -> None:
    """Issue 22: 6.18 takes IPv4 after IPv6 in place; recreating there loses a cmdlineN
    identity. Only 6.12 and older need the recreate."""
    boot = {"cmdline0": {"enabled": "1", "dev_name": "eth0", "remote_ip": "2001:db8::1",
                         "local_ip": "2001:db8::10"}}
    kernel, cli = on_kernel(tmp_path, profile, boot=boot)
    (tmp_path / "proc/cmdline").write_text("netconsole=@2001:db8::10/eth0,@2001:db8::1/\n")
    assert [e["name"] for e in json.loads(cli("list", "--json").stdout)] == ["cmdline0"]
    v4 = ["--remote-ip", "192.0.2.1", "--local-ip", "192.0.2.10", "--dev", "eth0",
          "--remote-mac", "02:00:00:00:00:01"]
    r = cli("set", "cmdline0", *v4, "--dry-run")
    assert (f"rmdir {kernel.base}/cmdline0" in r.stdout) is recreated, r
    r = cli("set", "cmdline0", *v4)
    assert r.exit_code == 0, r
    assert ("stops being the boot target" in r.stderr) is recreated, r
    assert kernel.read("cmdline0/remote_ip") == "192.0.2.1"
    assert kernel.read("cmdline0/local_ip") == "192.0.2.10"
    assert kernel.read("cmdline0/enabled") == "1"
    assert ("cmdline0" in kernel.boot) is not recreated  # the boot target kept its identity


def _deactivate(tmp_path: Path, profile: str) -> tuple[Emulation, Cli]:
    """A target on usb0, whose device then unregisters."""
    kernel, cli = on_kernel(tmp_path, profile)
    kernel.devices["usb0"] = Device("usb0", mac="52:54:00:00:00:99", ipv4=["192.0.2.20"])
    (tmp_path / "sys/class/net/usb0").mkdir(parents=True)
    assert cli("add", "t1", "--remote-ip", "192.0.2.1", "--dev", "usb0", "--local-ip",
               "192.0.2.20", "--remote-mac", "02:00:00:00:00:01").exit_code == 0
    kernel.unregister("usb0")
    (tmp_path / "sys/class/net/usb0").rmdir()
    assert kernel.read("t1/enabled") == "0"
    return kernel, cli


def test_deactivated_is_a_state_of_its_own(tmp_path: Path) -> None:
    """7.x: device gone -> the kernel reads enabled 0 but will resume it; list and show say
    deactivated, distinct from disabled; enable explains and writes nothing."""
    kernel, cli = _deactivate(tmp_path, "7.3")
    listed = json.loads(cli("list", "--json").stdout)
    assert listed[0]["state"] == "deactivated" and listed[0]["enabled"] is False
    assert json.loads(cli("show", "t1", "--json").stdout)["state"] == "deactivated"
    assert "deactivated" in cli("list").stdout
    r = cli("enable", "t1")
    assert r.exit_code == 0 and "resumes it by itself when usb0 registers again" in r.stderr, r
    assert kernel.deactivated("t1"), "enable cancelled the kernel's resume"
    kernel.register(Device("usb0", mac="52:54:00:00:00:99", ipv4=["192.0.2.20"], up=False))
    assert kernel.read("t1/enabled") == "1", "the resume was not left to the kernel"
    assert kernel.devices["usb0"].up, "the kernel forces the link up at resume"
    # 6.18 disables such a target for good: it is plainly disabled, and enable is tried.
    kernel, cli = _deactivate(tmp_path / "old", "6.18")
    assert json.loads(cli("list", "--json").stdout)[0]["state"] == "disabled"
    r = cli("enable", "t1")
    assert r.exit_code == 1 and "usb0" in r.stderr, r


def test_disable_cancels_the_kernels_resume(tmp_path: Path) -> None:
    """Issue 22: `disable` on a deactivated target was ignored, and the kernel later resumed
    a target the user turned off. It writes enabled=0 (EINVAL, which cancels the resume)."""
    kernel, cli = _deactivate(tmp_path, "7.3")
    r = cli("disable", "t1", "--dry-run")
    assert r.exit_code == 0 and "/t1/enabled || true" in r.stdout, r
    assert kernel.deactivated("t1")
    r = cli("disable", "t1")
    assert r.exit_code == 0, r
    assert "cancels that resume" in r.stderr, r
    assert not kernel.deactivated("t1")
    assert json.loads(cli("show", "t1", "--json").stdout)["state"] == "disabled"
    kernel.register(Device("usb0", mac="52:54:00:00:00:99", ipv4=["192.0.2.20"]))
    assert kernel.read("t1/enabled") == "0", "the kernel resumed a target the user disabled"
    assert cli("disable", "t1").exit_code == 0  # idempotent


def test_planned_disable_cancels_the_resume(tmp_path: Path) -> None:
    """The planner `apply` and the verbs share: enabled=false on a deactivated target is one
    tolerated enabled=0 write; enabled=true writes nothing."""
    from netconsolectl.sender import plan as planner
    from netconsolectl.sender.kernel import detect
    from netconsolectl.sender.spec import TargetSpec
    from netconsolectl.sender.target import Target

    kernel, _cli = _deactivate(tmp_path, "7.3")
    system = make_system(tmp_path, kernel)
    live = Target(kernel, "t1").state()
    k = detect(kernel)
    waiting = planner.waiting_for(system, k, live)
    assert waiting == "usb0"
    assert planner.plan_set(live, TargetSpec(enabled=True), k, waiting).ops == []
    p = planner.plan_set(live, TargetSpec(enabled=False), k, waiting)
    assert [(op.rel, op.value) for op in p.ops] == [("t1/enabled", "0")]
    planner.apply(system, p)
    assert not kernel.deactivated("t1")


def test_release_sysdata_never_turned_off_by_export_and_apply(tmp_path: Path) -> None:
    """Issue 22: on 6.18 export showed the release sysdata off (the read lies), and applying
    that file once another toggle differed turned release off."""
    kernel, cli = on_kernel(tmp_path, "6.18")
    assert cli(*add_args("t1", "--extended", "--sysdata", "release,cpu_nr")).exit_code == 0
    assert json.loads(cli("show", "t1", "--json").stdout)["sysdata"]["release"] is None
    conf = tmp_path / "x.toml"
    conf.write_text(cli("export", "--pin").stdout)
    assert cli("set", "t1", "--sysdata", "release").exit_code == 0  # cpu_nr off meanwhile
    assert cli("apply", str(conf)).exit_code == 0
    assert kernel._sysdata_bit("t1", "release"), "apply turned release off"


def test_6_1_show_json_userdata_is_null(tmp_path: Path) -> None:
    """Issue 22: 6.1 has no userdata/ directory; show --json said {} as if it had one."""
    _kernel, cli = on_kernel(tmp_path, "6.1")
    assert cli(*add_args("t1", "--extended")).exit_code == 0
    assert json.loads(cli("show", "t1", "--json").stdout)["userdata"] is None
    assert json.loads(cli("list", "--json").stdout)[0]["userdata"] is None
    _kernel, cli = on_kernel(tmp_path / "b", "6.12")
    assert cli(*add_args("t1", "--extended")).exit_code == 0
    assert json.loads(cli("show", "t1", "--json").stdout)["userdata"] == {}


def test_show_warns_where_panic_text_is_not_sent(tmp_path: Path) -> None:
    """Issue 22: 7.3 (an nbcon netconsole) with kernel.panic -1 sent no panic text; users
    must not believe crash capture works there. 6.18 delivers it: no warning."""
    _kernel, cli = on_kernel(tmp_path, "7.3")
    (tmp_path / "proc/consoles").write_text("netcon0              -W- (E  N   )\n")
    (tmp_path / "proc/sys/kernel/panic").write_text("-1\n")
    assert cli(*add_args("t1", "--extended")).exit_code == 0
    r = cli("show", "t1", "--json")
    assert "crash capture cannot be relied on" in r.stderr and "kernel.panic is -1" in r.stderr
    assert "fix: sysctl kernel.panic=0" in r.stderr, r
    assert json.loads(r.stdout)["panic_capture"]["delivered"] is False
    (tmp_path / "proc/sys/kernel/panic").write_text("0\n")
    r = cli("show", "t1", "--json")
    assert "crash capture" not in r.stderr and json.loads(r.stdout)["panic_capture"]["delivered"]
    _kernel, cli = on_kernel(tmp_path / "b", "6.18")
    (tmp_path / "b/proc/sys/kernel/panic").write_text("-1\n")
    assert cli(*add_args("t1", "--extended")).exit_code == 0
    assert "crash capture" not in cli("show", "t1").stderr

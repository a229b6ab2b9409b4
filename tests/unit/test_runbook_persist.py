"""persist: the shipped systemd unit, and the boot parameter for modules and built-in kernels."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from netconsolectl.host import persist
from netconsolectl.host.persist import Layout, netconsole_kind, render_unit, shipped_unit
from netconsolectl.host.system import System
from tests.conftest import Cli

EXPLICIT = ["--dev", "eth0", "--local-ip", "192.0.2.10", "--remote-mac", "02:00:00:00:00:01"]
VALUE = "6665@192.0.2.10/eth0,6666@192.0.2.1/02:00:00:00:00:01"


def add(cli: Cli, name: str, *extra: str) -> None:
    r = cli("add", name, "--remote-ip", "192.0.2.1", *EXPLICIT, *extra)
    assert r.exit_code == 0, r


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    seen: list[tuple[str, ...]] = []
    monkeypatch.setattr(persist, "run_command", seen.append)
    return seen


def kernel_tree(root: Path, release: str, *, builtin: bool) -> None:
    d = root / "lib/modules" / release
    d.mkdir(parents=True)
    (d / "modules.builtin").write_text(
        "kernel/drivers/net/netconsole.ko\n" if builtin else "kernel/fs/ext4/ext4.ko\n")
    (d / "modules.dep").write_text(
        "" if builtin else "kernel/drivers/net/netconsole.ko.xz: kernel/net/core/x.ko\n")


def set_release(system: System, release: str) -> None:
    (system.proc / "sys/kernel/osrelease").write_text(release + "\n")


# -- the unit ---------------------------------------------------------------------------------


def parse_unit(text: str) -> configparser.RawConfigParser:
    cp = configparser.RawConfigParser(strict=False, delimiters=("=",))
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read_string(text)
    return cp


@pytest.mark.parametrize("oneshot", [False, True])
def test_shipped_units_wait_for_the_network_and_block_nothing(oneshot: bool) -> None:
    u = parse_unit(shipped_unit(oneshot=oneshot))
    assert u["Unit"]["DefaultDependencies"] == "no"  # so multi-user.target does not wait
    assert "network-online.target" in u["Unit"]["After"].split()
    assert "network-online.target" in u["Unit"]["Wants"].split()
    assert "shutdown.target" in u["Unit"]["Conflicts"]
    assert u["Service"]["Restart"] == "on-failure"
    assert u["Service"]["RestartPreventExitStatus"].split() == ["2", "69", "77"]
    assert u["Install"]["WantedBy"] == "multi-user.target"
    for critical in ("sysinit.target", "basic.target", "network.target",
                     "network-online.target", "local-fs.target"):
        assert critical not in u["Install"].get("WantedBy", "")
        assert critical not in u["Install"].get("RequiredBy", "")
    if oneshot:
        assert u["Service"]["Type"] == "oneshot"
        assert u["Service"]["TimeoutStartSec"] == "5min"
        assert u["Service"]["ExecStart"] == (
            "/usr/bin/netconsolectl apply /etc/netconsolectl.toml")
    else:
        assert u["Service"]["Type"] == "exec"  # watch stays in the foreground
        assert u["Service"]["ExecStart"] == (
            "/usr/bin/netconsolectl watch /etc/netconsolectl.toml")
        assert u["Service"]["ExecReload"] == "/bin/kill -HUP $MAINPID"


def test_render_unit_quotes_and_escapes() -> None:
    text = render_unit(["/opt/my tools/python", "-m", "netconsolectl"], "/etc/nc%1.toml")
    u = parse_unit(text)
    assert u["Service"]["ExecStart"] == (
        '"/opt/my tools/python" -m netconsolectl watch /etc/nc%%1.toml')
    assert u["Service"]["ExecReload"] == "/bin/kill -HUP $MAINPID"
    one = parse_unit(render_unit(["/usr/bin/netconsolectl"], "/etc/a.toml", oneshot=True))
    assert one["Service"]["ExecStart"] == one["Service"]["ExecReload"] == (
        "/usr/bin/netconsolectl apply /etc/a.toml")
    assert u["Unit"]["ConditionPathExists"] == "/etc/nc%%1.toml"
    assert "/etc/nc%%1.toml" in u["Unit"]["Description"]
    with pytest.raises(Exception, match="absolute"):
        render_unit(["/usr/bin/netconsolectl"], "relative.toml")


def _verify(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", "verify", "--man=no", str(path)],
                          capture_output=True, text=True, check=False)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze not installed (Debian package systemd)")
def test_rendered_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = tmp_path / persist.UNIT_NAME
    unit.write_text(render_unit([sys.executable, "-m", "netconsolectl"]))
    r = _verify(unit)
    assert r.returncode == 0, r.stderr
    # The check is real: a missing executable fails it.
    unit.write_text(render_unit(["/nonexistent/netconsolectl"]))
    assert _verify(unit).returncode != 0


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze not installed (Debian package systemd)")
@pytest.mark.parametrize("oneshot", [False, True])
def test_shipped_unit_passes_systemd_analyze_verify(tmp_path: Path, oneshot: bool) -> None:
    # As shipped it names /usr/bin/netconsolectl; point that at something that exists.
    unit = tmp_path / persist.unit_name(oneshot=oneshot)
    unit.write_text(shipped_unit(oneshot=oneshot).replace(persist.SHIPPED_COMMAND, "/bin/true"))
    r = _verify(unit)
    assert r.returncode == 0, r.stderr


def test_netconsole_kind(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    kernel_tree(tmp_path, "6.12.0-mod", builtin=False)
    kernel_tree(tmp_path, "6.12.0-y", builtin=True)
    (tmp_path / "lib/modules/6.12.0-none").mkdir()
    (tmp_path / "lib/modules/6.12.0-none/modules.dep").write_text("kernel/fs/a.ko:\n")
    assert netconsole_kind(layout, "6.12.0-mod") == "module"
    assert netconsole_kind(layout, "6.12.0-y") == "builtin"
    assert netconsole_kind(layout, "6.12.0-none") == "missing"
    assert netconsole_kind(layout, "6.99") == "unknown"
    assert netconsole_kind(layout, None) == "unknown"


# -- persist --boot-param ---------------------------------------------------------------------


def test_boot_param_is_printed_by_default_and_nothing_written(cli: Cli, system: System,
                                                              tmp_path: Path) -> None:
    add(cli, "t1")
    root = tmp_path / "image"
    kernel_tree(root, "6.12.0-test", builtin=False)
    set_release(system, "6.12.0-test")
    r = cli("persist", "--root", str(root))
    assert r.exit_code == 0, r
    assert r.stdout == f"options netconsole netconsole={VALUE}\n"
    assert "netconsole is a module" in r.stderr
    assert "cmdline0 (now t1)" in r.stderr
    assert "printed only; --write writes it" in r.stderr
    assert not (root / "etc").exists()


def test_boot_param_write_for_a_module(cli: Cli, system: System, tmp_path: Path,
                                       calls: list[tuple[str, ...]]) -> None:
    add(cli, "t1")
    root = tmp_path / "image"
    kernel_tree(root, "6.12.0-test", builtin=False)
    set_release(system, "6.12.0-test")
    r = cli("persist", "--boot-param", "--write", "--root", str(root))
    assert r.exit_code == 0, r
    conf = (root / "etc/modprobe.d/netconsolectl.conf").read_text()
    assert f"\noptions netconsole netconsole={VALUE}\n" in conf
    assert (root / "etc/modules-load.d/netconsolectl.conf").read_text().endswith("\nnetconsole\n")
    assert "next: takes effect at the next boot" in r.stderr
    r = cli("persist", "--boot-param", "--write", "--root", str(root))
    assert "is up to date" in r.stderr
    assert calls == []


def test_boot_param_write_for_a_built_in_netconsole(cli: Cli, tmp_path: Path) -> None:
    add(cli, "t1")
    add(cli, "t2", "--remote-port", "514")
    root = tmp_path / "image"
    r = cli("persist", "--boot-param", "--write", "--root", str(root), "--kind", "builtin")
    assert r.exit_code == 69, r  # not a GRUB system
    assert "kernel command line yourself" in r.stderr
    (root / "etc/default").mkdir(parents=True)
    (root / "etc/default/grub").write_text('GRUB_CMDLINE_LINUX=""\n')
    r = cli("persist", "--boot-param", "--write", "--root", str(root), "--kind", "builtin")
    assert r.exit_code == 0, r
    dropin = (root / "etc/default/grub.d/netconsolectl.cfg").read_text()
    value = f"{VALUE};{VALUE.replace('6666@', '514@')}"
    assert f'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX \\"netconsole={value}\\""\n' in dropin
    # What GRUB's shell reads back is the quoted word the kernel needs.
    out = subprocess.run(["sh", "-c", f'GRUB_CMDLINE_LINUX="ro"; . {root}/etc/default/grub.d/'
                          'netconsolectl.cfg; printf %s "$GRUB_CMDLINE_LINUX"'],
                         capture_output=True, text=True, check=True).stdout
    assert out == f'ro "netconsole={value}"'
    assert "update-grub" in r.stderr


def test_boot_param_from_a_config_file_and_unknown_kind(cli: Cli, tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[targets.cmdline0]\nremote_ip = "192.0.2.1"\ndev_name = "eth0"\n'
                 'local_ip = "192.0.2.10"\nremote_mac = "02:00:00:00:00:01"\n')
    r = cli("persist", "--boot-param", "--config", str(p), "--root", str(tmp_path / "r"))
    assert r.exit_code == 0, r
    assert r.stdout == f"netconsole={VALUE}\n"
    assert "could not tell" in r.stderr
    assert "cmdline0 (now" not in r.stderr  # already named as the kernel will name it
    r = cli("persist", "--boot-param", "--write", "--config", str(p), "--root",
            str(tmp_path / "r"))
    assert r.exit_code == 69 and "--kind" in r.stderr


def test_boot_param_warns_about_an_existing_parameter(cli: Cli, tmp_path: Path,
                                                      system: System) -> None:
    add(cli, "t1")
    (system.proc / "cmdline").write_text("quiet netconsole=@/,@192.0.2.9/\n")
    r = cli("persist", "--kind", "module", "--root", str(tmp_path / "r"))
    assert "already has a netconsole= parameter" in r.stderr


def test_write_needs_boot_param(cli: Cli) -> None:
    r = cli("persist", "--service", "--write")
    assert r.exit_code == 2


# -- persist --service ------------------------------------------------------------------------


def test_service_exports_the_live_state_and_enables(cli: Cli, tmp_path: Path,
                                                    calls: list[tuple[str, ...]]) -> None:
    add(cli, "t1", "--userdata", "host=web1")
    root = tmp_path / "image"
    r = cli("persist", "--service", "--root", str(root))
    assert r.exit_code == 0, r
    config = root / "etc/netconsolectl.toml"
    assert "[targets.t1.userdata]" in config.read_text()
    unit = (root / "etc/systemd/system/netconsolectl.service").read_text()
    u = parse_unit(unit)
    assert u["Service"]["ExecStart"].endswith(" watch /etc/netconsolectl.toml")
    assert calls == [("systemctl", f"--root={root}", "enable", "netconsolectl.service")]
    # The exported file is one `apply` accepts and that matches the live state.
    r = cli("apply", str(config), "--detailed-exitcode")
    assert r.exit_code == 0, r


def test_service_keeps_an_existing_file_and_says_when_it_differs(
        cli: Cli, tmp_path: Path, calls: list[tuple[str, ...]]) -> None:
    add(cli, "t1")
    root = tmp_path / "image"
    (root / "etc").mkdir(parents=True)
    config = root / "etc/netconsolectl.toml"
    config.write_text('[targets.other]\nremote_ip = "192.0.2.5"\ndev_name = "eth0"\n'
                      'local_ip = "192.0.2.10"\nremote_mac = "02:00:00:00:00:05"\n')
    r = cli("persist", "--service", "--root", str(root), "--no-enable")
    assert r.exit_code == 0, r
    assert "differs from the live state (other)" in r.stderr
    assert "[targets.other]" in config.read_text()
    assert calls == []
    r = cli("persist", "--service", "--root", str(root), "--no-enable", "--from-live")
    assert "[targets.t1]" in config.read_text()


def test_service_refuses_an_invalid_existing_file(cli: Cli, tmp_path: Path,
                                                  calls: list[tuple[str, ...]]) -> None:
    root = tmp_path / "image"
    (root / "etc").mkdir(parents=True)
    (root / "etc/netconsolectl.toml").write_text("[targets.x]\n")
    r = cli("persist", "--service", "--root", str(root))
    assert r.exit_code == 2 and "remote_ip is required" in r.stderr
    assert not (root / "etc/systemd").exists()


def test_service_with_nothing_to_persist(cli: Cli, tmp_path: Path) -> None:
    r = cli("persist", "--service", "--root", str(tmp_path / "r"))
    assert r.exit_code == 2 and "nothing to persist" in r.stderr


def test_service_dry_run(cli: Cli, tmp_path: Path, calls: list[tuple[str, ...]]) -> None:
    add(cli, "t1")
    root = tmp_path / "image"
    r = cli("persist", "--service", "--boot-param", "--kind", "module", "--write", "--root",
            str(root), "--dry-run")
    assert r.exit_code == 0, r
    out = r.stdout
    assert f"would write {root}/etc/netconsolectl.toml" in out
    assert f"would write {root}/etc/systemd/system/netconsolectl.service" in out
    assert f"would run systemctl --root={root} enable netconsolectl.service" in out
    assert f"would write {root}/etc/modprobe.d/netconsolectl.conf" in out
    assert "  | [Service]" in out
    assert not root.exists() and calls == []


def test_service_on_this_host_reloads_and_enables(tmp_path: Path,
                                                  calls: list[tuple[str, ...]]) -> None:
    steps = persist.service_steps(Layout(), ["/usr/bin/netconsolectl"], "/etc/x.toml",
                                  enable=True)
    assert steps[0].path == Path("/etc/systemd/system/netconsolectl.service")
    assert steps[-1].argv == ("systemctl", "enable", "netconsolectl.service")


def test_write_errors_map_to_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    import errno
    import tempfile

    from netconsolectl.errors import PermissionDenied

    def refuse(*a: object, **k: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(PermissionDenied):
        persist.execute([persist.Step("write", tmp_path / "x/y.conf", "a\n")])


def test_service_oneshot_installs_the_apply_unit(cli: Cli, tmp_path: Path,
                                                 calls: list[tuple[str, ...]]) -> None:
    add(cli, "t1")
    root = tmp_path / "image"
    r = cli("persist", "--service", "--oneshot", "--root", str(root))
    assert r.exit_code == 0, r
    u = parse_unit((root / "etc/systemd/system/netconsolectl-apply.service").read_text())
    assert u["Service"]["Type"] == "oneshot"
    assert u["Service"]["ExecStart"].endswith(" apply /etc/netconsolectl.toml")
    assert not (root / "etc/systemd/system/netconsolectl.service").exists()
    assert calls == [("systemctl", f"--root={root}", "enable", "netconsolectl-apply.service")]
    assert cli("persist", "--oneshot").exit_code == 2

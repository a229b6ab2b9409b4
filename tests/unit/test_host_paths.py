"""The host's own paths, untouched: commands run with no root options on a whole fake host.

pyfakefs lays out a machine (configfs at /sys/kernel/config, /proc, /sys, /dev/kmsg, an empty
/etc, /run/lock) and the CLI runs as a user starts it: no --configfs-root, no environment
override, no injected System. Every file a command writes is compared with the exact set of
paths and contents expected, so a default path that is wrong fails here.

Three things stand in for the kernel and the init system, because pyfakefs holds files only:
the configfs tree is the kernel emulation (netconsolectl/sender/emulation.py) operating on the
files at the default root the CLI chose; the network (where discovery and doctor open the
kernel's) is tests/fakenetwork.py, since pyroute2 would ask the test host's real netlink,
where the fake devices do not exist; and `systemctl` is recorded instead of run.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import typer.main
import typer.testing

import netconsolectl
from netconsolectl.cli import app
from netconsolectl.sender.configfs import DEFAULT_ROOT
from netconsolectl.sender.emulation import Device, Emulation
from tests.fakenetwork import DeviceNetwork

pyfakefs = pytest.importorskip("pyfakefs.fake_filesystem_unittest")
# Everything the commands import lazily is imported before the fake filesystem hides the
# real one.
for _mod in pkgutil.walk_packages(netconsolectl.__path__, "netconsolectl."):
    if _mod.name == "netconsolectl.__main__":
        continue
    importlib.import_module(_mod.name)
# typer builds its click command by looking at annotations; pyfakefs replaces pathlib.Path, so
# build it once while the real one is in place.
COMMAND = typer.main.get_command(app)

RELEASE = "6.12.0-test"
ETH0 = Device("eth0", mac="52:54:00:12:34:56", ipv4=["192.0.2.10"])
COLLECTOR_MAC = "02:00:00:00:00:01"
ALL_OVERRIDES = ["--remote-ip", "192.0.2.1", "--dev", "eth0", "--local-ip", "192.0.2.10",
                 "--remote-mac", COLLECTOR_MAC]
BOOT = "netconsole=6665@192.0.2.10/eth0,6666@192.0.2.50/02:00:00:00:00:32"
T1 = "/sys/kernel/config/netconsole/t1/"


@dataclass
class Host:
    """The fake machine, and what the stand-ins recorded."""

    fs: object
    kernel: Emulation | None = None
    systemctl: list[tuple[str, ...]] = field(default_factory=list)
    laid_out: dict[str, str] = field(default_factory=dict)

    def files(self) -> dict[str, str]:
        out = {}
        for top in ("/etc", "/proc", "/sys", "/dev", "/run", "/lib"):
            for dirpath, _dirs, names in os.walk(top):
                for n in names:
                    p = os.path.join(dirpath, n)
                    with open(p, encoding="utf-8", errors="replace") as f:
                        out[p] = f.read()
        return out

    def written(self) -> dict[str, str]:
        """Files created or changed since the host was laid out (configfs excluded)."""
        return {p: c for p, c in self.files().items()
                if self.laid_out.get(p) != c and not p.startswith(str(DEFAULT_ROOT))}

    def settle(self) -> None:
        self.laid_out = self.files()


def lay_out(fs: object, *, modular: bool, cmdline: str = "quiet") -> None:
    def put(path: str, content: str = "") -> None:
        fs.create_file(path, contents=content)  # type: ignore[attr-defined]

    put("/proc/mounts", "sysfs /sys sysfs rw 0 0\nconfigfs /sys/kernel/config configfs rw 0 0\n")
    put("/proc/cmdline", f"BOOT_IMAGE=/vmlinuz-{RELEASE} root=/dev/vda1 ro {cmdline}\n")
    put("/proc/sys/kernel/printk", "4\t4\t1\t7\n")
    put("/proc/sys/kernel/osrelease", RELEASE + "\n")
    put("/dev/kmsg")
    for attr, value in (("flags", "0x1003"), ("carrier", "1"), ("type", "1"),
                        ("address", ETH0.mac), ("ifindex", "2"), ("operstate", "up")):
        put(f"/sys/class/net/eth0/{attr}", value + "\n")
    ko = "kernel/drivers/net/netconsole.ko.xz"
    if modular:
        put("/sys/module/netconsole/initstate", "live\n")
        put(f"/lib/modules/{RELEASE}/modules.dep", f"{ko}: kernel/fs/configfs/configfs.ko.xz\n")
        put(f"/lib/modules/{RELEASE}/modules.builtin", "kernel/lib/crc32.ko\n")
    else:
        put("/sys/module/netconsole/parameters/oops_only", "N\n")
        put(f"/lib/modules/{RELEASE}/modules.dep", "kernel/fs/fat/fat.ko.xz:\n")
        put(f"/lib/modules/{RELEASE}/modules.builtin", "kernel/drivers/net/netconsole.ko\n")
    for d in ("/etc", "/run/lock"):
        fs.create_dir(d)  # type: ignore[attr-defined]


@pytest.fixture(params=["module", "builtin"])
def host(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Host]:
    from netconsolectl.cli import base
    from netconsolectl.discover import netlink
    from netconsolectl.host import persist

    monkeypatch.delenv("NETCONSOLECTL_CONFIGFS_ROOT", raising=False)
    monkeypatch.delenv("NETCONSOLECTL_DEBUG", raising=False)
    modular = request.param == "module"
    network = DeviceNetwork({"eth0": ETH0}, neighbours={"192.0.2.1": COLLECTOR_MAC})
    with pyfakefs.Patcher() as patcher:
        h = Host(patcher.fs)
        # The unit file ships inside the package: the real one, read-only.
        patcher.fs.add_real_directory(Path(netconsolectl.__file__).parent / "data")
        lay_out(patcher.fs, modular=modular,
                cmdline=("netconsole.netconsole=" + BOOT.split("=", 1)[1]) if modular else BOOT)
        boot = {"cmdline0": {"dev_name": "eth0", "local_ip": "192.0.2.10", "remote_ip":
                             "192.0.2.50", "remote_mac": "02:00:00:00:00:32", "enabled": "1"}}

        def configfs(root: Path = DEFAULT_ROOT) -> Emulation:
            h.kernel = Emulation(root, {"eth0": ETH0}, boot=boot)
            return h.kernel

        monkeypatch.setattr(typer.testing, "_get_command", lambda _app: COMMAND)
        monkeypatch.setattr(base, "open_configfs", configfs)
        # The kernel's network, where discovery and doctor open it.
        monkeypatch.setattr(netlink, "HostNetwork", lambda *_a, **_k: network)
        monkeypatch.setattr(persist, "run_command", h.systemctl.append)
        h.settle()
        yield h


def run(*args: str) -> tuple[int, str, str]:
    from typer.testing import CliRunner

    r = CliRunner().invoke(app, list(args))
    if r.exception and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r.exit_code, r.stdout, r.stderr


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def test_setup_add_list_on_the_default_paths(host: Host) -> None:
    code, _out, err = run("setup")
    assert code == 0, err
    assert "attached boot target cmdline0" in err
    assert read("/sys/kernel/config/netconsole/cmdline0/remote_ip") == "192.0.2.50\n"

    code, _out, err = run("add", "t1", *ALL_OVERRIDES, "--extended")
    assert code == 0, err
    assert {a: read(T1 + a) for a in ("dev_name", "local_ip", "remote_ip", "remote_mac",
                                      "extended", "enabled")} == {
        "dev_name": "eth0\n", "local_ip": "192.0.2.10\n", "remote_ip": "192.0.2.1\n",
        "remote_mac": COLLECTOR_MAC + "\n", "extended": "1\n", "enabled": "1\n"}
    # Outside configfs only the lock file is written, in /run/lock.
    assert host.written() == {"/run/lock/netconsolectl.lock": ""}

    code, out, err = run("list")
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["cmdline0", "t1"]


def test_loglevel_writes_proc(host: Host) -> None:
    code, _out, err = run("loglevel", "8")
    assert code == 0, err
    assert host.written() == {"/proc/sys/kernel/printk": "8\t4\t1\t7\n"}


def test_persist_boot_param_write(host: Host) -> None:
    assert run("add", "t1", *ALL_OVERRIDES)[0] == 0
    host.settle()
    modular = os.path.exists("/sys/module/netconsole/initstate")
    if not modular:
        # A built-in netconsole is written for through GRUB; without /etc/default/grub the
        # machine is not one netconsolectl can write for.
        code, _out, err = run("persist", "--boot-param", "--write")
        assert code == 69, err
        assert host.written() == {}
        host.fs.create_file("/etc/default/grub",  # type: ignore[attr-defined]
                            contents='GRUB_CMDLINE_LINUX=""\n')
        host.settle()
    code, out, err = run("persist", "--boot-param", "--write")
    assert code == 0, err
    # The boot target (attached by the first command run as root) comes first, then t1.
    value = (BOOT.split("=", 1)[1] + ";6665@192.0.2.10/eth0,6666@192.0.2.1/" + COLLECTOR_MAC)
    header = "# Written by `netconsolectl persist --boot-param --write`.\n"
    if modular:
        assert out == f"options netconsole netconsole={value}\n"
        assert host.written() == {
            "/etc/modprobe.d/netconsolectl.conf":
                header + "# netconsole is a module: its boot targets come from this option.\n"
                f"options netconsole netconsole={value}\n",
            "/etc/modules-load.d/netconsolectl.conf":
                header + "# Load netconsole at boot so the targets above are created; they\n"
                "# replay the kernel log from the start of the boot when they register.\n"
                "netconsole\n",
        }
    else:
        assert out == f"netconsole={value}\n"
        assert host.written() == {
            "/etc/default/grub.d/netconsolectl.cfg":
                header + "# netconsole is built in: its boot targets come from the kernel "
                "command line.\n"
                # Quoted: a ';' would end the `linux` command in grub.cfg.
                f'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX \\"netconsole={value}\\""\n',
        }


def test_persist_service(host: Host) -> None:
    assert run("add", "t1", *ALL_OVERRIDES)[0] == 0
    host.settle()
    code, _out, err = run("persist", "--service")
    assert code == 0, err
    written = host.written()
    assert sorted(written) == ["/etc/netconsolectl.toml",
                               "/etc/systemd/system/netconsolectl.service"]
    assert "[targets.t1]" in written["/etc/netconsolectl.toml"]
    assert 'remote_ip = "192.0.2.1"' in written["/etc/netconsolectl.toml"]
    unit = written["/etc/systemd/system/netconsolectl.service"].splitlines()
    assert "ConditionPathExists=/etc/netconsolectl.toml" in unit
    # No netconsolectl script on this host's PATH: the unit runs this interpreter's module.
    assert f"ExecStart={sys.executable} -m netconsolectl watch /etc/netconsolectl.toml" in unit
    # No systemd running in this fake host: no daemon-reload, only the enable.
    assert host.systemctl == [("systemctl", "enable", "netconsolectl.service")]


def test_doctor_reads_the_default_paths(host: Host) -> None:
    assert run("add", "t1", *ALL_OVERRIDES)[0] == 0
    assert run("loglevel", "8")[0] == 0
    host.settle()
    code, out, err = run("doctor")
    lines = out.splitlines()
    assert any(line.startswith("ok    configfs: mounted at /sys/kernel/config")
               for line in lines), out
    assert "ok    t1 route: 192.0.2.1 is reached through eth0 (on-link)" in lines, out
    assert host.written() == {}
    assert code == 0, (out, err)

"""doctor: every check's verdicts on a fake sysfs, a fake network and the fake configfs."""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from netconsolectl.discover.model import Address, Link, Neighbour, Route
from netconsolectl.host import doctor
from netconsolectl.host.system import System
from netconsolectl.sender.configfs import DEFAULT_ROOT, ConfigFS
from netconsolectl.sender.emulation import Emulation
from tests.conftest import Cli, make_system

EXPLICIT = ["--dev", "eth0", "--local-ip", "192.0.2.10", "--remote-mac", "02:00:00:00:00:01"]
IP = ipaddress.ip_address


class Net:
    """Just enough of the host's rtnetlink for doctor."""

    def __init__(self) -> None:
        self.links = {"eth0": Link(2, "eth0", 1, 0x1043, "52:54:00:12:34:56"),
                      "br0": Link(3, "br0", 1, 0x1043, "52:54:00:00:00:b0")}
        self.addrs = {(2, socket.AF_INET): [Address(IP("192.0.2.10"), 24, 2)]}
        self.routes: dict[object, Route | OSError] = {}
        self.neigh: dict[object, Neighbour] = {
            IP("192.0.2.1"): Neighbour(IP("192.0.2.1"), 2, 0x02, "02:00:00:00:00:01")}

    def link_by_name(self, name: str) -> Link:
        if name not in self.links:
            raise OSError(19, "No such device")
        return self.links[name]

    def link_by_index(self, index: int) -> Link:
        return next(x for x in self.links.values() if x.index == index)

    def route_get(self, dst: object, *, oif: int | None = None, src: object = None) -> Route:
        r = self.routes.get(dst, Route(oif=2))
        if isinstance(r, OSError):
            raise r
        return r

    def addresses(self, index: int, family: int) -> list[Address]:
        return self.addrs.get((index, family), [])

    def neighbour(self, address: object, index: int) -> Neighbour | None:
        return self.neigh.get(address)

    def probe(self, *a: object) -> str | None:  # pragma: no cover - doctor never probes
        raise AssertionError("doctor must not probe")


@pytest.fixture
def net() -> Net:
    return Net()


@pytest.fixture
def host(tmp_path: Path, system: System) -> System:
    """A host whose kernel has netconsole as a module, and sysfs device attributes."""
    (system.proc / "sys/kernel/osrelease").write_text("6.12.0-test\n")
    mods = tmp_path / "root/lib/modules/6.12.0-test"
    mods.mkdir(parents=True)
    (mods / "modules.dep").write_text("kernel/drivers/net/netconsole.ko.xz:\n")
    for dev in ("eth0", "br0", "eth1", "bond0", "eth2", "noaddr0", "nk0", "down0"):
        d = system.sysfs / "class/net" / dev
        (d / "flags").write_text("0x1002\n" if dev == "down0" else "0x1003\n")
        (d / "carrier").write_text("1\n")
        (d / "type").write_text("1\n")
    return system


def run(system: System, net: Net, tmp_path: Path, *, euid: int = 0) -> list[doctor.Check]:
    from netconsolectl.sender.setup import read_live

    @contextmanager
    def factory() -> Iterator[Net]:
        yield net

    states = list(read_live(system).values()) if system.configfs.available() else None
    return doctor.run(system, states, network=factory, root=tmp_path / "root",  # type: ignore[arg-type]
                      euid=euid)


def verdicts(checks: list[doctor.Check], target: str | None = None) -> dict[str, str]:
    return {c.name: c.verdict for c in checks if c.target == target}


def find(checks: list[doctor.Check], name: str, target: str | None = None) -> doctor.Check:
    return next(c for c in checks if c.name == name and c.target == target)


def add(cli: Cli, name: str, *extra: str) -> None:
    r = cli("add", name, "--remote-ip", "192.0.2.1", *EXPLICIT, *extra)
    assert r.exit_code == 0, r


# -- host -------------------------------------------------------------------------------------


def test_healthy_host_and_target(host: System, net: Net, tmp_path: Path, cli: Cli) -> None:
    add(cli, "t1", "--extended")  # (the basic format has an info check of its own)
    checks = run(host, net, tmp_path)
    assert verdicts(checks) == {"root": "ok", "configfs": "ok", "module": "info",
                                "dynamic": "ok", "loglevel": "ok", "kernel": "info",
                                "panic": "ok"}
    assert verdicts(checks, "t1") == {"enabled": "ok", "device": "ok", "netpoll": "ok",
                                      "source": "ok", "route": "ok", "next-hop": "ok"}
    assert doctor.exit_code(checks) == 0
    assert find(checks, "next-hop", "t1").detail == (
        "02:00:00:00:00:01 is the current MAC of the next hop 192.0.2.1")
    # What the kernel supports, and what it lacks with the version that adds it (6.12 fake).
    assert find(checks, "kernel").detail == (
        "6.12.0-emulated: has extended, release, cmdlineN boot targets, userdata (16 keys); "
        "lacks transmit_errors (6.13+), sysdata cpu_nr,taskname,release (6.15+), "
        "sysdata msgid (6.17+), resume after the device returns (7.0+)")


def test_hidden_boot_targets_on_6_1_are_not_no_targets(tmp_path: Path) -> None:
    """Before 6.7 the boot targets run without a configfs directory: not "nothing is sent"."""
    from netconsolectl.sender.emulation import Emulation
    from tests.conftest import make_system

    system = make_system(tmp_path, Emulation(tmp_path / "cfg", {}, profile="6.1"),
                         cmdline="netconsole=@/eth0,@192.0.2.1/")
    checks = doctor.run(system, [], network=None, root=tmp_path, euid=0)
    assert find(checks, "targets").verdict == "ok", checks
    assert "does not show them in configfs" in find(checks, "targets").detail


def test_not_root_is_information_only(host: System, net: Net, tmp_path: Path) -> None:
    c = find(run(host, net, tmp_path, euid=1000), "root")
    assert c.verdict == "info" and "sudo" in (c.fix or "")


def test_no_targets_is_a_warning(host: System, net: Net, tmp_path: Path) -> None:
    checks = run(host, net, tmp_path)
    assert find(checks, "targets").verdict == "warn"
    assert doctor.exit_code(checks) == 1


@pytest.mark.parametrize(("loglevel", "verdict"), [(8, "ok"), (5, "ok"), (4, "warn"),
                                                   (1, "warn")])
def test_loglevel(tmp_path: Path, kernel: Emulation, net: Net, loglevel: int,
                  verdict: str) -> None:
    system = make_system(tmp_path, kernel, loglevel=loglevel)
    c = find(run(system, net, tmp_path), "loglevel")
    assert c.verdict == verdict
    if verdict == "warn":
        assert "netconsolectl loglevel 8" in (c.fix or "")


def real_root_system(tmp_path: Path, *, mounted: bool, netconsole: bool,
                     module_loaded: bool = False) -> System:
    """A System whose configfs is the default root path (so module checks run), faked."""
    system = make_system(tmp_path, Emulation(tmp_path / "unused"))
    system.configfs = ConfigFS(DEFAULT_ROOT)
    mounts = "configfs /sys/kernel/config configfs rw 0 0\n" if mounted else ""
    (system.proc / "mounts").write_text(mounts)
    (system.proc / "sys/kernel/osrelease").write_text("6.12.0-test\n")
    if module_loaded:
        (system.sysfs / "module/netconsole").mkdir(parents=True)
    return system


def test_module_states(tmp_path: Path, net: Net, monkeypatch: pytest.MonkeyPatch) -> None:
    if ConfigFS(DEFAULT_ROOT).available():  # pragma: no cover - a host with netconsole
        pytest.skip("this host really has netconsole configured")
    root = tmp_path / "root"
    mods = root / "lib/modules/6.12.0-test"
    mods.mkdir(parents=True)
    system = real_root_system(tmp_path, mounted=False, netconsole=False)
    checks = run(system, net, tmp_path)
    assert verdicts(checks)["configfs"] == "fail"
    assert find(checks, "module").verdict == "warn"  # no module lists: cannot tell
    (mods / "modules.dep").write_text("kernel/fs/ext4/ext4.ko:\n")
    assert find(run(system, net, tmp_path), "module").verdict == "fail"  # no netconsole.ko
    (mods / "modules.dep").write_text("kernel/drivers/net/netconsole.ko:\n")
    c = find(run(system, net, tmp_path), "module")
    assert c.verdict == "warn" and c.fix == "netconsolectl setup"
    assert find(run(system, net, tmp_path), "dynamic").verdict == "info"
    (root / "boot").mkdir()
    (root / "boot/config-6.12.0-test").write_text("# CONFIG_NETCONSOLE_DYNAMIC is not set\n")
    assert find(run(system, net, tmp_path), "dynamic").verdict == "fail"
    (root / "boot/config-6.12.0-test").write_text("CONFIG_NETCONSOLE_DYNAMIC=y\n")
    c = find(run(system, net, tmp_path), "dynamic")
    assert c.verdict == "info" and "has CONFIG_NETCONSOLE_DYNAMIC" in c.detail
    loaded = real_root_system(tmp_path / "l", mounted=True, netconsole=False, module_loaded=True)
    (root / "boot/config-6.12.0-test").unlink()
    checks = run(loaded, net, tmp_path)
    assert find(checks, "module").verdict == "ok"
    assert find(checks, "dynamic").verdict == "fail"  # loaded, mounted, no netconsole/


# -- targets ----------------------------------------------------------------------------------


def test_disabled_and_release_without_extended(host: System, net: Net, tmp_path: Path,
                                               cli: Cli, kernel: Emulation) -> None:
    add(cli, "t1", "--disabled")
    kernel.write("t1/release", "1")
    checks = run(host, net, tmp_path)
    assert find(checks, "enabled", "t1").verdict == "warn"
    assert find(checks, "format", "t1").verdict == "fail"
    assert find(checks, "netpoll", "t1").verdict == "info"


def test_boot_target_disabled(host: System, net: Net, tmp_path: Path,
                              kernel: Emulation) -> None:
    kernel.mkdir("cmdline0")
    c = find(run(host, net, tmp_path), "enabled", "cmdline0")
    assert c.verdict == "warn" and "boot target" in c.detail


def test_missing_device(host: System, net: Net, tmp_path: Path, cli: Cli,
                        kernel: Emulation) -> None:
    add(cli, "t1", "--disabled")
    kernel.write("t1/dev_name", "gone0")
    checks = run(host, net, tmp_path)
    c = find(checks, "device", "t1")
    assert c.verdict == "fail" and "gone0" in c.detail
    assert "route" not in verdicts(checks, "t1")


def test_device_down_no_carrier_bridge_port_and_link_types(host: System, net: Net,
                                                           tmp_path: Path, cli: Cli,
                                                           kernel: Emulation) -> None:
    add(cli, "t1")
    eth0 = host.sysfs / "class/net/eth0"
    (eth0 / "flags").write_text("0x1002\n")
    assert find(run(host, net, tmp_path), "device", "t1").verdict == "warn"
    (eth0 / "flags").write_text("0x1003\n")
    (eth0 / "carrier").write_text("0\n")
    c = find(run(host, net, tmp_path), "device", "t1")
    assert c.verdict == "warn" and "carrier" in c.detail
    (eth0 / "carrier").write_text("1\n")
    (eth0 / "wireless").mkdir()
    assert find(run(host, net, tmp_path), "netpoll", "t1").verdict == "warn"
    (eth0 / "wireless").rmdir()
    (eth0 / "type").write_text("65534\n")
    assert find(run(host, net, tmp_path), "netpoll", "t1").verdict == "fail"
    (eth0 / "type").write_text("1\n")
    add(cli, "t2", "--disabled")
    kernel.write("t2/dev_name", "eth1")  # a port of br0
    c = find(run(host, net, tmp_path), "master", "t2")
    assert c.verdict == "fail" and c.fix == "netconsolectl set t2 --dev br0"


def test_source_address_gone(host: System, net: Net, tmp_path: Path, cli: Cli) -> None:
    add(cli, "t1")
    net.addrs = {}
    c = find(run(host, net, tmp_path), "source", "t1")
    assert c.verdict == "fail" and "no longer on eth0" in c.detail


def test_route_checks(host: System, net: Net, tmp_path: Path, cli: Cli) -> None:
    add(cli, "t1")
    net.routes[IP("192.0.2.1")] = Route(oif=3, gateway=IP("198.51.100.254"))
    c = find(run(host, net, tmp_path), "route", "t1")
    assert c.verdict == "warn" and "leaves through br0 via 198.51.100.254" in c.detail
    net.routes[IP("192.0.2.1")] = OSError(101, "Network is unreachable")
    c = find(run(host, net, tmp_path), "route", "t1")
    assert c.verdict == "fail" and "no route" in c.detail
    net.routes[IP("192.0.2.1")] = Route(oif=2, type=6)
    assert find(run(host, net, tmp_path), "route", "t1").verdict == "fail"


def test_next_hop_mac(host: System, net: Net, tmp_path: Path, cli: Cli,
                      kernel: Emulation) -> None:
    add(cli, "t1")
    net.neigh[IP("192.0.2.1")] = Neighbour(IP("192.0.2.1"), 2, 0x04, "02:00:00:00:00:99")
    c = find(run(host, net, tmp_path), "next-hop", "t1")
    assert c.verdict == "fail" and "now at 02:00:00:00:00:99 (STALE)" in c.detail
    net.neigh.clear()
    assert find(run(host, net, tmp_path), "next-hop", "t1").verdict == "info"
    net.routes[IP("192.0.2.1")] = Route(oif=2, gateway=IP("192.0.2.254"))
    net.neigh[IP("192.0.2.254")] = Neighbour(IP("192.0.2.254"), 2, 0x02, "02:00:00:00:00:01")
    assert find(run(host, net, tmp_path), "next-hop", "t1").verdict == "ok"
    assert cli("set", "t1", "--broadcast").exit_code == 0
    c = find(run(host, net, tmp_path), "next-hop", "t1")
    assert c.verdict == "warn" and "broadcast" in c.detail


def test_network_unavailable_is_information(host: System, tmp_path: Path, cli: Cli) -> None:
    add(cli, "t1")

    def broken() -> Net:
        raise PermissionError(13, "Permission denied")

    from netconsolectl.sender.setup import read_live

    checks = doctor.run(host, list(read_live(host).values()), network=broken,  # type: ignore[arg-type]
                        root=tmp_path / "root", euid=0)
    c = find(checks, "network", "t1")
    assert c.verdict == "info" and "Permission denied" in c.detail


def test_line_format() -> None:
    assert doctor.Check("configfs", "ok", "mounted").line() == "ok    configfs: mounted"
    assert doctor.Check("device", "fail", "gone", "fix it", "t1").line() == (
        "FAIL  t1 device: gone (fix: fix it)")


# -- command line -----------------------------------------------------------------------------


def test_cli_doctor(host: System, net: Net, tmp_path: Path, cli: Cli,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    @contextmanager
    def factory() -> Iterator[Net]:
        yield net

    monkeypatch.setattr(doctor, "HOST_ROOT", tmp_path / "root")
    add(cli, "t1")
    host.network = factory  # after add: doctor asks this network
    r = cli("doctor")
    assert r.exit_code == 0, r
    lines = r.stdout.splitlines()
    assert lines[0].startswith("ok    root: ")
    assert "ok    t1 route: 192.0.2.1 is reached through eth0 (on-link)" in lines
    assert "no problems found" in r.stderr
    net.addrs = {}
    r = cli("doctor", "--json")
    assert r.exit_code == 1
    data = json.loads(r.stdout)
    assert data["ok"] is False
    bad = [c for c in data["checks"] if c["verdict"] == "fail"]
    assert bad == [{"check": "source", "target": "t1", "verdict": "fail",
                    "detail": "local_ip 192.0.2.10 is no longer on eth0: the collector sees a "
                              "stale source (or filters it out)",
                    "fix": "netconsolectl apply (re-discovers), or set t1 --local-ip IP"}]


def test_cli_doctor_without_netconsole(cli: Cli, tmp_path: Path) -> None:
    system = make_system(tmp_path / "o", Emulation(tmp_path / "other"))
    system.configfs = ConfigFS(tmp_path / "nothing")
    r = cli("doctor", system_=system)
    assert r.exit_code == 1
    assert "FAIL  configfs: not mounted" in r.stdout


# -- kernel eras (issue 22) -------------------------------------------------------------------


def _era(tmp_path: Path, profile: str) -> tuple[Emulation, System, Cli]:
    from tests.unit.test_kernel_versions import on_kernel

    kernel, cli = on_kernel(tmp_path, profile)
    return kernel, make_system(tmp_path, kernel), cli


def test_deactivated_target_gets_the_fix_that_works(tmp_path: Path, net: Net) -> None:
    """Issue 22: on 7.x doctor called a deactivated target disabled and suggested `enable`,
    which cannot work while the device is gone (and would cancel the kernel's resume)."""
    from netconsolectl.sender.emulation import Device

    kernel, system, cli = _era(tmp_path, "7.3")
    kernel.devices["usb0"] = Device("usb0", ipv4=["192.0.2.20"])
    (system.sysfs / "class/net/usb0").mkdir(parents=True)
    assert cli("add", "t1", "--remote-ip", "192.0.2.1", "--dev", "usb0", "--local-ip",
               "192.0.2.20", "--remote-mac", "02:00:00:00:00:01").exit_code == 0
    kernel.unregister("usb0")
    (system.sysfs / "class/net/usb0").rmdir()
    checks = run(system, net, tmp_path)
    c = find(checks, "enabled", "t1")
    assert c.verdict == "warn" and c.detail.startswith("deactivated: usb0 is gone"), c
    assert "enable" not in (c.fix or "") and "bring usb0 back" in (c.fix or ""), c
    assert "device" not in verdicts(checks, "t1"), checks
    # The fix named works: set --dev moves it to a present device and enables it.
    assert cli("set", "t1", "--dev", "eth0", "--local-ip", "192.0.2.10").exit_code == 0
    assert kernel.read("t1/enabled") == "1"


def test_doctor_warns_where_panic_text_is_not_sent(tmp_path: Path, net: Net) -> None:
    """Issue 22: on 7.3 with kernel.panic -1 no panic text left the machine."""
    _kernel, system, cli = _era(tmp_path, "7.3")
    (system.proc / "consoles").write_text("netcon0              -W- (E  N   )\n")
    (system.proc / "sys/kernel/panic").write_text("-1\n")
    add(cli, "t1")
    c = find(run(system, net, tmp_path), "panic")
    assert c.verdict == "warn" and "nbcon" in c.detail and "kernel.panic is -1" in c.detail, c
    assert "sysctl kernel.panic=0" in (c.fix or ""), c
    (system.proc / "sys/kernel/panic").write_text("0\n")
    assert find(run(system, net, tmp_path), "panic").verdict == "ok"
    _kernel, system, cli = _era(tmp_path / "b", "6.18")
    add(cli, "t1")
    assert find(run(system, net, tmp_path / "b"), "panic").verdict == "ok"

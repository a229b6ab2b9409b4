"""Guest side of the real-kernel tier: fixtures for tests that run inside the test VM.

These tests are collected only in the guest (tests/kernel/conftest.py ignores this directory
elsewhere); the host boots the VM once and runs ``pytest tests/kernel/guest`` in it. Read the
docstring of tests/kernel/test_kernel.py for the whole picture and for how to add a scenario.

Fixtures:

- ``cli``: runs netconsolectl in-process through typer's CliRunner against the real
  /sys/kernel/config (``cli.sub(...)`` runs ``python -m netconsolectl`` as a real process;
  each one costs ~15 s of emulated Python, so keep them to a handful);
- ``wire``: host ports to send to, unique markers, and ``expect``/``expect_absent``
  statements about what the host must (not) receive, checked there after the VM exits;
  ``wire.listen_port`` is where ``netconsolectl listen`` runs on the host, and
  ``expect_listen`` what it must report (judged by tests/kernel/test_listen.py);
- ``kmsg``: writes a message to /dev/kmsg;
- ``names``: unique target names, removed after the test whatever happened;
- ``configfs``: the product's ConfigFS seam on the real root, for raw reads;
- ``netconsole``: configfs mounted and the module loaded (by ``setup``, as a user would);
- ``lab``: extra devices (bridge and port, bond slave, no address, down, no netpoll).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from netconsolectl.sender import kernel as kfeat
from netconsolectl.sender.configfs import ConfigFS
from tests import conformance
from tests.kernel import TIER_DIR_ENV

if not os.environ.get(TIER_DIR_ENV):
    raise pytest.UsageError(
        "tests/kernel/guest runs inside the test VM only; run tests/kernel on the host instead"
    )
SHARED = Path(os.environ[TIER_DIR_ENV])
CONFIG: dict[str, Any] = json.loads((SHARED / "config.json").read_text())
NIC = CONFIG["nic"]
GUEST_IP = CONFIG["guest_ip"]
GUEST_IP6 = CONFIG["guest_ip6"]
HOST_IP = CONFIG["host_ip"]
HOST_IP6 = CONFIG["host_ip6"]
GATEWAY_MAC = CONFIG["gateway_mac"]
# The whole netconsole.netconsole= value: cmdline0 as tests/kernel/vm.py writes it, then
# cmdline1 as netconsolectl's formatter wrote it from GENERATED_BOOT_SPEC (list --json keys).
BOOT_PARAM: str = CONFIG["boot_param"]
GENERATED_BOOT_SPEC: dict[str, Any] = CONFIG["generated_boot_spec"]
# What the booted kernel's netconsole has, as the product judges it from the release string.
KERNEL = kfeat.for_release(os.uname().release)


def requires(has: bool, what: str, since: kfeat.Version) -> None:
    """Skip the calling test, saying which feature this kernel lacks and since when."""
    if not has:
        pytest.skip(KERNEL.lacks(what, since))


def userdata_args(*items: str) -> list[str]:
    """``--userdata ITEM`` for each item where the kernel has userdata (6.9+), else nothing:
    for tests whose subject is not userdata itself."""
    return [a for item in items for a in ("--userdata", item)] if KERNEL.userdata else []


def userdata_sent(data: dict[str, str]) -> dict[str, str]:
    """The userdata lines a message carries on this kernel (none before 6.9)."""
    return data if KERNEL.userdata else {}


def sh(cmd: str, check: bool = True) -> str:
    """Run a shell command in the guest; its output, or AssertionError with it."""
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd!r} failed ({r.returncode}): {r.stdout}{r.stderr}")
    return r.stdout


# -- results back to the host ---------------------------------------------------------------


class Recorder:
    """Appends one JSON object per line to the shared results file, synced at once.

    The file survives a guest crash up to the last line written, so the host can tell which
    test was running.
    """

    def __init__(self, path: Path) -> None:
        self._f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives for the session

    def add(self, **record: Any) -> None:
        self._f.write(json.dumps(record) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())


RECORDER = Recorder(SHARED / "results.jsonl")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    rec: dict[str, Any] = {"kind": "report", "nodeid": report.nodeid, "when": report.when,
                           "outcome": report.outcome, "duration": round(report.duration, 3)}
    if report.failed:
        rec["longrepr"] = report.longreprtext
    elif report.skipped and isinstance(report.longrepr, tuple):
        rec["longrepr"] = str(report.longrepr[2])
    RECORDER.add(**rec)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        RECORDER.add(kind="collect-error", nodeid=report.nodeid, longrepr=report.longreprtext)


def _uptime() -> float:
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def pytest_sessionstart(session: pytest.Session) -> None:
    RECORDER.add(kind="start", uptime=_uptime())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Let the last console writes leave the NIC before the VM powers off.
    time.sleep(1.0)
    RECORDER.add(kind="session", exitstatus=int(exitstatus), uptime=_uptime())


# -- the wire -------------------------------------------------------------------------------


class _Pool:
    def __init__(self, ports: list[int]) -> None:
        self.free = list(ports)

    def take(self, family: str) -> int:
        if not self.free:
            raise RuntimeError(
                f"no {family} host port left: raise the pool size in tests/kernel/test_kernel.py"
            )
        return self.free.pop(0)


POOLS = {"ipv4": _Pool(CONFIG["ports"]), "ipv6": _Pool(CONFIG["ports6"])}


class Wire:
    """What the current test expects the host to receive (checked on the host afterwards)."""

    boot_port: int = CONFIG["boot_port"]
    generated_boot_port: int = CONFIG["generated_boot_port"]  # cmdline1's
    listen_port: int | None = CONFIG["listen_port"]  # None: listen did not start on the host
    #: a second listen, for the selftest replays (tests/kernel/guest/test_85_selftests.py)
    replay_port: int | None = CONFIG.get("replay_listen_port")

    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid

    def port(self, family: str = "ipv4") -> int:
        """A host port nobody else in this run sends to (127.0.0.1, or ::1 for ``ipv6``)."""
        return POOLS[family].take(family)

    @staticmethod
    def marker(label: str) -> str:
        """A string unique to this run, to find one message among all that arrive."""
        return f"NCK-{label}-{uuid.uuid4().hex[:10]}"

    def expect(
        self,
        port: int,
        marker: str,
        *,
        fmt: str = "extended",
        userdata: dict[str, str] | None = None,
        release: str | None = None,
        level: int | None = None,
        family: str = "ipv4",
        only_port: bool = True,
    ) -> None:
        """The message containing ``marker`` must arrive on ``port``.

        ``fmt`` is ``extended`` (header ``prio,seq,ts,flag;``) or ``basic`` (no header, no
        userdata). For extended messages, ``userdata`` lines must follow the text (exactly
        these, in this order), ``release`` must prefix the header, and ``level`` must be the
        syslog level in ``prio``. With ``only_port`` it must not arrive on any other port of
        the pool (the boot target's port is exempt: it logs everything).
        """
        assert fmt in ("extended", "basic")
        RECORDER.add(kind="expect", nodeid=self.nodeid, port=port, family=family, marker=marker,
                     fmt=fmt, userdata=userdata, release=release, level=level,
                     only_port=only_port)

    def logs_everything(self, port: int) -> None:
        """``port`` now gets every kernel message (like the boot target): exempt it from
        ``only_port`` checks."""
        RECORDER.add(kind="catch-all", nodeid=self.nodeid, port=port)

    def expect_absent(self, marker: str, port: int | None = None, *,
                      everywhere: bool = False) -> None:
        """No datagram on ``port`` may contain ``marker``.

        Without ``port``: on no port of the pool, except those that log everything (the boot
        target's); with ``everywhere``, on those too.
        """
        RECORDER.add(kind="absent", nodeid=self.nodeid, marker=marker, port=port,
                     everywhere=everywhere)

    def expect_replay(self, scenario: str, text: str, *, level: int | None = None,
                      fields: dict[str, str | None] | None = None, basic: bool = False) -> None:
        """The replay listen (``replay_port``) must report ``text`` exactly once, whole, with
        exactly ``fields`` (a None value: present, any value) and, if given, ``level``. A
        ``basic`` message is reported as the kernel sent it: ``[    s.us] text``."""
        RECORDER.add(kind="replay-expect", nodeid=self.nodeid, scenario=scenario, text=text,
                     level=level, fields=fields or {}, basic=basic)

    def expect_replay_absent(self, scenario: str, text: str) -> None:
        RECORDER.add(kind="replay-absent", nodeid=self.nodeid, scenario=scenario, text=text,
                     level=None, fields={})

    def expect_listen(self, text: str, *, level: int, userdata: dict[str, str]) -> None:
        """``netconsolectl listen`` on ``listen_port`` must report this message exactly once,
        whole (``text`` as logged, reassembled when the kernel sent it in fragments), at
        ``level``, with ``userdata`` as its fields."""
        RECORDER.add(kind="listen-expect", nodeid=self.nodeid, text=text, level=level,
                     userdata=userdata)


@pytest.fixture
def wire(request: pytest.FixtureRequest) -> Wire:
    return Wire(request.node.nodeid)


def kmsg_write(text: str, level: int | None = None, settle: float = 0.3) -> None:
    """Log ``text`` through /dev/kmsg (facility user; ``level`` as ``<N>``).

    ``settle`` gives the console a moment: a printk is normally sent synchronously, but when
    another CPU holds the console lock that CPU sends it, and a configuration change right
    after the write could otherwise overtake it.
    """
    prefix = f"<{level}>" if level is not None else ""
    fd = os.open("/dev/kmsg", os.O_WRONLY)
    try:
        os.write(fd, f"{prefix}{text}\n".encode())
    finally:
        os.close(fd)
    time.sleep(settle)


@pytest.fixture
def kmsg() -> Callable[..., None]:
    return kmsg_write


# -- guest machine --------------------------------------------------------------------------


def nic_by_mac(mac: str) -> str | None:
    for name in sorted(os.listdir("/sys/class/net")):
        try:
            if Path(f"/sys/class/net/{name}/address").read_text().strip() == mac:
                return name
        except OSError:
            continue
    return None


LOOP_NICS = {"ncsend0": CONFIG.get("loop_send_mac"), "ncrecv0": CONFIG.get("loop_recv_mac")}


def _nic() -> str:
    """The VM's slirp NIC: the one with the MAC the host gave it, else the first real one."""
    found = nic_by_mac(CONFIG["nic_mac"]) if CONFIG.get("nic_mac") else None
    if found is not None:
        return found
    for name in sorted(os.listdir("/sys/class/net")):
        if name != "lo" and Path(f"/sys/class/net/{name}/device").exists():
            return name
    raise RuntimeError("the guest has no network card")


@pytest.fixture(scope="session", autouse=True)
def guest_network() -> None:
    """Static addressing (slirp's DHCP is unreliable under emulation) and console loglevel 8.

    The NIC is renamed to ``eth0`` first, so that the ``netconsole.netconsole=`` boot
    parameter (which must name the device before the guest exists) finds it when the module
    is loaded.
    """
    # The two NICs on the QEMU hub (tests/kernel/guest/test_90_watch.py) get names of their
    # own first, so that eth0 is free for the slirp NIC and eth1/eth2 for the lab's dummies.
    for name, mac in LOOP_NICS.items():
        found = nic_by_mac(mac) if mac else None
        if found is not None and found != name:
            sh(f"ip link set {found} name {name}")
    nic = _nic()
    if nic != NIC:
        sh(f"ip link set {nic} name {NIC}")
    sh(f"ip addr add {GUEST_IP}/24 dev {NIC} && ip -6 addr add {GUEST_IP6}/64 dev {NIC} nodad"
       f" && ip link set {NIC} up && ip route add default via {HOST_IP}")
    # vng boots with loglevel=1: nothing but KERN_EMERG would reach netconsole.
    sh("dmesg -n 8")


@pytest.fixture
def configfs() -> ConfigFS:
    return ConfigFS()


@dataclass
class Run:
    """One netconsolectl invocation: exit code and what it printed."""

    code: int
    out: str
    err: str
    args: tuple[str, ...]

    def __str__(self) -> str:
        return (f"netconsolectl {' '.join(self.args)} -> exit {self.code}\n"
                f"stdout: {self.out}\nstderr: {self.err}")

    def json(self) -> Any:
        return json.loads(self.out)


class Cli:
    """netconsolectl against the real kernel: in-process by default, ``sub`` for a process."""

    def __call__(self, *args: str) -> Run:
        from typer.testing import CliRunner

        from netconsolectl.cli import app

        r = CliRunner().invoke(app, list(args))
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            raise r.exception
        return Run(r.exit_code, r.stdout, r.stderr, args)

    def sub(self, *args: str, timeout: float = 300) -> Run:
        r = subprocess.run([sys.executable, "-m", "netconsolectl", *args], capture_output=True,
                           text=True, timeout=timeout)
        return Run(r.returncode, r.stdout, r.stderr, args)


@pytest.fixture(scope="session")
def cli() -> Cli:
    return Cli()


@pytest.fixture(scope="session")
def netconsole(cli: Cli) -> None:
    """netconsole/ available; tests/kernel/guest/test_00_setup.py proves ``setup`` itself."""
    if not ConfigFS().available():
        r = cli("setup")
        assert r.code == 0, str(r)


def remove_target(fs: ConfigFS, name: str) -> None:
    """Remove a target by raw configfs operations (userdata first); no-op if it is gone."""
    if not fs.exists(name):
        return
    for key in fs.listdir(f"{name}/userdata") if fs.isdir(f"{name}/userdata") else []:
        fs.rmdir(f"{name}/userdata/{key}")
    fs.rmdir(name)


@pytest.fixture
def names(configfs: ConfigFS) -> Iterator[Callable[[str], str]]:
    """``names("ext")`` -> a target name unique to this run; removed after the test."""
    made: list[str] = []

    def new(label: str) -> str:
        name = f"{label}-{uuid.uuid4().hex[:6]}"
        made.append(name)
        return name

    yield new
    for name in made:
        remove_target(configfs, name)


@dataclass(frozen=True)
class Lab:
    devices: conformance.Devices
    bridge_ip: str


@pytest.fixture(scope="session")
def lab() -> Lab:
    """Extra devices for errno scenarios, named like the fake's machine where possible."""
    sh("ip link add br0 type bridge && ip link add eth1 type dummy"
       " && ip link set eth1 master br0 && ip link set eth1 up && ip link set br0 up"
       " && ip addr add 198.51.100.1/24 dev br0")
    sh("ip link add ncbond0 type bond && ip link add eth2 type dummy"
       " && ip link set eth2 master ncbond0")
    sh("ip link add noaddr0 type dummy && ip link set noaddr0 up")
    sh("ip link add down0 type dummy && ip addr add 192.0.2.77/24 dev down0")
    # HSR sets IFF_DISABLE_NETPOLL: enabling netconsole on it gives errno 524 at once. Debian's
    # 6.1 is built without HSR, netkit came in 6.7, and a veth there takes netpoll: no device
    # of that kind can be made (NO_NETPOLL_REASON says so where a test needs one).
    no_netpoll = "hsr0" if sh(
        "ip link add hsr_a type dummy && ip link add hsr_b type dummy"
        " && ip link set hsr_a up && ip link set hsr_b up"
        " && ip link add hsr0 type hsr slave1 hsr_a slave2 hsr_b && echo ok",
        check=False).strip() else ""
    devs = conformance.Devices(
        nic=NIC, nic_mac=Path(f"/sys/class/net/{NIC}/address").read_text().strip(),
        nic_ipv4=GUEST_IP, bridge="br0", bridge_port="eth1", bond_slave="eth2",
        no_address="noaddr0", down="down0",
        down_mac=Path("/sys/class/net/down0/address").read_text().strip(), no_netpoll=no_netpoll,
    )
    return Lab(devices=devs, bridge_ip="198.51.100.1")


NO_NETPOLL_REASON = (f"{KERNEL.release} can make no device flagged IFF_DISABLE_NETPOLL (built "
                     "without HSR; netkit needs 6.7; its veth takes netpoll)")


def raw_state(fs: ConfigFS, name: str) -> dict[str, str]:
    """Every attribute file of a target as the kernel prints it (newline removed)."""
    out = {}
    for entry in sorted(os.listdir(fs.path(name))):
        if entry != "userdata":
            out[entry] = fs.read(f"{name}/{entry}")
    return out


def raw_userdata(fs: ConfigFS, name: str) -> dict[str, str]:
    return {k: fs.read(f"{name}/userdata/{k}/value") for k in fs.listdir(f"{name}/userdata")}

"""Preflight and health checks: one verdict and one fix per check.

Device facts come from sysfs (``System.sysfs``: ``class/net/<dev>/{flags,carrier,type,master,
wireless,phy80211}``), kernel facts from configfs, /proc and /lib/modules, and network facts
(addresses, routes, neighbours) from rtnetlink through the discovery package's
:class:`~netconsolectl.discover.model.NetworkView`, opened only when a target needs it. Tests
inject all three.

Verdicts: ``ok``; ``info`` (nothing wrong, something to know); ``warn`` (logging works but
something will lose or misroute messages sooner or later); ``fail`` (logging does not work or
the kernel will refuse). :func:`exit_code` is 0 when there is no warn or fail, 1 otherwise.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from netconsolectl.facts import ARPHRD_ETHER, BROADCAST_MAC, IFF_UP, is_set
from netconsolectl.host.loglevel import describe as describe_level
from netconsolectl.host.loglevel import ignore_loglevel
from netconsolectl.host.persist import Layout, netconsole_kind
from netconsolectl.host.system import System
from netconsolectl.sender.bootparam import kernel_ip
from netconsolectl.sender.target import TargetState

if TYPE_CHECKING:
    from netconsolectl.discover.model import NetworkView
    from netconsolectl.sender.kernel import Kernel, PanicCapture

Verdict = Literal["ok", "info", "warn", "fail"]
NetworkFactory = Callable[[], AbstractContextManager["NetworkView"]]

RTN_UNICAST = 1  # include/uapi/linux/rtnetlink.h
ROUTE_TYPES = {2: "local (an address of this machine)", 3: "broadcast", 4: "anycast",
               5: "multicast", 6: "a blackhole", 7: "unreachable", 8: "prohibited"}
HOST_ROOT = Path("/")  # where /lib/modules and /boot are read from


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    detail: str
    fix: str | None = None
    target: str | None = None

    def line(self) -> str:
        """``ok    configfs: mounted at ...`` / ``FAIL  t1 device: ... (fix: ...)``."""
        label = self.verdict if self.verdict in ("ok", "info") else self.verdict.upper()
        who = f"{self.target} " if self.target else ""
        out = f"{label:<5} {who}{self.name}: {self.detail}"
        return out + (f" (fix: {self.fix})" if self.fix else "")

    def to_json(self) -> dict[str, Any]:
        return {"check": self.name, "target": self.target, "verdict": self.verdict,
                "detail": self.detail, "fix": self.fix}


def exit_code(checks: list[Check]) -> int:
    return 1 if any(c.verdict in ("warn", "fail") for c in checks) else 0


def kernel_network() -> AbstractContextManager[NetworkView]:
    """The host's rtnetlink, from the discovery package (imported only when needed)."""
    from netconsolectl.discover.netlink import HostNetwork

    return HostNetwork()


# -- host checks ------------------------------------------------------------------------------


def host_checks(system: System, *, root: Path | None = None, euid: int | None = None
                ) -> list[Check]:
    root = HOST_ROOT if root is None else root
    checks: list[Check] = []
    uid = os.geteuid() if euid is None else euid
    if uid == 0:
        checks.append(Check("root", "ok", "running as root"))
    else:
        checks.append(Check("root", "info", "not root: the checks below only read; changing "
                                            "anything needs root", "run it with sudo"))
    fs = system.configfs
    mounted = system.configfs_mounted() if fs.is_default_root else fs.root.is_dir()
    if mounted:
        checks.append(Check("configfs", "ok", f"mounted at {fs.root}"))
    else:
        checks.append(Check("configfs", "fail", f"not mounted at {fs.root}",
                            "netconsolectl setup (mount -t configfs none /sys/kernel/config)"))
    release = system.kernel_release()
    kind = netconsole_kind(Layout(root), release)
    loaded = (system.sysfs / "module/netconsole").is_dir() or fs.available()
    if not fs.is_default_root:
        checks.append(Check("module", "info", f"{fs.root} is not the kernel's configfs: the "
                                              "netconsole module is not checked"))
    elif loaded:
        checks.append(Check("module", "ok", "netconsole is loaded"
                            + (" (built in)" if kind == "builtin" else "")))
    elif kind == "module":
        checks.append(Check("module", "warn", "netconsole is not loaded (it is a loadable "
                                              "module of this kernel)", "netconsolectl setup"))
    elif kind == "builtin":
        checks.append(Check("module", "ok", "netconsole is built into the kernel"))
    elif kind == "missing":
        checks.append(Check("module", "fail", f"kernel {release} has no netconsole",
                            "use a kernel built with CONFIG_NETCONSOLE"))
    else:
        checks.append(Check("module", "warn", "cannot tell whether netconsole is available "
                                              f"(no {root / 'lib/modules'}/{release})",
                            "netconsolectl setup"))
    dynamic = _kconfig(root, release, "CONFIG_NETCONSOLE_DYNAMIC")
    if fs.available():
        checks.append(Check("dynamic", "ok", f"runtime configuration through {fs.base}"))
    elif dynamic is False or (loaded and mounted):
        checks.append(Check("dynamic", "fail", "this kernel lacks CONFIG_NETCONSOLE_DYNAMIC: "
                                               "targets can only be given at boot",
                            "netconsolectl cmdline / persist --boot-param"))
    else:
        checks.append(Check("dynamic", "info", f"{fs.base} is not there yet"
                            + (" (the kernel has CONFIG_NETCONSOLE_DYNAMIC)" if dynamic else ""),
                            "netconsolectl setup"))
    checks.append(_loglevel_check(system))
    return checks


def _kconfig(root: Path, release: str | None, option: str) -> bool | None:
    if not release:
        return None
    try:
        text = (root / "boot" / f"config-{release}").read_text()
    except OSError:
        return None
    if f"\n{option}=y" in f"\n{text}":
        return True
    if f"# {option} is not set" in text:
        return False
    return None


def _loglevel_check(system: System) -> Check:
    if ignore_loglevel(system):
        return Check("loglevel", "ok", "ignore_loglevel is set: every level reaches netconsole")
    level = system.console_loglevel()
    if level is None:
        return Check("loglevel", "warn", f"cannot read {system.printk_path}")
    msg = system.loglevel_warning()
    if msg:
        return Check("loglevel", "warn", f"console loglevel {level}: {describe_level(level)}",
                     "netconsolectl loglevel 8, and console_loglevel = 8 in the configuration")
    return Check("loglevel", "ok", f"console loglevel {level}: {describe_level(level)}")


# -- per target -------------------------------------------------------------------------------


def _sysfs(system: System, dev: str, attr: str) -> str | None:
    try:
        return (system.sysfs / "class/net" / dev / attr).read_text().strip()
    except OSError:
        return None


class _Net:
    """Opens the network on first use; remembers a failure to open it."""

    def __init__(self, factory: NetworkFactory, stack: ExitStack) -> None:
        self.factory = factory
        self.stack = stack
        self.net: NetworkView | None = None
        self.error: str | None = None

    def get(self) -> NetworkView | None:
        if self.net is None and self.error is None:
            try:
                self.net = self.stack.enter_context(self.factory())
            except OSError as e:
                self.error = f"cannot ask the kernel's network tables: {e.strerror or e}"
        return self.net


class _Out:
    """The checks of one target, in order."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.checks: list[Check] = []

    def add(self, name: str, verdict: Verdict, detail: str, fix: str | None = None) -> None:
        self.checks.append(Check(name, verdict, detail, fix, target=self.target))


def _state_checks(s: TargetState, out: _Out) -> None:
    if s.state == "enabled":
        out.add("enabled", "ok", "enabled")
    elif s.state == "deactivated":
        # 7.x: the device went away; the kernel resumes the target when a device of that
        # name registers again (forcing the link up). Writing enabled now would cancel it.
        out.add("enabled", "warn", f"deactivated: {s.dev_name} is gone, nothing is sent; the "
                "kernel resumes it by itself when the device registers again",
                f"bring {s.dev_name} back, or netconsolectl set {s.name} --dev IFACE to send "
                "through another device now")
    elif s.is_boot_target:
        out.add("enabled", "warn", "boot target is disabled (its setup failed at boot, or it "
                                   "was disabled)", f"netconsolectl enable {s.name}")
    else:
        out.add("enabled", "warn", "disabled: nothing is sent", f"netconsolectl enable {s.name}")
    if s.release and not s.extended:
        out.add("format", "fail", "release is on without extended: the kernel refuses to "
                "enable it", f"netconsolectl set {s.name} --extended (or --no-release)")
    if s.transmit_errors:
        out.add("transmit", "warn", f"{s.transmit_errors} send(s) failed in the driver "
                                    "(transmit_errors)", "check the interface and its driver")


def _device_checks(system: System, s: TargetState, out: _Out) -> bool:
    """The device's checks; False when it does not exist (nothing more to check)."""
    dev = s.dev_name or ""
    if not dev or not (system.sysfs / "class/net" / dev).exists():
        if s.state != "deactivated":  # said above, with the fix that works
            out.add("device", "fail", f"device {dev!r} does not exist (in this network "
                    "namespace)", f"netconsolectl set {s.name} --dev IFACE")
        return False
    flags = _sysfs(system, dev, "flags")
    up = None if flags is None else bool(int(flags, 16) & IFF_UP)
    carrier = _sysfs(system, dev, "carrier")
    if up is False:
        out.add("device", "warn", f"{dev} is down: messages are dropped until it is up",
                f"ip link set {dev} up")
    elif carrier == "0":
        out.add("device", "warn", f"{dev} is up but has no carrier (cable, switch port)")
    else:
        out.add("device", "ok", f"{dev} exists" + (" and is up" if up else ""))
    master = system.master_of(dev)
    if master:
        out.add("master", "fail", f"{dev} is a port of {master}: the kernel refuses bond/team/"
                "bridge members (EBUSY) and stops a target whose device joins one",
                f"netconsolectl set {s.name} --dev {master}")
    arphrd = _sysfs(system, dev, "type")
    wireless = any((system.sysfs / "class/net" / dev / p).exists()
                   for p in ("wireless", "phy80211"))
    if arphrd is not None and arphrd != str(ARPHRD_ETHER):
        out.add("netpoll", "fail", f"{dev} is not Ethernet (link type {arphrd}): netconsole "
                "always sends Ethernet frames", f"netconsolectl set {s.name} --dev IFACE")
    elif wireless:
        out.add("netpoll", "warn", f"{dev} is wireless: netpoll over Wi-Fi is unreliable",
                "use a wired interface")
    elif s.enabled:
        out.add("netpoll", "ok", f"the kernel set netpoll up on {dev}")
    else:
        out.add("netpoll", "info", "netpoll support cannot be read from sysfs; enabling tells")
    return True


def _source_check(s: TargetState, network: NetworkView, link_index: int, family: int,
                  local: Any, out: _Out) -> None:
    dev = s.dev_name
    if local is None:
        out.add("source", "info", "local_ip is unset: the kernel takes the device's address "
                                  "when enabling")
        return
    try:
        addrs = {a.address for a in network.addresses(link_index, family)}
    except OSError:
        addrs = set()
    if local in addrs:
        out.add("source", "ok", f"{local} is on {dev}")
    else:
        out.add("source", "fail", f"local_ip {local} is no longer on {dev}: the collector sees "
                                  "a stale source (or filters it out)",
                f"netconsolectl apply (re-discovers), or set {s.name} --local-ip IP")


def _next_hop_check(s: TargetState, network: NetworkView, route: Any, remote: Any,
                    out: _Out) -> None:
    hop = route.gateway or remote
    mac = (s.remote_mac or BROADCAST_MAC).lower()
    if mac == BROADCAST_MAC:
        out.add("next-hop", "warn", "remote_mac is broadcast: every host on the segment gets "
                "the frames, some switches drop them, and a routed collector never sees them",
                f"netconsolectl resolve {remote}, then set {s.name} --remote-mac MAC")
        return
    try:
        neigh = network.neighbour(hop, route.oif)
    except OSError:
        neigh = None
    if neigh is None or not neigh.usable:
        out.add("next-hop", "info", f"{hop} is not in the neighbour table, so {mac} cannot be "
                                    "checked", f"netconsolectl resolve {remote} probes it")
    elif (neigh.lladdr or "").lower() != mac:
        out.add("next-hop", "fail", f"remote_mac is {mac} but the next hop {hop} is now at "
                                    f"{neigh.lladdr} ({neigh.state_name})",
                f"netconsolectl apply (re-discovers), or set {s.name} --remote-mac "
                f"{neigh.lladdr}")
    else:
        out.add("next-hop", "ok", f"{mac} is the current MAC of the next hop {hop}")


def _route_checks(s: TargetState, network: NetworkView, link: Any, remote: Any,
                  out: _Out) -> None:
    dev = s.dev_name
    local = kernel_ip(s.local_ip) if is_set(s.local_ip) else None
    family = socket.AF_INET if remote.version == 4 else socket.AF_INET6
    _source_check(s, network, link.index, family, local, out)
    try:
        route = network.route_get(remote, src=local)
    except OSError as e:
        if e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            out.add("route", "fail", f"no route to {remote}", "check the routing table")
        else:
            out.add("route", "warn", f"route lookup for {remote} failed: {e.strerror or e}")
        return
    if route.type != RTN_UNICAST:
        kind = ROUTE_TYPES.get(route.type, f"type {route.type}")
        verdict: Verdict = "warn" if route.type in (3, 5) else "fail"
        out.add("route", verdict, f"the route to {remote} is {kind}, not unicast",
                "check remote_ip and the routing table")
        return
    via = f" via {route.gateway}" if route.gateway else " (on-link)"
    if route.oif != link.index:
        try:
            other = network.link_by_index(route.oif).name
        except OSError:
            other = f"ifindex {route.oif}"
        out.add("route", "warn", f"the route to {remote} leaves through {other}{via}, but the "
                f"target sends out of {dev}",
                f"netconsolectl set {s.name} --dev {other} (or `apply` to re-discover)")
    else:
        out.add("route", "ok", f"{remote} is reached through {dev}{via}")
    _next_hop_check(s, network, route, remote, out)


def target_checks(system: System, s: TargetState, net: _Net) -> list[Check]:
    out = _Out(s.name)
    _state_checks(s, out)
    if not _device_checks(system, s, out):
        return out.checks
    remote = kernel_ip(s.remote_ip) if s.remote_ip else None
    if remote is None or remote.is_unspecified:
        out.add("route", "fail", "remote_ip is not set",
                f"netconsolectl set {s.name} --remote-ip IP")
        return out.checks
    network = net.get()
    if network is None:
        out.add("network", "info", net.error or "network tables unavailable")
        return out.checks
    try:
        link = network.link_by_name(s.dev_name or "")
    except OSError as e:
        out.add("network", "info", f"cannot look up {s.dev_name} over netlink: "
                f"{e.strerror or e}")
        return out.checks
    _route_checks(s, network, link, remote, out)
    return out.checks


def panic_capture(system: System, kernel: Kernel) -> PanicCapture:
    """Whether a panic's text leaves this machine (sender/kernel.py panic_capture), from
    /proc/consoles and /proc/sys/kernel/panic."""
    from netconsolectl.sender.kernel import panic_capture as decide

    try:
        consoles: str | None = (system.proc / "consoles").read_text()
    except OSError:
        consoles = None
    try:
        timeout: int | None = int((system.proc / "sys/kernel/panic").read_text().strip())
    except (OSError, ValueError):
        timeout = None
    return decide(kernel, consoles, timeout)


def panic_check(system: System, kernel: Kernel) -> Check:
    """Crash capture is never assumed: where the panic text cannot leave the machine, say
    so with the evidence and the setting that makes it leave."""
    capture = panic_capture(system, kernel)
    if capture.delivered:
        return Check("panic", "ok", f"a panic's text is sent: {capture.evidence}")
    return Check("panic", "warn", "crash capture cannot be relied on: a panic's text never "
                 f"leaves this machine: {capture.evidence}", capture.fix)


def kernel_check(kernel: Kernel) -> Check:
    """What this kernel's netconsole supports, and what it lacks with the version adding it."""
    from netconsolectl.sender import kernel as kfeat

    have = ["extended"]
    lacks: list[str] = []
    for ok, what, since in (
        (kernel.release_attr, "release", kfeat.RELEASE),
        (kernel.boot_targets_in_configfs, "cmdlineN boot targets", kfeat.BOOT_TARGETS_IN_CONFIGFS),
        (kernel.userdata, f"userdata ({kernel.max_userdata or 16} keys)", kfeat.USERDATA),
        (kernel.transmit_errors, "transmit_errors", kfeat.TRANSMIT_ERRORS),
    ):
        (have if ok else lacks).append(what if ok else f"{what} ({kfeat.fmt_version(since)}+)")
    # The sysdata toggles, grouped by the release that added them (sender/attrs.py).
    if kernel.sysdata:
        have.append("sysdata " + ",".join(n for n in kfeat.SYSDATA_NAMES if n in kernel.sysdata))
    missing: dict[kfeat.Version, list[str]] = {}
    for n in kfeat.SYSDATA_NAMES:
        if n not in kernel.sysdata:
            missing.setdefault(kfeat.SYSDATA_SINCE[n], []).append(n)
    lacks += [f"sysdata {','.join(names)} ({kfeat.fmt_version(v)}+)"
              for v, names in missing.items()]
    if kernel.keeps_deactivated_targets:
        have.append("resume after the device returns")
    else:
        lacks.append(f"resume after the device returns ({kfeat.fmt_version(kfeat.DEACTIVATED)}+)")
    detail = f"{kernel.release}: has {', '.join(have)}"
    if lacks:
        detail += f"; lacks {', '.join(lacks)}"
    return Check("kernel", "info" if lacks else "ok", detail)


def _hidden_boot_targets(system: System, kernel: Kernel) -> int:
    """Boot-parameter targets a kernel before 6.7 runs without showing them in configfs."""
    if kernel.boot_targets_in_configfs:
        return 0
    from netconsolectl.sender.setup import boot_target_names

    modular = (system.sysfs / "module/netconsole/initstate").exists()
    try:
        return len(boot_target_names(system.cmdline(), modular=modular, kernel=kernel))
    except Exception:  # a parameter we cannot read is no reason to fail doctor
        return 0


def run(
    system: System,
    states: list[TargetState] | None,
    *,
    network: NetworkFactory | None = None,
    root: Path | None = None,
    euid: int | None = None,
) -> list[Check]:
    """Every check, in order: the host, then each target (``states`` None: not available)."""
    checks = host_checks(system, root=root, euid=euid)
    if states is None:
        return checks
    from netconsolectl.sender.kernel import detect

    kernel = detect(system.configfs)
    checks.append(kernel_check(kernel))
    if not states:
        hidden = _hidden_boot_targets(system, kernel)
        if hidden:
            checks.append(Check(
                "targets", "ok", f"{hidden} boot-time target(s) from the netconsole= parameter; "
                f"this kernel ({kernel.release}) does not show them in configfs (6.7+)"))
            return checks
        checks.append(Check("targets", "warn", "no netconsole targets: nothing is sent",
                            "netconsolectl add NAME --remote-ip IP, or netconsolectl apply"))
        return checks
    checks.append(panic_check(system, kernel))
    from netconsolectl.sender.marks import disabled_by_person
    from netconsolectl.sender.plan import with_status

    with ExitStack() as stack:
        net = _Net(network or system.network or kernel_network, stack)
        for s in states:
            s = with_status(system, kernel, s,
                            disabled_on_purpose=disabled_by_person(system, s.name))
            checks += target_checks(system, s, net)
    return checks + sending_checks(states)


def sending_checks(states: list[TargetState]) -> list[Check]:
    """What the targets send, taken together: enabled targets that send through the same
    device to the same collector address and port (each message then arrives several times),
    and what the basic format loses."""
    from netconsolectl.sender.verbs import (
        BASIC_FORMAT_LOSS,
        duplicate_groups,
        duplicate_warning,
        state_key,
    )

    keys = {s.name: state_key(s) for s in states}
    checks = [Check("duplicates", "warn", duplicate_warning(names, key),
                    f"netconsolectl remove {names[-1]}")
              for names in duplicate_groups(keys.items()) if (key := keys[names[0]]) is not None]
    checks += [Check("format", "info", BASIC_FORMAT_LOSS, f"netconsolectl set {s.name} "
                     "--extended", target=s.name) for s in states if s.extended is False]
    return checks

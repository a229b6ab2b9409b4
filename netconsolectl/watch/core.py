"""The watch loop: apply a configuration, then keep it true while the network changes.

netconsole is configured once and then trusted blindly: the kernel does no routing and no ARP,
it sends frames out of ``dev_name`` to ``remote_mac`` until told otherwise. :class:`Watcher`
applies the file as ``apply`` does, then listens to rtnetlink (links, addresses, routes,
neighbours) and, for a change that concerns a target, re-plans that target the way ``apply``
would and writes only what differs:

* its next hop's neighbour entry names another MAC (a replaced gateway) -> ``remote_mac``;
* an address on its device changes -> ``local_ip`` (when the file does not pin it);
* a route covering its collector changes -> ``dev_name``, ``local_ip``, ``remote_mac``;
* its device unregisters and registers again: up to 6.18 the kernel disabled the target for
  good (drivers/net/netconsole.c ``netconsole_netdev_event``, NETDEV_UNREGISTER), so it is
  enabled again once a device to send through is back; 7.x resumes such targets itself
  (:mod:`netconsolectl.watch.features`): watch leaves that to it and reports the resume;
* its device joins a bond, bridge or team: the kernel disabled the target (NETDEV_JOIN, never
  resumed), and netconsole refuses ports ("is a slave device", EBUSY), so unless the file pins
  ``dev_name`` the target moves to the master.

A target that is disabled is only enabled again when watch saw why the kernel disabled it and
nobody disabled it on purpose (:mod:`netconsolectl.sender.marks`). Events come in bursts (a link
flap is a dozen notifications): they are collected until the burst is quiet for ``debounce``
seconds, but never longer than ``max_delay``, then each concerned target is planned once.
Writes take the same lock as every other command.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netconsolectl.declarative.apply import ApplyPlan, _plan_target, apply_config, execute
from netconsolectl.declarative.config import Config, ConfigTarget, load
from netconsolectl.errors import NetconsoleError
from netconsolectl.facts import IFF_UP
from netconsolectl.host.system import System
from netconsolectl.sender.kernel import detect
from netconsolectl.sender.marks import disabled_by_person
from netconsolectl.sender.spec import TargetSpec, parse_ip
from netconsolectl.sender.target import Target, TargetState, require_netconsole
from netconsolectl.watch.events import NUD_HAS_LLADDR, NetlinkEvent, Subscription
from netconsolectl.watch.features import resumes_unregistered_targets

if TYPE_CHECKING:
    from netconsolectl.discover import Resolution

HEARTBEAT_PREFIX = "netconsolectl: heartbeat"

# A target that could not be created or changed (at boot the NIC or its address often appear
# seconds after watch starts, or the module is still loading) is tried again after 1 s, 2 s,
# 4 s, ... and then every minute, besides at every event that may concern it.
RETRY_FIRST = 1.0
RETRY_MAX = 60.0


def retry_delay(attempt: int) -> float:
    """Seconds before retry number ``attempt`` (1, 2, ...): doubling from 1 s, capped at 60."""
    return float(min(RETRY_MAX, RETRY_FIRST * 2.0 ** max(0, attempt - 1)))


@dataclass(frozen=True)
class WatchOptions:
    """How watch paces itself. Seconds throughout; 0 turns heartbeat/revalidate off."""

    heartbeat: float = 0.0
    revalidate: float = 300.0
    debounce: float = 0.05  # a burst ends after this much quiet...
    max_delay: float = 0.25  # ...or this long after its first event, whichever comes first


@dataclass
class Action:
    """One thing watch did or decided about a target (one line on stderr)."""

    target: str
    action: str  # created | changed | removed | failed | waiting | left | reloaded | ...
    why: str
    changes: list[str] = field(default_factory=list)
    error: NetconsoleError | None = None
    time: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        stamp = datetime.fromtimestamp(self.time, UTC).isoformat(timespec="milliseconds")
        return {
            "time": stamp.replace("+00:00", "Z"),
            "target": self.target or None,
            "action": self.action,
            "changes": self.changes,
            "why": self.why,
            "error": str(self.error) if self.error is not None else None,
        }

    def line(self) -> str:
        who = f"{self.target}: " if self.target else ""
        what = f": {', '.join(self.changes)}" if self.changes else ""
        err = f": {self.error}" if self.error is not None else ""
        return f"{who}{self.action}{what}{err} ({self.why})"


Report = Callable[[Action], None]


@dataclass
class _Bound:
    """What a target is bound to right now, to tell which events concern it."""

    dev: str | None = None
    index: int = 0
    master: int = 0
    up: bool = True
    local_ip: str | None = None
    remote_ip: str | None = None
    family: int = 0
    next_hop: str | None = None  # None when the file pins remote_mac (neighbours are moot)
    remote_mac: str | None = None
    dropped: str | None = None  # why the kernel disabled it, as seen here: unregistered, ...
    waiting: str | None = None  # the last failure; any later change retries
    said: str = ""  # the last "left alone" message, not repeated
    attempts: int = 0  # retries since the last failure began
    retry_at: float = float("inf")  # time.monotonic() of the next retry

    def failed(self, error: str, now: float) -> None:
        """Remember a failure and when to try again (:func:`retry_delay`)."""
        self.waiting = error
        self.attempts += 1
        self.retry_at = now + retry_delay(self.attempts)

    def succeeded(self) -> None:
        self.waiting = None
        self.attempts = 0
        self.retry_at = float("inf")


def _iso_family(ip: str | None) -> int:
    return socket.AF_INET6 if ip is not None and ":" in ip else socket.AF_INET


def _link_concerns(b: _Bound, ev: NetlinkEvent, mine: bool) -> str | None:
    """Why a link event may change what a target bound as ``b`` needs, or None."""
    if ev.name is not None and ev.name == b.dev and ev.index != b.index:
        if not ev.new:
            return None
        b.index, b.master, b.up = ev.index, ev.master, ev.up
        return f"{b.dev} registered"
    if not mine:
        return f"{ev.describe()} while waiting" if b.waiting and ev.new else None
    if not ev.new:
        b.index = 0
        b.dropped = "unregistered"
        return f"{b.dev} unregistered"
    if ev.master != b.master:
        b.master = ev.master
        if ev.master:
            b.dropped = "enslaved"
            return f"{b.dev} joined a master device"
        return f"{b.dev} left its master device"
    if ev.name is not None and ev.name != b.dev:
        # NETDEV_CHANGENAME: the kernel renames dev_name itself.
        return f"{b.dev} renamed to {ev.name}"
    if ev.up != b.up:
        b.up = ev.up
        return f"{b.dev} is {'up' if ev.up else 'down'}"
    return None


class Watcher:
    """Apply ``path`` and keep its targets delivering. Use :meth:`start`, :meth:`run`,
    :meth:`close`; :meth:`request_stop` and :meth:`request_reload` may be called from signal
    handlers or other threads."""

    def __init__(self, system: System, path: Path, options: WatchOptions | None = None,
                 report: Report | None = None, *, arp_timeout: float | None = None,
                 arp_retries: int | None = None) -> None:
        self.system = system
        self.path = path
        self.options = options or WatchOptions()
        self.report: Report = report or (lambda _a: None)
        self._arp = (arp_timeout, arp_retries)
        self.config = Config()
        self.bound: dict[str, _Bound] = {}
        self._resolutions: dict[str, Resolution] = {}
        self._sub: Subscription | None = None
        self._query: Any = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._stop = False
        self._reload = False
        self._dirty: dict[str, list[str]] = {}
        self._fresh: set[str] = set()
        self.heartbeats = 0
        self.replans = 0  # targets planned after events (tests and the benchmark count them)
        self.writes = 0  # plans that changed something

    # -- control --------------------------------------------------------------------------
    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def request_stop(self) -> None:
        self._stop = True
        self._wake()

    def request_reload(self) -> None:
        self._reload = True
        self._wake()

    @property
    def arp_timeout(self) -> float:
        return self._arp[0] if self._arp[0] is not None else self.config.options.arp_timeout

    @property
    def arp_retries(self) -> int:
        return self._arp[1] if self._arp[1] is not None else self.config.options.arp_retries

    # -- start ----------------------------------------------------------------------------
    def start(self) -> int:
        """Load and check the file, subscribe, apply; the number of targets watched.

        An invalid file raises before anything is changed (the errors of ``apply``).
        """
        config = load(self.path)
        # Subscribe before applying, so nothing that happens in between is missed.
        self._sub = Subscription()
        from pyroute2 import IPRoute

        self._query = IPRoute()
        self._apply(config, why=f"applied {self.path}")
        return len(self.config.targets)

    def close(self) -> None:
        for thing in (self._sub, self._query):
            if thing is not None:
                with contextlib.suppress(Exception):
                    thing.close()
        self._sub = self._query = None
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _apply(self, config: Config, *, why: str) -> None:
        fs = self.system.configfs
        if not fs.available():
            if fs.is_default_root:
                from netconsolectl.sender.setup import setup

                with self.system.lock():
                    setup(self.system)
            else:
                require_netconsole(fs)
        self.config = config
        self._resolutions.clear()
        ap = apply_config(self.system, config, resolver=self._resolver)
        past = {"create": "created", "change": "changed", "remove": "removed",
                "unchanged": "unchanged"}
        for item in ap.items:
            if item.failed:
                self.report(Action(item.name, "failed", why, error=item.error))
            elif item.action != "unchanged":
                self.report(Action(item.name, past[item.action], why, item.changes))
        if ap.loglevel is not None and ap.loglevel.error is None:
            self.report(Action("", "changed", why, [
                f"console loglevel {ap.loglevel.current} -> {ap.loglevel.wanted}"]))
        old = self.bound
        self.bound = {}
        for t in config.targets:
            b = _Bound(dropped=old[t.name].dropped if t.name in old else None)
            self.bound[t.name] = b
            done = ap.item(t.name)
            if done is not None and done.failed:
                b.failed(str(done.error), time.monotonic())
            self._rebind(t, self._live(t.name))

    def _live(self, name: str) -> TargetState | None:
        target = Target(self.system.configfs, name)
        return target.state() if target.exists() else None

    # -- discovery ------------------------------------------------------------------------
    def _resolver(self, name: str, spec: TargetSpec, *, dev: str | None = None,
                  fresh: bool = False) -> TargetSpec:
        """Fill what the file leaves out (as apply does), remembering the next hop."""
        from netconsolectl.discover import resolve

        if spec.remote_ip is None:
            return spec
        network = self.system.network  # the host seam's network (the fake's, in tests)
        with network() if network else nullcontext() as net:
            res = resolve(spec.remote_ip, dev=spec.dev_name or dev, local_ip=spec.local_ip,
                          remote_mac=spec.remote_mac, arp_timeout=self.arp_timeout,
                          arp_retries=self.arp_retries, fresh=fresh, netlink=net)
        self._resolutions[name] = res
        return replace(spec, dev_name=spec.dev_name or res.dev_name,
                       local_ip=spec.local_ip or res.local_ip,
                       remote_mac=spec.remote_mac or res.remote_mac)

    def _link(self, index: int) -> tuple[str | None, int, bool]:
        """(name, master index, up) of interface ``index``, asked over rtnetlink."""
        if not index or self._query is None:
            return None, 0, False
        try:
            msg = self._query.link("get", index=index)[0]
        except Exception:  # gone meanwhile (NetlinkError ENODEV)
            return None, 0, False
        return msg.get_attr("IFLA_IFNAME"), msg.get_attr("IFLA_MASTER") or 0, bool(
            msg["flags"] & IFF_UP)

    def _rebind(self, t: ConfigTarget, live: TargetState | None) -> None:
        b = self.bound[t.name]
        res = self._resolutions.get(t.name)
        if live is None:
            return
        b.dev = live.dev_name
        b.local_ip = live.local_ip
        b.remote_ip = live.remote_ip
        b.family = _iso_family(live.remote_ip)
        b.remote_mac = live.remote_mac
        b.next_hop = None
        if t.spec.remote_mac is None and res is not None and res.dev_name == live.dev_name:
            b.next_hop = str(res.next_hop)
        try:
            b.index = socket.if_nametoindex(live.dev_name) if live.dev_name else 0
        except OSError:
            b.index = 0
        _, b.master, b.up = self._link(b.index)

    # -- events ---------------------------------------------------------------------------
    def _concerns(self, name: str, b: _Bound, ev: NetlinkEvent) -> str | None:
        """Why ``ev`` may change what target ``name`` needs, or None."""
        if ev.kind == "overrun":
            return ev.describe()
        mine = bool(b.index) and ev.index == b.index
        if ev.kind == "link":
            return _link_concerns(b, ev, mine)
        if ev.kind == "addr":
            if mine or (not ev.new and ev.address is not None and ev.address == b.local_ip):
                return f"{ev.describe()} on {b.dev}"
            return f"{ev.describe()} while waiting" if b.waiting else None
        if ev.kind == "route":
            if b.remote_ip is not None and ev.family == b.family and ev.covers(b.remote_ip):
                return f"{ev.describe()}, which covers {b.remote_ip}"
            return None
        if ev.kind == "neigh":
            if (b.next_hop is not None and mine and ev.address == b.next_hop and ev.new
                    and ev.lladdr and ev.state & NUD_HAS_LLADDR
                    and ev.lladdr.lower() != (b.remote_mac or "").lower()):
                return f"next hop {b.next_hop} is now at {ev.lladdr}"
            return None
        return None

    def feed(self, events: list[NetlinkEvent]) -> None:
        """Mark the targets the events concern (planned at the end of the burst)."""
        for ev in events:
            for name, b in self.bound.items():
                why = self._concerns(name, b, ev)
                if why is not None:
                    reasons = self._dirty.setdefault(name, [])
                    if why not in reasons and len(reasons) < 4:
                        reasons.append(why)

    # -- re-planning ----------------------------------------------------------------------
    def _say(self, name: str, action: str, why: str) -> None:
        b = self.bound[name]
        if b.said != why:
            b.said = why
            self.report(Action(name, action, why))

    def flush(self) -> None:
        """Plan every target marked since the last flush."""
        dirty, self._dirty = self._dirty, {}
        fresh, self._fresh = self._fresh, set()
        for name, reasons in dirty.items():
            t = self.config.target(name)
            if t is not None:
                self.replan(t, "; ".join(reasons), fresh=name in fresh)

    def replan(self, t: ConfigTarget, why: str, *, fresh: bool = False) -> None:
        """Plan one target as apply would and write only what differs."""
        name, b = t.name, self.bound[t.name]
        self.replans += 1
        live = self._live(name)
        if live is None and b.waiting is None:
            self._say(name, "left", "the target no longer exists; `apply` or SIGHUP creates it")
            return
        if live is not None and self._left_as_it_is(t, b, live):
            return
        spec, note = t.spec, ""
        master = self._link(b.master)[0] if b.master and t.spec.dev_name is None else None
        try:
            if spec.dev_name is None or spec.local_ip is None or spec.remote_mac is None:
                spec = self._resolver(name, spec, dev=master, fresh=fresh)
        except NetconsoleError as e:
            if master is None or live is None or live.local_ip is None or \
                    live.remote_mac is None:
                b.failed(str(e), time.monotonic())
                self._say(name, "waiting", f"{why}: {e}; next try in "
                          f"{retry_delay(b.attempts):g} s")
                return
            # Ported device, addresses still on it: the master sends the same frames.
            spec = replace(spec, dev_name=master,
                           local_ip=spec.local_ip or parse_ip(live.local_ip),
                           remote_mac=spec.remote_mac or live.remote_mac)
            note = f"; kept local_ip and remote_mac ({e})"
        with self.system.lock():
            live = self._live(name)
            if live is not None and disabled_by_person(self.system, name) and not live.enabled:
                return
            try:
                item = _plan_target(self.system, detect(self.system.configfs), t, spec, live)
            except NetconsoleError as e:  # what the kernel lacks: planned as apply plans
                b.failed(str(e), time.monotonic())
                self._say(name, "waiting", f"{why}: {e}; next try in "
                          f"{retry_delay(b.attempts):g} s")
                return
            if item.action != "unchanged":
                execute(self.system, ApplyPlan(items=[item]))
        b.succeeded()
        if item.action == "unchanged":
            if b.said.startswith(("waiting", why)):
                b.said = ""
            self._rebind(t, live)
            return
        self.writes += 1
        if item.failed:
            b.failed(str(item.error), time.monotonic())
            self.report(Action(name, "failed", f"{why}{note}; next try in "
                               f"{retry_delay(b.attempts):g} s", item.changes,
                               error=item.error))
        else:
            b.dropped = None
            b.said = ""
            self.report(Action(name, "created" if item.action == "create" else "changed",
                               why + note, item.changes))
        self._rebind(t, self._live(name))

    def _left_as_it_is(self, t: ConfigTarget, b: _Bound, live: TargetState) -> bool:
        """The kernel resumed the target, or it is disabled and watch must not turn it on (a
        person disabled it, nothing watched explains it, or the kernel resumes it itself)."""
        name = t.name
        if self._resumed_by_kernel(t, b, live):
            return True
        if t.spec.enabled is False or live.enabled:
            return False
        if disabled_by_person(self.system, name):
            self._say(name, "left", "disabled with `netconsolectl disable`; `enable` or "
                      "`apply` turns it back on")
            return True
        if b.dropped is None:
            self._say(name, "left", "disabled, and its device neither unregistered nor "
                      "joined a master while watched; `enable` or `apply` turns it on")
            return True
        if (b.dropped == "unregistered" and resumes_unregistered_targets(self.system)
                and (t.spec.dev_name is not None or b.dev == live.dev_name)):
            self._say(name, "left", f"this kernel resumes it itself when {live.dev_name} "
                      "registers again")
            return True
        return False

    def _resumed_by_kernel(self, t: ConfigTarget, b: _Bound, live: TargetState) -> bool:
        """7.x resumes a target whose device registers again (forcing the link up): report
        it as the event it is, and leave the target where the kernel put it for this event
        (its device may have no address yet; discovery now would pick another device's
        route and source). The next change is planned as usual."""
        if not (live.enabled and b.dropped == "unregistered"
                and resumes_unregistered_targets(self.system)):
            return False
        b.dropped = None
        b.said = ""
        self.report(Action(t.name, "resumed", f"the kernel resumed it when {live.dev_name} "
                           "registered again", ["enabled"]))
        self._rebind(t, live)
        return True

    # -- the loop -------------------------------------------------------------------------
    def next_retry(self) -> float:
        """time.monotonic() of the earliest retry due (inf: none)."""
        return min((b.retry_at for b in self.bound.values() if b.waiting), default=float("inf"))

    def retry_due(self, now: float) -> int:
        """Mark every failed target whose retry is due (planned at the next flush)."""
        due = 0
        for name, b in self.bound.items():
            if b.waiting and b.retry_at <= now:
                b.retry_at = float("inf")  # until this attempt's outcome sets the next
                self._dirty.setdefault(name, []).append(f"retry {b.attempts}")
                due += 1
        return due

    def heartbeat(self) -> None:
        from netconsolectl.host.kmsgtest import choose_level, write_kmsg

        self.heartbeats += 1
        try:
            write_kmsg(self.system, choose_level(self.system),
                       f"{HEARTBEAT_PREFIX} {self.heartbeats}")
        except NetconsoleError as e:
            self.report(Action("", "failed", "heartbeat", error=e))

    def revalidate(self) -> None:
        """Mark every target with a discovered next hop, to be asked again (a probe)."""
        for name, b in self.bound.items():
            if b.next_hop is not None:
                self._dirty.setdefault(name, []).append(f"revalidating next hop {b.next_hop}")
                self._fresh.add(name)

    def reload(self) -> None:
        try:
            config = load(self.path)
        except NetconsoleError as e:
            self.report(Action("", "failed", f"SIGHUP: kept the previous configuration, "
                               f"{self.path} is invalid", error=e))
            return
        self._apply(config, why=f"SIGHUP: applied {self.path}")
        self.report(Action("", "reloaded", f"watching {len(config.targets)} targets"))

    def run(self) -> None:
        """Wait for events and act on them until :meth:`request_stop`."""
        assert self._sub is not None, "start() first"
        opts = self.options
        now = time.monotonic()
        next_hb = now + opts.heartbeat if opts.heartbeat > 0 else float("inf")
        next_rv = now + opts.revalidate if opts.revalidate > 0 else float("inf")
        first = last = 0.0
        if opts.heartbeat > 0:
            self.heartbeat()
        while not self._stop:
            due = min(next_hb, next_rv, self.next_retry())
            if self._dirty:
                due = min(due, first + opts.max_delay, last + opts.debounce)
            timeout = None if due == float("inf") else max(0.0, due - time.monotonic())
            sub = self._sub.fileno()
            ready, _, _ = select.select([sub, self._wake_r], [], [], timeout)
            if self._wake_r in ready:
                with contextlib.suppress(OSError):
                    os.read(self._wake_r, 4096)
            if self._stop:
                break
            if self._reload:
                self._reload = False
                self.reload()
            now = time.monotonic()
            if sub in ready:
                before = bool(self._dirty)
                self.feed(self._sub.read())
                if self._dirty:
                    if not before:
                        first = now
                    last = now
            now = time.monotonic()
            if self.retry_due(now) and not self._dirty.keys() - {
                    n for n, b in self.bound.items() if b.waiting}:
                self.flush()  # only retries: no burst to wait for
            if self._dirty and (now >= first + opts.max_delay or now >= last + opts.debounce):
                self.flush()
            if now >= next_hb:
                self.heartbeat()
                next_hb = now + opts.heartbeat
            if now >= next_rv:
                self.revalidate()
                first = last = now
                next_rv = now + opts.revalidate

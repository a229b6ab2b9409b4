"""The target verbs as library functions: add, set, enable, disable, remove.

Each verb validates, plans, applies under the lock and returns a :class:`Change` saying what
changed (or, with ``dry_run``, what would). The command line only parses options, calls one
of these and prints the result; ``apply`` plans and commits through the same pieces
(:func:`plan_create`, :func:`plan_change`, :func:`commit`), so a runbook that imports the
package changes a target exactly as ``netconsolectl add`` does.

Discovery (``dev_name``, ``local_ip``, ``remote_mac``) is passed in as ``discover`` (the
command line's prints what it found); without it the verbs ask the host's network quietly.
``say`` hears progress notes as they happen (setup steps, the planner's notes), in order.
"""

from __future__ import annotations

import errno
import ipaddress
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

from netconsolectl.endpoint import endpoint
from netconsolectl.errors import (
    RUN_AS_ROOT,
    InvalidInput,
    NoSuchTarget,
    PermissionDenied,
    TargetExists,
)
from netconsolectl.facts import DEFAULT_REMOTE_PORT, is_set
from netconsolectl.sender import plan as planner
from netconsolectl.sender.kernel import Kernel, detect
from netconsolectl.sender.machine import Machine
from netconsolectl.sender.plan import Plan, plan_add, plan_remove, plan_set, waiting_for
from netconsolectl.sender.spec import (
    TargetSpec,
    parse_ip,
    validate_target_name,
)
from netconsolectl.sender.target import Target, TargetState, list_targets, require_netconsole

Verb = Literal["add", "set", "enable", "disable", "remove"]

#: Completes a spec for sending (and checks what it gives): ``(spec, broadcast) -> spec``.
Discover = Callable[[TargetSpec, bool], TargetSpec]
Say = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass
class Change:
    """What one verb did (or, with ``dry_run``, would do) to one target."""

    action: Verb
    name: str
    plan: Plan | None = None
    dry_run: bool = False
    #: the absent device a deactivated target waits for (7.x: the kernel resumes it, unless
    #: a disable cancels that)
    waiting: str | None = None
    #: notes for the user that are not errors (a default the verb chose, say)
    notices: list[str] = field(default_factory=list)
    #: what is probably a mistake but was done as asked (a duplicate target)
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Something was written (never with ``dry_run``)."""
        return self.would_change and not self.dry_run

    @property
    def would_change(self) -> bool:
        return self.plan is not None and bool(self.plan.ops)

    @property
    def summary(self) -> list[str]:
        """The changes in words (``remote_ip 192.0.2.50 -> 192.0.2.1``, ``created``)."""
        return list(self.plan.summary) if self.plan is not None else []


# -- the pieces apply shares -------------------------------------------------------------------


def plan_create(kernel: Kernel, name: str, spec: TargetSpec) -> Plan:
    """The plan that creates ``name`` from a complete ``spec`` (refusals first)."""
    return plan_add(name, spec, kernel)


def plan_change(system: Machine, kernel: Kernel, live: TargetState, spec: TargetSpec) -> Plan:
    """The plan that turns ``live`` into ``spec``, writing only what differs."""
    return plan_set(live, spec, kernel, waiting_for(system, kernel, live))


def commit(system: Machine, plan: Plan, *, locked: bool = False) -> None:
    """Carry out ``plan`` (under the lock unless ``locked``) and read it back.

    A target that was created or removed starts with no `disable` mark: watch may take care
    of it again (netconsolectl.sender.marks).
    """
    from netconsolectl.sender.marks import clear_mark

    if locked:
        planner.apply(system, plan)
    else:
        with system.lock():
            planner.apply(system, plan)
    if plan.creates or plan.removes:
        clear_mark(system, plan.name)


SendKey = tuple[str, str, int]


def send_key(dev: str | None, remote_ip: object, port: int | None) -> SendKey | None:
    """Device, collector address (by meaning: the kernel's spelling of IPv6 differs) and port
    a target sends to; None when it has no device or collector yet."""
    if not dev or remote_ip is None or not is_set(str(remote_ip)):
        return None
    try:
        addr = str(ipaddress.ip_address(str(remote_ip)))
    except ValueError:
        return None
    return dev, addr, port if port is not None else DEFAULT_REMOTE_PORT


def duplicate_groups(sending: Iterable[tuple[str, SendKey | None]]) -> list[list[str]]:
    """Names that send to the same device, collector address and port, by group of two or
    more: the kernel sends every message once per target, so each arrives that many times."""
    groups: dict[SendKey, list[str]] = {}
    for name, key in sending:
        if key is not None:
            groups.setdefault(key, []).append(name)
    return [names for names in groups.values() if len(names) > 1]


def state_key(s: TargetState) -> SendKey | None:
    """The :func:`send_key` of a live target that is enabled (a disabled one sends nothing)."""
    return send_key(s.dev_name, s.remote_ip, s.remote_port) if s.enabled else None


def duplicate_warning(names: list[str], key: SendKey) -> str:
    """One line for a group of :func:`duplicate_groups`."""
    dev, addr, port = key
    times = "twice" if len(names) == 2 else f"{len(names)} times"
    return (f"{', '.join(names[:-1])} and {names[-1]} send through {dev} to "
            f"{endpoint(addr, port)}: every message arrives {times}; remove or change all but "
            "one")


def needs_extended(spec: TargetSpec, live: TargetState | None = None) -> TargetSpec:
    """Userdata and sysdata are sent only in the extended format: turn it on when the user
    did not say, refuse (exit 2) when they asked for the basic format."""
    wants_data = any(spec.userdata.values()) or bool(spec.sysdata)
    extended = spec.extended if spec.extended is not None else (
        live.extended if live is not None else None)
    if not wants_data or extended:
        return spec
    given = "--userdata" if any(spec.userdata.values()) else "--sysdata"
    if spec.extended is False:
        raise InvalidInput(
            f"{given} needs the extended format, but --no-extended was given: the kernel "
            "sends userdata and sysdata only in extended messages",
            hint=f"drop --no-extended, or leave {given} out",
        )
    return replace(spec, extended=True)


#: What a target in the basic format (the kernel's default) does not give its receiver.
BASIC_FORMAT_LOSS = (
    "basic format: no sequence numbers, so the receiver cannot tell lost or reordered "
    "messages or reassemble long ones, and no userdata"
)


def _live(system: Machine, name: str) -> TargetState:
    require_netconsole(system.configfs)
    return Target(system.configfs, validate_target_name(name)).state()


# -- add -----------------------------------------------------------------------------------------


def _ready_to_create(system: Machine, name: str, *, dry_run: bool, say: Say) -> None:
    """Setup when netconsole is missing (default root); refuse an existing name or a
    configfs this user cannot write, before discovery asks the network."""
    from netconsolectl.sender.setup import setup

    fs = system.configfs
    if not fs.available() and fs.is_default_root:
        if dry_run:
            say("netconsole is not loaded: without --dry-run, `setup` runs first")
        else:
            with system.lock():
                for line in setup(system):
                    say(line)
    if dry_run and not fs.available():
        return
    require_netconsole(fs)
    if Target(fs, name).exists():
        raise TargetExists(f"target {name!r} already exists",
                           hint="use `netconsolectl set` to change it")
    if not dry_run and fs.base.is_dir() and not os.access(fs.base, os.W_OK):
        raise PermissionDenied(f"cannot create targets in {fs.base}: permission denied",
                               hint=RUN_AS_ROOT, errno=errno.EACCES)


def add(system: Machine, name: str, spec: TargetSpec, *, dry_run: bool = False,
        broadcast: bool = False, discover: Discover | None = None, say: Say = _quiet) -> Change:
    """Create target ``name`` from ``spec`` (discovery fills what it leaves out) and enable
    it unless ``spec.enabled`` is False.

    Refused before anything is written: a name in use, an empty userdata value, what the
    kernel lacks. A second target to the same device, collector address and port is added
    with a warning (``Change.warnings``): the kernel sends every message through both.
    """
    validate_target_name(name)
    empty = [k for k, v in spec.userdata.items() if not v]
    if empty:
        raise InvalidInput(f"userdata {empty[0]!r} has an empty value (the kernel sends none)")
    notices = []
    wanted = needs_extended(spec)
    if wanted.extended and not spec.extended:
        notices.append("userdata and sysdata are sent only in the extended format: "
                       "turned --extended on")
    spec = wanted
    if spec.extended is None and not spec.release:
        notices.append(f"{BASIC_FORMAT_LOSS}; --extended gives them (`set {name} --extended` "
                       "later), --no-extended keeps this quiet")
    _ready_to_create(system, name, dry_run=dry_run, say=say)
    kernel = detect(system.configfs)
    planner.check_add(name, spec, kernel)  # before discovery: what the kernel lacks
    spec = (discover or system.complete_spec)(spec, broadcast)
    warnings = []
    key = send_key(spec.dev_name, spec.remote_ip, spec.remote_port)
    if spec.enabled is not False and key is not None and system.configfs.available():
        same = [t.name for t in list_targets(system.configfs)
                if t.name != name and state_key(t.state()) == key]
        if same:
            warnings.append(duplicate_warning([*same, name], key))
    plan = plan_create(kernel, name, spec)
    plan.summary.append("created")
    for note in plan.notes:
        say(note)
    if not dry_run:
        commit(system, plan)
    return Change("add", name, plan, dry_run, notices=notices, warnings=warnings)


# -- set -----------------------------------------------------------------------------------------


def _complete_for_set(live: TargetState, spec: TargetSpec, broadcast: bool,
                      discover: Discover) -> TargetSpec:
    """A new collector may need another interface, source and next hop (discovered); a new
    interface, source or MAC alone is checked with what the target keeps, as add would (only
    what was given is written)."""
    if broadcast or (spec.remote_ip is not None and str(spec.remote_ip) != live.remote_ip):
        return discover(replace(spec, remote_ip=spec.remote_ip or parse_ip(str(live.remote_ip))),
                        broadcast)
    if (spec.dev_name or spec.local_ip or spec.remote_mac) and is_set(live.remote_ip):
        local = spec.local_ip or (parse_ip(str(live.local_ip)) if is_set(live.local_ip)
                                  else None)
        discover(replace(spec, remote_ip=parse_ip(str(live.remote_ip)),
                         dev_name=spec.dev_name or live.dev_name or None, local_ip=local,
                         remote_mac=spec.remote_mac or live.remote_mac or None), False)
    return spec


def set_target(system: Machine, name: str, spec: TargetSpec, *, dry_run: bool = False,
               broadcast: bool = False, discover: Discover | None = None,
               say: Say = _quiet) -> Change:
    """Change target ``name``, even an enabled one (disable, write what differs, enable)."""
    live = _live(system, name)
    kernel = detect(system.configfs)
    notices = []
    wanted = needs_extended(spec, live)
    if wanted.extended and not spec.extended:
        notices.append("userdata and sysdata are sent only in the extended format: "
                       "turned extended on")
    spec = wanted
    plan_set(live, spec, kernel)  # refusals and limits before discovery
    spec = _complete_for_set(live, spec, broadcast, discover or system.complete_spec)
    plan = plan_change(system, kernel, live, spec)
    for note in plan.notes:
        say(note)
    if plan.ops and not dry_run:
        commit(system, plan)
    return Change("set", live.name, plan, dry_run, notices=notices)


# -- enable, disable ---------------------------------------------------------------------------


def toggle(system: Machine, name: str, enabled: bool, *, dry_run: bool = False,
           say: Say = _quiet) -> Change:
    """Enable or disable ``name``; success when it already is.

    A person's disable is remembered (and an enable forgets it) even when nothing is written:
    ``watch`` must not turn on what a person turned off (netconsolectl.sender.marks).
    """
    live = _live(system, name)
    kernel = detect(system.configfs)
    waiting = waiting_for(system, kernel, live)
    plan = plan_set(live, TargetSpec(enabled=enabled), kernel, waiting)
    if not dry_run:
        from netconsolectl.sender.marks import clear_mark, mark_disabled

        with system.lock():
            (clear_mark if enabled else mark_disabled)(system, live.name)
    change = Change("enable" if enabled else "disable", live.name, plan, dry_run,
                    waiting=waiting)
    for note in plan.notes:  # a deactivated target: what the kernel will do (or no longer)
        say(note)
    if plan.ops and not dry_run:
        commit(system, plan)
    return change


def enable(system: Machine, name: str, *, dry_run: bool = False, say: Say = _quiet) -> Change:
    return toggle(system, name, True, dry_run=dry_run, say=say)


def disable(system: Machine, name: str, *, dry_run: bool = False, say: Say = _quiet) -> Change:
    return toggle(system, name, False, dry_run=dry_run, say=say)


# -- remove ------------------------------------------------------------------------------------


def remove(system: Machine, name: str, *, dry_run: bool = False, missing_ok: bool = False,
           say: Say = _quiet) -> Change:
    """Remove ``name`` (its userdata entries first); with ``missing_ok`` a missing target is
    a success with nothing to do (``plan`` None)."""
    try:
        live = _live(system, name)
    except NoSuchTarget:
        if missing_ok:
            return Change("remove", name, None, dry_run)
        raise
    plan = plan_remove(live)
    plan.summary.append("removed")
    for note in plan.notes:
        say(note)
    if not dry_run:
        commit(system, plan)
    return Change("remove", live.name, plan, dry_run)


def describe_added(state: TargetState) -> str:
    """One line for a created target: ``web: 192.0.2.10:6665 -> ...``."""
    return (f"{endpoint(state.local_ip, state.local_port)} -> "
            f"{endpoint(state.remote_ip, state.remote_port)} via {state.dev_name} to "
            f"{state.remote_mac} ({'enabled' if state.enabled else 'disabled'})")

"""Declarative apply: make the live targets equal a configuration, over the core planner.

Per configured target: create it when missing, change only what differs (the planner
disables, writes and re-enables as the kernel requires), leave it alone when it matches. With
``prune``, live targets that are not configured are removed, except boot-time ``cmdline<N>``
targets, which are only removed when listed in ``options.absent`` (an rmdir destroys a boot
target for good). A failure on one target is recorded and the others are still applied; the
planner leaves the failing one consistent (a failed creation is rolled back).

Values are compared by meaning, not by spelling: the kernel prints IPv6 addresses in its own
compressed form and MACs in lowercase, and a configuration that already matches must plan
nothing, so that a second apply changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from netconsolectl.declarative.config import Config, ConfigTarget
from netconsolectl.endpoint import endpoint
from netconsolectl.errors import NetconsoleError
from netconsolectl.host.loglevel import set_console_loglevel
from netconsolectl.host.system import System
from netconsolectl.sender import verbs
from netconsolectl.sender.kernel import Kernel, detect
from netconsolectl.sender.plan import Plan, plan_remove, same_value
from netconsolectl.sender.setup import read_live, setup
from netconsolectl.sender.spec import TargetSpec
from netconsolectl.sender.target import PARAM_ATTRS, Target, TargetState, require_netconsole

ItemAction = Literal["create", "change", "unchanged", "remove"]

# Fills in dev_name / local_ip / remote_mac for one target (discovery); raises on failure.
Resolver = Callable[[str, TargetSpec], TargetSpec]


@dataclass
class Item:
    """What apply does (or did) to one target."""

    name: str
    action: ItemAction
    plan: Plan | None = None
    changes: list[str] = field(default_factory=list)
    reason: str = ""
    error: NetconsoleError | None = None
    done: bool = False

    @property
    def failed(self) -> bool:
        return self.error is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "action": self.action,
            "changes": self.changes,
            "reason": self.reason or None,
            "error": str(self.error) if self.error else None,
        }


@dataclass
class LoglevelChange:
    current: int | None
    wanted: int
    error: NetconsoleError | None = None


@dataclass
class ApplyPlan:
    items: list[Item] = field(default_factory=list)
    loglevel: LoglevelChange | None = None
    notes: list[str] = field(default_factory=list)
    #: probable mistakes that are carried out as written (targets that duplicate each other)
    warnings: list[str] = field(default_factory=list)

    @property
    def changes(self) -> bool:
        """Something was (or would be) changed, failures aside."""
        return self.loglevel is not None or any(
            i.action != "unchanged" and not i.failed for i in self.items
        )

    @property
    def failures(self) -> list[NetconsoleError]:
        errs = [i.error for i in self.items if i.error is not None]
        if self.loglevel is not None and self.loglevel.error is not None:
            errs.append(self.loglevel.error)
        return errs

    def item(self, name: str) -> Item | None:
        return next((i for i in self.items if i.name == name), None)

    def summary(self, source: object, *, dry_run: bool) -> str:
        """One line: how many targets were (or would be) created, changed, removed, left."""
        counts = dict.fromkeys(("create", "change", "remove", "unchanged"), 0)
        for item in self.items:
            if not item.failed:
                counts[item.action] += 1
        failed = len(self.items) - sum(counts.values())
        if dry_run:
            return (f"{source}: {counts['create']} would create, {counts['change']} to change, "
                    f"{counts['remove']} to remove, {counts['unchanged']} unchanged, "
                    f"{failed} failed")
        return (f"{source}: {counts['create']} created, {counts['change']} changed, "
                f"{counts['remove']} removed, {counts['unchanged']} unchanged, {failed} failed")

    def enabled_targets(self, system: System) -> list[str]:
        """The targets this apply left (or found) enabled."""
        fs = system.configfs
        if not fs.available():
            return []
        return [i.name for i in self.items
                if (i.done or i.action == "unchanged") and not i.failed and i.action != "remove"
                and Target(fs, i.name).exists() and Target(fs, i.name).read("enabled") == "1"]


# -- comparing live and desired ---------------------------------------------------------------


def _show(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return "unset" if v is None or v == "" else str(v)


def desired(spec: TargetSpec) -> TargetSpec:
    """A configured target as complete desired state: what the file leaves out is default
    (the extended format when it has userdata or sysdata, which only that format sends)."""
    return verbs.needs_extended(spec).with_defaults()


def diff(live: TargetState, want: TargetSpec) -> tuple[TargetSpec, list[str]]:
    """The spec ``plan_set`` needs to turn ``live`` into ``want``, and the changes in words.

    Attributes ``want`` leaves unset (None) are not compared (discovery was not asked to fill
    them). ``want.userdata`` is the complete set: live keys it lacks are removed.
    """
    params: dict[str, Any] = {}
    changes: list[str] = []
    for attr in PARAM_ATTRS:
        w = getattr(want, attr)
        if w is None:
            continue
        h = getattr(live, attr)
        if not same_value(attr, w, h):
            params[attr] = w
            changes.append(f"{attr} {_show(h)} -> {_show(w)}")
    userdata: dict[str, str] = {}
    for key in live.userdata:
        if key not in want.userdata:
            userdata[key] = ""
            changes.append(f"userdata {key} removed")
    for key, value in want.userdata.items():
        if key not in live.userdata:
            userdata[key] = value
            changes.append(f"userdata {key} added")
        elif live.userdata[key] != value:
            userdata[key] = value
            changes.append(f"userdata {key} changed")
    sysdata = None
    if want.sysdata is not None and live.sysdata is not None:
        # A toggle whose file cannot be read back (release_enabled on 6.15 until the 2026
        # fix) is not compared; it is written whenever the others change.
        known = {k for k, v in live.sysdata.items() if v is not None}
        have = live.sysdata_on & known
        if (want.sysdata & known) != have:
            sysdata = want.sysdata
            changes.append(f"sysdata {','.join(sorted(have)) or 'none'} -> "
                           f"{','.join(sorted(want.sysdata)) or 'none'}")
    elif want.sysdata:
        sysdata = want.sysdata  # the kernel has none: plan_set refuses it, naming the version
    enabled = want.enabled if want.enabled is not None else True
    if enabled != live.enabled:
        changes.append("enabled" if enabled else "disabled")
    return TargetSpec(userdata=userdata, enabled=enabled, sysdata=sysdata, **params), changes


# -- planning ---------------------------------------------------------------------------------


def resolve_targets(
    config: Config, resolver: Resolver | None
) -> dict[str, TargetSpec | NetconsoleError]:
    """Fill what each target leaves out, target by target; a failure stays with its target."""
    out: dict[str, TargetSpec | NetconsoleError] = {}
    for t in config.targets:
        spec = t.spec
        if t.remote_name is not None:
            from netconsolectl.discover.names import collector

            try:
                spec = replace(spec, remote_ip=collector(t.remote_name).address).check()
            except NetconsoleError as e:
                out[t.name] = e
                continue
        # Every target goes through the resolver, one that gives dev_name, local_ip and
        # remote_mac too: they are checked as discovered values are (nothing is probed then).
        if resolver is not None:
            try:
                spec = resolver(t.name, spec)
            except NetconsoleError as e:
                out[t.name] = e
                continue
        out[t.name] = spec
    return out


def _plan_target(system: System, kernel: Kernel, t: ConfigTarget, spec: TargetSpec,
                 live: TargetState | None) -> Item:
    want = desired(spec)
    if live is None:
        p = verbs.plan_create(kernel, t.name, want)
        what = [f"remote {endpoint(want.remote_ip, want.remote_port)} "
                f"via {want.dev_name or 'eth0'}"]
        return Item(t.name, "create", plan=p, changes=what)
    patch, changes = diff(live, want)
    p = verbs.plan_change(system, kernel, live, patch)
    if not p.ops:
        return Item(t.name, "unchanged", plan=p)
    return Item(t.name, "change", plan=p, changes=changes)


def plan_config(
    system: System,
    config: Config,
    live: dict[str, TargetState],
    resolved: dict[str, TargetSpec | NetconsoleError],
    *,
    prune: bool = False,
) -> ApplyPlan:
    """The per-target plans that turn ``live`` into ``config``; nothing is written."""
    ap = ApplyPlan()
    kernel = detect(system.configfs)
    for t in config.targets:
        spec = resolved.get(t.name, t.spec)
        if isinstance(spec, NetconsoleError):
            ap.items.append(Item(t.name, "create" if t.name not in live else "change",
                                 error=spec, reason="could not be planned"))
            continue
        try:
            ap.items.append(_plan_target(system, kernel, t, spec, live.get(t.name)))
        except NetconsoleError as e:
            ap.items.append(Item(t.name, "create" if t.name not in live else "change",
                                 error=e, reason="could not be planned"))
    configured = set(config.names())
    for name in config.options.absent:
        if name in live:
            ap.items.append(Item(name, "remove", plan=plan_remove(live[name]),
                                 reason="listed in options.absent"))
    if prune or config.options.prune:
        for name, state in live.items():
            if name in configured or name in config.options.absent:
                continue
            if state.is_boot_target:
                ap.notes.append(
                    f"{name} is a boot-time target: prune keeps it (list it in options.absent "
                    "to remove it, or configure it by that name to manage it)"
                )
                continue
            ap.items.append(Item(name, "remove", plan=plan_remove(state),
                                 reason="not in the configuration"))
    ap.warnings += _duplicates(ap, config, live, resolved)
    wanted = config.options.console_loglevel
    if wanted is not None:
        current = system.console_loglevel()
        if current != wanted:
            ap.loglevel = LoglevelChange(current=current, wanted=wanted)
    return ap


def _duplicates(ap: ApplyPlan, config: Config, live: dict[str, TargetState],
                resolved: dict[str, TargetSpec | NetconsoleError]) -> list[str]:
    """Warnings for targets that, once applied, send through the same device to the same
    collector address and port (configured ones with each other or with live ones kept)."""
    sending: dict[str, verbs.SendKey | None] = {}
    removed = {i.name for i in ap.items if i.action == "remove"}
    for name, state in live.items():
        if name not in removed:
            sending[name] = verbs.state_key(state)
    for t in config.targets:
        spec = resolved.get(t.name, t.spec)
        if isinstance(spec, NetconsoleError):
            continue
        want = desired(spec)
        sending[t.name] = verbs.send_key(want.dev_name, want.remote_ip, want.remote_port) \
            if want.enabled else None
    return [verbs.duplicate_warning(names, key) for names in verbs.duplicate_groups(
        sending.items()) if (key := sending[names[0]]) is not None]


# -- applying ---------------------------------------------------------------------------------


def execute(system: System, ap: ApplyPlan) -> None:
    """Carry out every plan in order; record failures per target and go on with the rest."""
    for item in ap.items:
        if item.failed or item.plan is None or not item.plan.ops:
            continue
        try:
            verbs.commit(system, item.plan, locked=True)
        except NetconsoleError as e:
            item.error = e
            continue
        item.done = True
    if ap.loglevel is not None:
        try:
            set_console_loglevel(system, ap.loglevel.wanted)
        except NetconsoleError as e:
            ap.loglevel.error = e


def prepare(system: System, *, dry_run: bool = False) -> list[str]:
    """Make configfs available before applying (setup under the default root); say what."""
    fs = system.configfs
    if fs.available():
        return []
    if dry_run:
        return [f"{fs.base} does not exist: planning against no live targets (apply would run "
                "setup first)"]
    if not fs.is_default_root:
        require_netconsole(fs)
        return []
    with system.lock():
        return setup(system)


def apply_config(
    system: System,
    config: Config,
    *,
    prune: bool = False,
    dry_run: bool = False,
    resolver: Resolver | None = None,
) -> ApplyPlan:
    """Resolve, then under the lock read the live state, plan and (unless dry) apply."""
    resolved = resolve_targets(config, resolver)
    if dry_run:
        return plan_config(system, config, read_live(system), resolved, prune=prune)
    with system.lock():
        live = read_live(system, attach=config.names())
        ap = plan_config(system, config, live, resolved, prune=prune)
        execute(system, ap)
        # Running apply ends a person's `disable` of a configured target (watch respects it
        # until then): the file is the statement of what should run.
        from netconsolectl.sender.marks import clear_mark

        for name in config.names():
            clear_mark(system, name)
    return ap


def with_resolved(config: Config, resolved: dict[str, TargetSpec]) -> Config:
    """The configuration with discovered values filled in (for `cmdline --config`)."""
    return replace(config, targets=tuple(
        replace(t, spec=resolved.get(t.name, t.spec)) for t in config.targets
    ))

"""What the configuration becomes across a reboot: the netconsole= parameter and the service.

``cmdline`` and ``persist`` pick targets (live ones, or a configuration file's), turn them into
boot targets (:mod:`netconsolectl.sender.bootparam`) and plan the files to write
(:mod:`netconsolectl.host.persist`). Everything here only plans and reports; the caller prints
and :func:`netconsolectl.host.persist.execute` writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from netconsolectl.declarative.apply import Resolver, plan_config, resolve_targets, with_resolved
from netconsolectl.declarative.config import (
    DEFAULT_PATH,
    EXPORT_HEADER,
    Config,
    dumps,
    load,
)
from netconsolectl.declarative.export import export_live
from netconsolectl.errors import InvalidInput, NetconsoleError, NoSuchTarget
from netconsolectl.host import persist as ps
from netconsolectl.host.system import System
from netconsolectl.sender import bootparam
from netconsolectl.sender.kernel import Kernel, detect
from netconsolectl.sender.setup import read_live
from netconsolectl.sender.target import require_netconsole


@dataclass
class BootSelection:
    """The targets chosen for netconsole=, in order (the kernel names them cmdline0, ...)."""

    names: list[str] = field(default_factory=list)
    targets: list[bootparam.BootTarget] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # disabled, left out when none were named
    notes: list[str] = field(default_factory=list)
    #: whose boot-parameter parser the value is written for (None: the newest)
    kernel: Kernel | None = None

    @property
    def value(self) -> str:
        """The value; refused (naming the version) where the kernel's parser lacks a part of
        it: ``r`` before 6.6, a device MAC before 6.15."""
        return bootparam.format_param(self.targets, kernel=self.kernel)


def boot_targets(system: System, names: list[str], config: Config | None = None,
                 resolver: Resolver | None = None, kernel: Kernel | None = None
                 ) -> BootSelection:
    """The boot targets for the named (default: every enabled) live or configured targets.

    ``resolver`` fills what a configured target leaves out (the kernel does no discovery at
    boot, so the parameter must carry the device, source and next-hop MAC). ``kernel``: the
    kernel the value is for (default: the running one).
    """
    sel = BootSelection(kernel=kernel or detect(system.configfs))
    if config is not None:
        unknown = [n for n in names if config.target(n) is None]
        if unknown:
            raise NoSuchTarget(f"{config.source} has no target {unknown[0]!r}")
        picked = [t for t in config.targets
                  if (t.name in names if names else t.spec.enabled is not False)]
        sel.skipped = [t.name for t in config.targets if t not in picked and not names]
        sub = replace(config, targets=tuple(picked))
        resolved = resolve_targets(sub, resolver)
        for name, spec in resolved.items():
            if isinstance(spec, NetconsoleError):
                raise type(spec)(f"{name}: {spec}", hint=spec.hint)
        full = with_resolved(sub, {k: v for k, v in resolved.items()
                                   if not isinstance(v, NetconsoleError)})
        for t in full.targets:
            if t.spec.userdata:
                sel.notes.append(f"{t.name}: userdata cannot be given at boot; apply adds it "
                                 "later if the configuration names this target as the kernel "
                                 "will (cmdline<N>)")
            if t.spec.sysdata:
                sel.notes.append(f"{t.name}: sysdata cannot be given at boot; apply turns it on "
                                 "later, as for userdata")
            sel.targets.append(bootparam.from_spec(t.name, t.spec))
            sel.names.append(t.name)
    else:
        require_netconsole(system.configfs)
        live = read_live(system)
        unknown = [n for n in names if n not in live]
        if unknown:
            raise NoSuchTarget(f"no netconsole target named {unknown[0]!r}",
                               hint="see `netconsolectl list`")
        states = [live[n] for n in names] if names else [s for s in live.values() if s.enabled]
        sel.skipped = [] if names else [s.name for s in live.values() if not s.enabled]
        for s in states:
            if s.userdata:
                sel.notes.append(f"{s.name}: userdata cannot be given at boot; it is left out")
            if s.sysdata_on:
                sel.notes.append(f"{s.name}: sysdata cannot be given at boot; it is left out")
            sel.targets.append(bootparam.from_state(s))
            sel.names.append(s.name)
    if sel.skipped:
        sel.notes.append("left out (disabled): " + ", ".join(sel.skipped))
    if not sel.targets:
        raise InvalidInput("no enabled target to put in netconsole=",
                           hint="name the targets to include, or enable one")
    return sel


@dataclass
class PersistPlan:
    """What ``persist`` prints, says, and writes."""

    steps: list[ps.Step] = field(default_factory=list)
    output: list[str] = field(default_factory=list)  # the parameter line(s), for stdout
    messages: list[tuple[Literal["info", "warn"], str]] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)  # what is left for the admin to do

    def note(self, text: str) -> None:
        self.messages.append(("info", text))

    def warn(self, text: str) -> None:
        self.messages.append(("warn", text))


def plan_service(system: System, layout: ps.Layout, config: Path | None, *, from_live: bool,
                 enable: bool, oneshot: bool, plan: PersistPlan) -> None:
    """The unit that applies ``config`` at boot (and, unless ``oneshot``, keeps it delivering
    with ``watch``), and the file itself when it must be written."""
    path = config or DEFAULT_PATH
    if not path.is_absolute():
        path = Path.cwd() / path
    on_disk = layout.under(path)
    if from_live or not on_disk.exists():
        require_netconsole(system.configfs)
        live = read_live(system)
        if not live:
            raise InvalidInput(
                f"nothing to persist: no live targets and no {on_disk}",
                hint="add targets first, or write the configuration file",
            )
        # As `export` writes it: what discovery finds the same today is left out, so that
        # apply and watch find it again after the network changed.
        data, left_out = export_live(system, list(live.values()))
        for name, keys in left_out.items():
            plan.note(f"{name}: {', '.join(sorted(keys))} left out of {on_disk}: discovered "
                      "again at every apply")
        plan.steps.append(ps.Step("write", on_disk, dumps(data, header=EXPORT_HEADER)))
    else:
        cfg = load(on_disk)  # the service must not fail on a file we could have checked
        if system.configfs.available():
            ap = plan_config(system, cfg, read_live(system), resolve_targets(cfg, None))
            differ = [i.name for i in ap.items if i.action != "unchanged" or i.failed]
            if differ:
                plan.warn(
                    f"{on_disk} differs from the live state ({', '.join(differ)}); the service "
                    "will apply the file (--from-live writes the live state into it instead)")
    plan.steps += ps.service_steps(layout, ps.netconsolectl_command(), str(path), enable=enable,
                                  oneshot=oneshot)


def plan_boot_param(system: System, layout: ps.Layout, selection: BootSelection,
                    kind: Literal["auto", "module", "builtin"], *, write: bool,
                    plan: PersistPlan) -> None:
    """The netconsole= parameter for ``selection``: where it goes, and its files with ``write``."""
    value = selection.value
    found: ps.NetconsoleKind = (ps.netconsole_kind(layout, system.kernel_release())
                                if kind == "auto" else kind)
    if found == "module":
        plan.output.append(f"options netconsole netconsole={value}")
        plan.note("netconsole is a module: the line above goes into /etc/modprobe.d/ (or "
                          f"netconsole.netconsole={value} on the kernel command line), and the "
                          "module must be loaded at boot (/etc/modules-load.d/)")
    else:
        plan.output.append(f"netconsole={value}")
        plan.note(
            "netconsole is built in: add the parameter above to the kernel command line"
            if found == "builtin" else
            "could not tell whether netconsole is built in or a module (--kind); built in, the "
            "parameter goes on the kernel command line")
    if "netconsole=" in system.cmdline():
        plan.warn("this boot already has a netconsole= parameter; the new one would "
                             "replace it")
    names = selection.names
    if names != [f"cmdline{i}" for i in range(len(names))]:
        plan.note("at boot the kernel names these targets " + ", ".join(
            f"cmdline{i} (now {n})" for i, n in enumerate(names))
            + "; use those names in the configuration so apply adopts them instead of adding "
            "duplicates")
    if not write:
        plan.note("printed only; --write writes it")
        return
    steps, todo = ps.boot_param_steps(layout, found, value)
    plan.steps += steps
    plan.todo += todo

"""CLI runbook commands: apply, export, cmdline, persist, loglevel, test, doctor.

Each command is a thin layer over one library module (netconsolectl.declarative.apply, .config,
.cmdline, .persist, .loglevel, .kmsgtest, .doctor); heavy imports happen inside the commands.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from netconsolectl.cli import complete
from netconsolectl.cli.base import State, command, err, info, state, warn
from netconsolectl.declarative.config import DEFAULT_PATH
from netconsolectl.errors import InvalidInput, NetconsoleError, NoSuchTarget

if TYPE_CHECKING:
    from netconsolectl.bootparam import BootTarget
    from netconsolectl.declarative.apply import ApplyPlan, Resolver
    from netconsolectl.declarative.config import Config
    from netconsolectl.sender.spec import TargetSpec


class Format(StrEnum):
    toml = "toml"
    json = "json"


ConfigArg = Annotated[
    Path,
    typer.Argument(
        metavar="[FILE]",
        help="Configuration file (TOML, or JSON when it ends in .json).",
        autocompletion=complete.config_files,
        show_default=True,
    ),
]
ArpTimeout = Annotated[
    float | None,
    typer.Option("--arp-timeout", metavar="S", min=0.05, max=60.0,
                 help="Seconds to wait for each ARP/NDP reply [options.arp_timeout, 1.0]."),
]
ArpRetries = Annotated[
    int | None,
    typer.Option("--arp-retries", metavar="N", min=1, max=20,
                 help="ARP/NDP probes before giving up [options.arp_retries, 3]."),
]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def _resolver(arp_timeout: float, arp_retries: int) -> Resolver:
    """Discovery for the keys a configured target leaves out, re-run at every apply."""
    from netconsolectl.cli.resolve import fill_spec

    def resolve(name: str, spec: TargetSpec) -> TargetSpec:
        return fill_spec(spec, arp_timeout=arp_timeout, arp_retries=arp_retries,
                         label=f"{name}: ")

    return resolve


def _load(path: Path) -> Config:
    from netconsolectl.declarative.config import load

    return load(path)


# -- apply ------------------------------------------------------------------------------------


def _print_plan(st: State, ap: ApplyPlan, *, dry_run: bool) -> None:
    fs = st.fs
    past = {"create": "created", "change": "changed", "remove": "removed",
            "unchanged": "unchanged"}
    for item in ap.items:
        if item.failed:
            continue
        verb = item.action if dry_run else past[item.action]
        detail = ""
        if item.action in ("create", "change") and item.changes:
            detail = ": " + ", ".join(item.changes)
        elif item.reason:
            detail = f" ({item.reason})"
        _out(f"{verb} {item.name}{detail}")
        if dry_run and item.plan is not None:
            for note in item.plan.notes:
                _out(f"  # {note}")
            for line in item.plan.describe(fs):
                _out(f"  {line}")
        elif item.plan is not None:
            for note in item.plan.notes:
                info(f"{item.name}: {note}")
    if ap.loglevel is not None and ap.loglevel.error is None:
        cur = "unknown" if ap.loglevel.current is None else str(ap.loglevel.current)
        verb = "change" if dry_run else "changed"
        _out(f"{verb} console loglevel {cur} -> {ap.loglevel.wanted}")
        if dry_run:
            _out(f"  echo {ap.loglevel.wanted} > {st.system.printk_path}")
    for note in ap.notes:
        info(note)


def _fail_code(errors: list[NetconsoleError]) -> int:
    codes = {e.exit_code for e in errors}
    return codes.pop() if len(codes) == 1 else 1


@command("apply")
def apply_cmd(
    ctx: typer.Context,
    file: ConfigArg = DEFAULT_PATH,
    prune: Annotated[bool, typer.Option(
        "--prune", help="Remove live targets the file does not list (never cmdlineN ones).",
    )] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the plan and the configfs operations; change nothing.",
    )] = False,
    detailed_exitcode: Annotated[bool, typer.Option(
        "--detailed-exitcode",
        help="Exit 0 when nothing had to change, 2 when something changed (or would), "
        "1 on any failure, invalid file included.",
    )] = False,
    arp_timeout: ArpTimeout = None,
    arp_retries: ArpRetries = None,
) -> None:
    """Make the live targets equal FILE: create, change what differs, leave the rest alone.

    The whole file is validated before anything is written. Discovery fills dev_name,
    local_ip and remote_mac where the file leaves them out, at every run. A target that fails
    is reported and the others are still applied. Running apply twice changes nothing the
    second time.
    """
    try:
        changed, failures = _apply(state(ctx), file, prune=prune, dry_run=dry_run,
                                   arp_timeout=arp_timeout, arp_retries=arp_retries)
    except NetconsoleError as e:
        if not detailed_exitcode:
            raise
        from netconsolectl.cli.output import report

        report(e)
        raise typer.Exit(1) from None
    if failures:
        raise typer.Exit(1 if detailed_exitcode else _fail_code(failures))
    if detailed_exitcode and changed:
        raise typer.Exit(2)


def _apply(
    st: State, file: Path, *, prune: bool, dry_run: bool, arp_timeout: float | None,
    arp_retries: int | None,
) -> tuple[bool, list[NetconsoleError]]:
    from netconsolectl.declarative.apply import apply_config
    from netconsolectl.sender.target import require_netconsole

    config = _load(file)
    fs = st.fs
    if not fs.available():
        if dry_run:
            info(f"{fs.base} does not exist: planning against no live targets "
                 "(apply would run setup first)")
        elif fs.is_default_root:
            from netconsolectl.sender.setup import setup

            with st.system.lock():
                for line in setup(st.system):
                    info(line)
        else:
            require_netconsole(fs)
    opts = config.options
    resolver = _resolver(arp_timeout if arp_timeout is not None else opts.arp_timeout,
                         arp_retries if arp_retries is not None else opts.arp_retries)
    ap = apply_config(st.system, config, prune=prune, dry_run=dry_run, resolver=resolver)
    _print_plan(st, ap, dry_run=dry_run)
    failures = ap.failures
    for item in ap.items:
        if item.error is not None:
            e = item.error
            err(f"netconsolectl: error: {item.name}: {e}" + (f" (hint: {e.hint})" if e.hint
                                                             else ""))
    if ap.loglevel is not None and ap.loglevel.error is not None:
        e = ap.loglevel.error
        err(f"netconsolectl: error: console loglevel: {e}"
            + (f" (hint: {e.hint})" if e.hint else ""))
    counts = {k: 0 for k in ("create", "change", "remove", "unchanged")}
    for item in ap.items:
        if not item.failed:
            counts[item.action] += 1
    words = "would create" if dry_run else "created"
    info(
        f"{file}: {counts['create']} {words}, {counts['change']} "
        f"{'to change' if dry_run else 'changed'}, {counts['remove']} "
        f"{'to remove' if dry_run else 'removed'}, {counts['unchanged']} unchanged, "
        f"{len(ap.items) - sum(counts.values())} failed"
    )
    if not dry_run and any(i.done or i.action == "unchanged" for i in ap.items):
        from netconsolectl.sender.target import Target

        enabled = [i.name for i in ap.items if not i.failed and i.action != "remove"
                   and fs.available() and Target(fs, i.name).exists()
                   and Target(fs, i.name).read("enabled") == "1"]
        if enabled:
            msg = st.system.loglevel_warning()
            if msg:
                warn(msg)
    return ap.changes, failures


# -- export -----------------------------------------------------------------------------------

EXPORT_HEADER = (
    "netconsolectl configuration: the live netconsole targets.\n"
    "Apply it with `netconsolectl apply FILE`; keys are the configfs attribute names."
)


@command("export")
def export_cmd(
    ctx: typer.Context,
    format_: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.toml,
) -> None:
    """Print the live targets as a configuration file that `apply` accepts."""
    from netconsolectl.declarative.apply import read_live
    from netconsolectl.declarative.config import dumps, export_data
    from netconsolectl.sender.target import require_netconsole

    st = state(ctx)
    require_netconsole(st.fs)
    live = read_live(st.system)
    data = export_data(list(live.values()))
    sys.stdout.write(dumps(data, format_.value, header=EXPORT_HEADER))
    if not live:
        info("no netconsole targets: the exported configuration is empty")


# -- cmdline ----------------------------------------------------------------------------------


def _explain(value: str, as_json: bool) -> int:
    from netconsolectl.bootparam import MAX_VALUE_BYTES, parse_param, strip_param

    report = parse_param(strip_param(value))
    if as_json:
        _out(json.dumps({
            "value": report.value,
            "bytes": report.size,
            "too_long": report.too_long,
            "targets": [
                {
                    "text": e.text,
                    "name": e.name,
                    "error": e.error,
                    "warnings": e.warnings,
                    "fields": {f.name: f.text for f in e.fields},
                    "target": None if e.target is None else _boot_json(e.target),
                }
                for e in report.entries
            ],
        }, indent=2))
    else:
        for n, e in enumerate(report.entries, 1):
            label = e.name or "not created"
            _out(f"target {n} ({label}): {e.text!r}")
            for f in e.fields:
                shown = repr(f.text) if f.text else "(empty)"
                _out(f"  {f.name:<12} {shown:<24} {f.meaning}")
            for w in e.warnings:
                _out(f"  warning: {w}")
            if e.error:
                _out(f"  error: the kernel logs \"{e.error}\" and skips this target")
        if not report.entries:
            _out("empty value: no targets")
    if report.too_long:
        err(f"netconsolectl: error: the value is {report.size} bytes; the kernel keeps at most "
            f"{MAX_VALUE_BYTES}: built in it is cut (the targets above are what is left), as "
            "a module parameter it is refused and no target is created")
    bad = [e for e in report.entries if e.error]
    if bad:
        err(f"netconsolectl: error: {len(bad)} of {len(report.entries)} target(s) would not be "
            "created")
    return 0 if report.ok else 2


def _boot_json(t: BootTarget) -> dict[str, Any]:
    return {
        "extended": t.extended, "release": t.release, "local_port": t.local_port,
        "local_ip": None if t.local_ip is None else str(t.local_ip),
        "dev_name": t.dev_name or None, "dev_mac": t.dev_mac, "remote_port": t.remote_port,
        "remote_ip": str(t.remote_ip), "remote_mac": t.remote_mac,
    }


def boot_targets(
    st: State, names: list[str], config_path: Path | None, *, arp_timeout: float | None = None,
    arp_retries: int | None = None,
) -> tuple[list[str], list[BootTarget]]:
    """The boot targets for the named (default: enabled) live or configured targets."""
    from netconsolectl import bootparam

    chosen: list[str] = []
    out: list[BootTarget] = []
    if config_path is not None:
        from netconsolectl.declarative.apply import resolve_targets, with_resolved

        config = _load(config_path)
        unknown = [n for n in names if config.target(n) is None]
        if unknown:
            raise NoSuchTarget(f"{config.source} has no target {unknown[0]!r}")
        picked = [t for t in config.targets if (t.name in names if names
                                                else t.spec.enabled is not False)]
        skipped = [t.name for t in config.targets if t not in picked and not names]
        sub = type(config)(targets=tuple(picked), options=config.options, source=config.source)
        opts = config.options
        resolved = resolve_targets(sub, _resolver(
            arp_timeout or opts.arp_timeout, arp_retries or opts.arp_retries))
        for name, spec in resolved.items():
            if isinstance(spec, NetconsoleError):
                raise type(spec)(f"{name}: {spec}", hint=spec.hint)
        full = with_resolved(sub, {k: v for k, v in resolved.items()
                                   if not isinstance(v, NetconsoleError)})
        for t in full.targets:
            if t.spec.userdata:
                info(f"{t.name}: userdata cannot be given at boot; apply adds it later if the "
                     "configuration names this target as the kernel will (cmdline<N>)")
            out.append(bootparam.from_spec(t.name, t.spec))
            chosen.append(t.name)
    else:
        from netconsolectl.declarative.apply import read_live
        from netconsolectl.sender.target import require_netconsole

        require_netconsole(st.fs)
        live = read_live(st.system)
        unknown = [n for n in names if n not in live]
        if unknown:
            raise NoSuchTarget(f"no netconsole target named {unknown[0]!r}",
                               hint="see `netconsolectl list`")
        states = [live[n] for n in names] if names else [s for s in live.values() if s.enabled]
        skipped = [] if names else [s.name for s in live.values() if not s.enabled]
        for s in states:
            if s.userdata:
                info(f"{s.name}: userdata cannot be given at boot; it is left out")
            out.append(bootparam.from_state(s))
            chosen.append(s.name)
    if skipped:
        info("left out (disabled): " + ", ".join(skipped))
    if not out:
        raise InvalidInput("no enabled target to put in netconsole=",
                           hint="name the targets to include, or enable one")
    return chosen, out


@command("cmdline")
def cmdline_cmd(
    ctx: typer.Context,
    names: Annotated[list[str] | None, typer.Argument(
        metavar="[NAME]...", help="Targets to include [every enabled one].",
        autocompletion=complete.target_names, show_default=False,
    )] = None,
    parse: Annotated[str | None, typer.Option(
        "--parse", metavar="STRING",
        help="Check a netconsole= value the way the kernel parses it and explain each field.",
    )] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", metavar="FILE", help="Use the targets of a configuration file instead of "
        "the live ones.", autocompletion=complete.config_files,
    )] = None,
    module: Annotated[bool, typer.Option(
        "--module", help="Print the modprobe.d line (options netconsole netconsole=...) for a "
        "modular netconsole instead of the kernel parameter.",
    )] = False,
    value_only: Annotated[bool, typer.Option("--value", help="Print the value only.")] = False,
    json_: Json = False,
) -> None:
    """Print the netconsole= boot parameter for live or configured targets.

    Several targets are joined with ';' in the order given; at boot the kernel names them
    cmdline0, cmdline1, ... in that order. The value is checked against the kernel's 255-byte
    limit. With --parse, check a value instead (exit 2 when the kernel would refuse part of
    it).
    """
    if parse is not None:
        if names or config is not None:
            raise InvalidInput("--parse takes no target names and no --config")
        code = _explain(parse, json_)
        if code:
            raise typer.Exit(code)
        return
    from netconsolectl.bootparam import format_param

    st = state(ctx)
    chosen, targets = boot_targets(st, names or [], config)
    value = format_param(targets)
    if json_:
        _out(json.dumps({"value": value, "bytes": len(value.encode()),
                         "targets": {f"cmdline{i}": n for i, n in enumerate(chosen)}},
                        indent=2))
        return
    if value_only:
        _out(value)
    elif module:
        _out(f"options netconsole netconsole={value}")
    else:
        _out(f"netconsole={value}")
    info("at boot these become " + ", ".join(
        f"cmdline{i} ({n})" for i, n in enumerate(chosen)))


# -- loglevel ---------------------------------------------------------------------------------


@command("loglevel")
def loglevel_cmd(
    ctx: typer.Context,
    level: Annotated[int | None, typer.Argument(
        metavar="[N]", min=1, max=8, show_default=False,
        help="New console loglevel, 1-8: messages of a level below N reach netconsole.",
    )] = None,
    json_: Json = False,
) -> None:
    """Show the console loglevel, or set it (as `dmesg -n N` does; not kept across reboots).

    netconsole is a console: a message reaches it only when its level is below the console
    loglevel. Keep it across reboots with console_loglevel in the configuration file (applied
    by the service) or the loglevel= kernel parameter.
    """
    from netconsolectl.host import loglevel as ll

    st = state(ctx)
    before = st.system.console_loglevel()
    if level is not None:
        ll.set_console_loglevel(st.system, level)
    current = st.system.console_loglevel()
    if current is None:
        from netconsolectl.errors import Unavailable

        raise Unavailable(f"cannot read the console loglevel from {st.system.printk_path}")
    ignore = ll.ignore_loglevel(st.system)
    if json_:
        p = ll.read_printk(st.system)
        _out(json.dumps({
            "console_loglevel": current,
            "default_message_loglevel": p.default_message if p else None,
            "minimum_console_loglevel": p.minimum_console if p else None,
            "default_console_loglevel": p.default_console if p else None,
            "ignore_loglevel": ignore,
            "passing": ll.LEVEL_NAMES[:] if ignore else ll.passing_levels(current),
        }, indent=2))
    else:
        if level is not None and before != level:
            _out(f"console loglevel {before} -> {current}: {ll.describe(current)}")
        else:
            _out(f"console loglevel {current}: {ll.describe(current)}")
        if ignore:
            info("ignore_loglevel is set: every message reaches the consoles regardless")
    msg = None if ignore else st.system.loglevel_warning()
    if msg:
        warn(msg)


# -- persist ----------------------------------------------------------------------------------


class Kind(StrEnum):
    auto = "auto"
    module = "module"
    builtin = "builtin"


def _release(st: State) -> str | None:
    try:
        return (st.system.proc / "sys/kernel/osrelease").read_text().strip() or None
    except OSError:
        return None


def _show_steps(steps: list[Any]) -> None:
    for step in steps:
        _out(f"would {step.describe()}")
        if step.kind == "write":
            for line in step.content.splitlines():
                _out(f"  | {line}")


@command("persist")
def persist_cmd(
    ctx: typer.Context,
    service: Annotated[bool, typer.Option(
        "--service", help="Install and enable the systemd unit that runs `watch` from boot "
        "on (apply the file, then keep it delivering while the network changes).",
    )] = False,
    oneshot: Annotated[bool, typer.Option(
        "--oneshot", help="With --service: install netconsolectl-apply.service, which only "
        "runs `apply` once at boot, instead.",
    )] = False,
    boot_param: Annotated[bool, typer.Option(
        "--boot-param", help="Print the netconsole= boot parameter and where it goes "
        "(the default when neither --service nor --boot-param is given).",
    )] = False,
    write: Annotated[bool, typer.Option(
        "--write", help="With --boot-param: write it (modprobe.d + modules-load.d for a "
        "module, a GRUB drop-in when built in) instead of only printing it.",
    )] = False,
    config: Annotated[Path | None, typer.Option(
        "--config", metavar="FILE", autocompletion=complete.config_files,
        help="Configuration the service applies [/etc/netconsolectl.toml]; with --boot-param, "
        "take the targets from it instead of the live ones.",
    )] = None,
    from_live: Annotated[bool, typer.Option(
        "--from-live", help="With --service: (re)write the configuration file from the live "
        "targets (it is written anyway when it does not exist).",
    )] = False,
    enable: Annotated[bool, typer.Option(
        "--enable/--no-enable", help="With --service: enable the unit.",
    )] = True,
    root: Annotated[Path, typer.Option(
        "--root", metavar="DIR", help="Write into this root directory (an image) instead of /.",
    )] = Path("/"),
    kind: Annotated[Kind, typer.Option(
        "--kind", help="How netconsole is built for the boot parameter [auto: from "
        "/lib/modules of the running kernel].",
    )] = Kind.auto,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print what would be written and run; change nothing.",
    )] = False,
) -> None:
    """Make the configuration survive a reboot: the systemd unit and/or the boot parameter.

    The unit (shipped with netconsolectl) runs `watch` once the network is online (or, with
    --oneshot, `apply` once) and never delays the boot. The boot parameter creates the
    targets when netconsole starts, early enough to replay the boot messages; it is only
    printed unless --write is given.
    """
    from netconsolectl.host import persist as ps

    st = state(ctx)
    if oneshot and not service:
        raise InvalidInput("--oneshot applies to --service")
    if write and not boot_param:
        raise InvalidInput("--write applies to --boot-param (the service is written by --service)")
    if not service and not boot_param:
        boot_param = True
    layout = ps.Layout(root=root)
    steps: list[ps.Step] = []
    todo: list[str] = []
    if service:
        steps += _service_steps(st, layout, config, from_live=from_live, enable=enable,
                                oneshot=oneshot)
    if boot_param:
        more, todo = _boot_param(st, layout, config, kind, write=write)
        steps += more
    if dry_run:
        _show_steps(steps)
        return
    for line in ps.execute(steps):
        info(line)
    if service and oneshot:
        info(f"the service applies {config or DEFAULT_PATH} at every boot; "
             f"`systemctl start {ps.APPLY_UNIT_NAME}` applies it now")
    elif service:
        info(f"the service applies {config or DEFAULT_PATH} at every boot and keeps it "
             f"delivering (watch); `systemctl start {ps.UNIT_NAME}` starts it now")
    for line in todo:
        info(f"next: {line}")


def _service_steps(st: State, layout: Any, config: Path | None, *, from_live: bool,
                   enable: bool, oneshot: bool) -> list[Any]:
    from netconsolectl.declarative.apply import plan_config, read_live, resolve_targets
    from netconsolectl.declarative.config import dumps, export_data
    from netconsolectl.host import persist as ps

    path = config or DEFAULT_PATH
    if not path.is_absolute():
        path = Path.cwd() / path
    on_disk = layout.under(path)
    steps = []
    if from_live or not on_disk.exists():
        from netconsolectl.sender.target import require_netconsole

        require_netconsole(st.fs)
        live = read_live(st.system)
        if not live:
            raise InvalidInput(
                f"nothing to persist: no live targets and no {on_disk}",
                hint="add targets first, or write the configuration file",
            )
        text = dumps(export_data(list(live.values())), header=EXPORT_HEADER)
        steps.append(ps.Step("write", on_disk, text))
    else:
        cfg = _load(on_disk)  # the service must not fail on a file we could have checked
        if st.fs.available():
            ap = plan_config(st.system, cfg, read_live(st.system), resolve_targets(cfg, None))
            differ = [i.name for i in ap.items if i.action != "unchanged" or i.failed]
            if differ:
                warn(f"{on_disk} differs from the live state ({', '.join(differ)}); the service "
                     "will apply the file (--from-live writes the live state into it instead)")
    return steps + ps.service_steps(layout, ps.netconsolectl_command(), str(path),
                                    enable=enable, oneshot=oneshot)


def _boot_param(st: State, layout: Any, config: Path | None, kind: Kind, *, write: bool
                ) -> tuple[list[Any], list[str]]:
    from netconsolectl.bootparam import format_param
    from netconsolectl.host import persist as ps

    names, targets = boot_targets(st, [], config)
    value = format_param(targets)
    found: ps.Kind = ps.netconsole_kind(layout, _release(st)) if kind == Kind.auto else (
        "module" if kind == Kind.module else "builtin")
    if found == "module":
        _out(f"options netconsole netconsole={value}")
        info("netconsole is a module: the line above goes into /etc/modprobe.d/ (or "
             f"netconsole.netconsole={value} on the kernel command line), and the module "
             "must be loaded at boot (/etc/modules-load.d/)")
    else:
        _out(f"netconsole={value}")
        if found == "builtin":
            info("netconsole is built in: add the parameter above to the kernel command line")
        else:
            info("could not tell whether netconsole is built in or a module (--kind); built "
                 "in, the parameter goes on the kernel command line")
    if "netconsole=" in st.system.cmdline():
        warn("this boot already has a netconsole= parameter; the new one would replace it")
    if names != [f"cmdline{i}" for i in range(len(names))]:
        info("at boot the kernel names these targets " + ", ".join(
            f"cmdline{i} (now {n})" for i, n in enumerate(names))
            + "; use those names in the configuration so apply adopts them instead of "
            "adding duplicates")
    if not write:
        info("printed only; --write writes it")
        return [], []
    return ps.boot_param_steps(layout, found, value)


# -- test -------------------------------------------------------------------------------------


@command("test")
def test_cmd(
    ctx: typer.Context,
    names: Annotated[list[str] | None, typer.Argument(
        metavar="[NAME]...", help="Targets that must receive it [every enabled one].",
        autocompletion=complete.target_names, show_default=False,
    )] = None,
    expect_listen: Annotated[str | None, typer.Option(
        "--expect-listen", metavar="DIR|udp:[ADDR:]PORT",
        help="Confirm arrival: the --output-dir of a `netconsolectl listen` readable from "
        "here, or a UDP port on this machine where the packets arrive.",
    )] = None,
    timeout: Annotated[float, typer.Option(
        "--timeout", metavar="S", min=0.1, max=600.0,
        help="Seconds to wait for the message with --expect-listen.",
    )] = 5.0,
    level: Annotated[int | None, typer.Option(
        "--level", metavar="N", min=0, max=7,
        help="Message level 0-7 [the least severe one that passes the console loglevel].",
    )] = None,
) -> None:
    """Write a unique marker line to /dev/kmsg and say which targets it was handed to.

    The kernel sends each message to every enabled target. Without --expect-listen, success
    means the kernel took the message and the targets were up; only the collector can tell
    whether the packets arrived (UDP has no reply), which --expect-listen checks.
    """
    import socket as _socket
    import time

    from netconsolectl.declarative.apply import read_live
    from netconsolectl.errors import KernelRefused
    from netconsolectl.host import kmsgtest
    from netconsolectl.host.loglevel import LEVEL_NAMES
    from netconsolectl.sender.target import require_netconsole

    st = state(ctx)
    require_netconsole(st.fs)
    live = read_live(st.system)
    wanted = names or []
    unknown = [n for n in wanted if n not in live]
    if unknown:
        raise NoSuchTarget(f"no netconsole target named {unknown[0]!r}",
                           hint="see `netconsolectl list`")
    plan = kmsgtest.delivery(st.system, list(live.values()))
    sent = {s.name for s, _ in plan.sent}
    missing = [n for n in wanted if n not in sent]
    if missing:
        reasons = {s.name: r for s, r in plan.skipped}
        raise KernelRefused(f"{missing[0]} would not get the message: {reasons[missing[0]]}",
                            hint=f"`netconsolectl enable {missing[0]}`"
                            if reasons[missing[0]] == "disabled" else None)
    if not plan.sent:
        raise KernelRefused("no enabled target: the message would go nowhere",
                            hint="enable a target, or `netconsolectl apply`")
    lvl = kmsgtest.choose_level(st.system, level)
    watch = kmsgtest.parse_expect(expect_listen) if expect_listen else None
    marker = kmsgtest.new_marker()
    text = (f"netconsolectl test {marker} from {_socket.gethostname()} to "
            + ",".join(s.name for s, _ in plan.sent))
    before = {s.name: s.transmit_errors for s, _ in plan.sent}
    if watch is not None:
        watch.start()
    try:
        started = time.monotonic()
        kmsgtest.write_kmsg(st.system, lvl, text)
        cur = st.system.console_loglevel()
        _out(f"wrote {marker} to {st.system.dev_kmsg} at level {lvl} ({LEVEL_NAMES[lvl]})"
             + (f", which passes the console loglevel {cur}" if cur is not None else ""))
        for s, how in plan.sent:
            _out(f"sent to {s.name}: {how}")
        for s, reason in plan.skipped:
            _out(f"not sent to {s.name}: {reason}")
        seen = watch.wait(marker, timeout) if watch is not None else None
    finally:
        if watch is not None:
            watch.close()
    after = read_live(st.system)
    grew = [(n, (after[n].transmit_errors or 0) - (b or 0)) for n, b in before.items()
            if n in after and b is not None and (after[n].transmit_errors or 0) > b]
    for n, d in grew:
        warn(f"{n}: transmit_errors grew by {d}: the driver dropped the packet")
    if watch is None:
        info("netconsole does not confirm delivery; check the collector for "
             f"{marker!r}, or pass --expect-listen")
        if grew:
            raise typer.Exit(1)
        return
    if seen is None:
        raise KernelRefused(
            f"{marker} did not arrive at {expect_listen} within {timeout:g} s",
            hint="check remote_mac (the next hop's), the collector's port and firewall, "
            "and `netconsolectl doctor`",
        )
    _out(f"arrived: {seen} after {time.monotonic() - started:.2f} s")


# -- doctor -----------------------------------------------------------------------------------


@command("doctor")
def doctor_cmd(ctx: typer.Context, json_: Json = False) -> None:
    """Check everything netconsole needs, one line per check with its verdict and fix.

    Host: root, configfs, the module, dynamic configuration, the console loglevel. Each
    target: enabled, release without extended, device exists/up/not a bond or bridge port/
    Ethernet, source address still on the device, route to the collector through the device,
    next-hop MAC still current. Exit status 0 when every check is ok or info, 1 when any
    warns or fails.
    """
    from netconsolectl.declarative.apply import read_live
    from netconsolectl.host import doctor

    st = state(ctx)
    states = list(read_live(st.system).values()) if st.fs.available() else None
    checks = doctor.run(st.system, states)
    code = doctor.exit_code(checks)
    if json_:
        _out(json.dumps({"ok": code == 0, "checks": [c.to_json() for c in checks]}, indent=2))
    else:
        for c in checks:
            _out(c.line())
        bad = sum(c.verdict in ("warn", "fail") for c in checks)
        info("no problems found" if not bad else f"{bad} problem(s) found")
    if code:
        raise typer.Exit(code)

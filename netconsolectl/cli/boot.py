"""CLI cmdline and persist: the configuration at boot (the netconsole= parameter, the service)."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from netconsolectl.cli import complete
from netconsolectl.cli.base import Invocation, Json, command, err, info, out, state, warn
from netconsolectl.cli.resolve import resolver
from netconsolectl.declarative.config import DEFAULT_PATH
from netconsolectl.errors import InvalidInput

if TYPE_CHECKING:
    from netconsolectl.declarative.boot import BootSelection, PersistPlan
    from netconsolectl.sender.bootparam import ParamReport
    from netconsolectl.sender.kernel import Kernel

ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", metavar="FILE", autocompletion=complete.config_files,
    help="Use the targets of a configuration file instead of the live ones.",
)]


KernelOpt = Annotated[str | None, typer.Option(
    "--kernel", metavar="VERSION",
    help="Follow the boot-parameter rules of this kernel release (e.g. 6.1) instead of the "
    "running one's.",
)]


def kernel_rules(st: Invocation, version: str | None) -> Kernel:
    """The kernel whose boot-parameter rules apply: ``--kernel`` or the running one."""
    from netconsolectl.sender.kernel import detect, for_release, parse_version

    if version is not None:
        if parse_version(version) is None:
            raise InvalidInput(f"invalid --kernel {version!r}: expected a release like 6.1 or "
                               "6.12.117")
        return for_release(version)
    return detect(st.fs)


def _selection(st: Invocation, names: list[str], config: Path | None,
               kernel: Kernel | None = None) -> BootSelection:
    from netconsolectl.declarative.boot import boot_targets
    from netconsolectl.declarative.config import load

    cfg = None if config is None else load(config)
    opts = None if cfg is None else cfg.options
    sel = boot_targets(st.system, names, cfg,
                       None if opts is None else resolver(opts.arp_timeout, opts.arp_retries,
                                                          st.system),
                       kernel)
    for note in sel.notes:
        info(note)
    return sel


def _explain(value: str, as_json: bool, kernel: Kernel) -> int:
    from netconsolectl.sender.bootparam import parse_param, strip_param

    report = parse_param(strip_param(value), kernel=kernel)
    if as_json:
        out(json.dumps(_report_json(report, kernel), indent=2))
    else:
        _print_report(report)
    _report_errors(report, kernel)
    return 0 if report.ok else 2


def _report_json(report: ParamReport, kernel: Kernel) -> dict[str, object]:
    return {
        "value": report.value,
        "kernel": kernel.release,
        "bytes": report.size,
        "too_long": report.too_long,
        "aborted": report.aborted,
        "targets": [
            {
                "text": e.text,
                "name": e.name,
                "error": e.error,
                "warnings": e.warnings,
                "fields": {f.name: f.text for f in e.fields},
                "target": None if e.target is None else e.target.to_json(),
            }
            for e in report.entries
        ],
    }


def _print_report(report: ParamReport) -> None:
    for n, e in enumerate(report.entries, 1):
        out(f"target {n} ({e.name or 'not created'}): {e.text!r}")
        for f in e.fields:
            shown = repr(f.text) if f.text else "(empty)"
            out(f"  {f.name:<12} {shown:<24} {f.meaning}")
        for w in e.warnings:
            out(f"  warning: {w}")
        if e.error:
            what = ("fails the whole parameter" if report.all_or_nothing
                    else "skips this target")
            out(f"  error: the kernel logs \"{e.error}\" and {what}")
    if not report.entries:
        out("empty value: no targets")


def _report_errors(report: ParamReport, kernel: Kernel) -> None:
    from netconsolectl.sender.bootparam import MAX_VALUE_BYTES

    if report.too_long:
        err(f"netconsolectl: error: the value is {report.size} bytes; the kernel keeps at most "
            f"{MAX_VALUE_BYTES}: built in it is cut (the targets above are what is left), as "
            "a module parameter it is refused and no target is created")
    bad = [e for e in report.entries if e.error]
    if report.aborted:
        err(f"netconsolectl: error: on {kernel.release} one target that fails to parse makes "
            "netconsole give up (the module does not load; 6.10+ skip that target): no target "
            "would be created")
    elif bad:
        err(f"netconsolectl: error: {len(bad)} of {len(report.entries)} target(s) would not be "
            "created")


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
    config: ConfigOpt = None,
    module: Annotated[bool, typer.Option(
        "--module", help="Print the modprobe.d line (options netconsole netconsole=...) for a "
        "modular netconsole instead of the kernel parameter.",
    )] = False,
    value_only: Annotated[bool, typer.Option("--value", help="Print the value only.")] = False,
    kernel: KernelOpt = None,
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
        code = _explain(parse, json_, kernel_rules(state(ctx), kernel))
        if code:
            raise typer.Exit(code)
        return
    st = state(ctx)
    sel = _selection(st, names or [], config, kernel_rules(st, kernel))
    value = sel.value
    if json_:
        out(json.dumps({"value": value, "bytes": len(value.encode()),
                        "targets": {f"cmdline{i}": n for i, n in enumerate(sel.names)}},
                       indent=2))
        return
    if value_only:
        out(value)
    elif module:
        out(f"options netconsole netconsole={value}")
    else:
        out(f"netconsole={value}")
    info("at boot these become " + ", ".join(
        f"cmdline{i} ({n})" for i, n in enumerate(sel.names)))


class PersistKind(StrEnum):
    auto = "auto"
    module = "module"
    builtin = "builtin"


@command("persist")
def persist_cmd(
    ctx: typer.Context,
    names: Annotated[list[str] | None, typer.Argument(
        metavar="[NAME]...", help="With --boot-param: the targets to put in the parameter, in "
        "this order [every enabled one] (the kernel keeps 255 bytes).",
        autocompletion=complete.target_names, show_default=False,
    )] = None,
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
    kind: Annotated[PersistKind, typer.Option(
        "--kind", help="How netconsole is built for the boot parameter [auto: from "
        "/lib/modules of the running kernel].",
    )] = PersistKind.auto,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print what would be written and run; change nothing.",
    )] = False,
    json_: Json = False,
) -> None:
    """Make the configuration survive a reboot: the systemd unit and/or the boot parameter.

    The unit (shipped with netconsolectl) runs `watch` once the network is online (or, with
    --oneshot, `apply` once) and never delays the boot. The boot parameter creates the
    targets when netconsole starts, early enough to replay the boot messages; it is only
    printed unless --write is given.
    """
    from netconsolectl.declarative.boot import PersistPlan, plan_boot_param, plan_service
    from netconsolectl.host import persist as ps

    st = state(ctx)
    boot_param = _persist_what(names, service=service, oneshot=oneshot, boot_param=boot_param,
                               write=write)
    layout = ps.Layout(root=root)
    plan = PersistPlan()
    if service:
        plan_service(st.system, layout, config, from_live=from_live, enable=enable,
                     oneshot=oneshot, plan=plan)
    if boot_param:
        plan_boot_param(st.system, layout, _selection(st, names or [], config), kind.value,
                        write=write, plan=plan)
    if not json_:
        for line in plan.output:
            out(line)
    for level, text in plan.messages:
        (warn if level == "warn" else info)(text)
    if json_:
        _persist_json(plan, dry_run)
    elif dry_run:
        _persist_dry_run(plan)
    else:
        _persist_carry_out(plan, service=service, oneshot=oneshot, config=config)


def _persist_what(names: list[str] | None, *, service: bool, oneshot: bool, boot_param: bool,
                  write: bool) -> bool:
    """Refuse options that do not go together; whether the boot parameter is planned."""
    if oneshot and not service:
        raise InvalidInput("--oneshot applies to --service")
    if write and not boot_param:
        raise InvalidInput("--write applies to --boot-param (the service is written by --service)")
    if names and service and not boot_param:
        raise InvalidInput("target names select what goes into --boot-param; the service "
                           "applies the whole configuration file")
    return boot_param or not service


def _persist_json(plan: PersistPlan, dry_run: bool) -> None:
    from netconsolectl.host import persist as ps

    done = [] if dry_run else list(ps.execute(plan.steps))
    out(json.dumps({
        "action": "persist",
        "dry_run": dry_run,
        "changed": bool(plan.steps) and not dry_run,
        "output": plan.output,
        "steps": [step.describe() for step in plan.steps],
        "done": done,
        "next": plan.todo,
    }, indent=2))


def _persist_dry_run(plan: PersistPlan) -> None:
    for step in plan.steps:
        out(f"would {step.describe()}")
        if step.kind == "write":
            for line in step.content.splitlines():
                out(f"  | {line}")


def _persist_carry_out(plan: PersistPlan, *, service: bool, oneshot: bool,
                       config: Path | None) -> None:
    from netconsolectl.host import persist as ps

    for line in ps.execute(plan.steps):
        info(line)
    if service and oneshot:
        info(f"the service applies {config or DEFAULT_PATH} at every boot; "
             f"`systemctl start {ps.APPLY_UNIT_NAME}` applies it now")
    elif service:
        info(f"the service applies {config or DEFAULT_PATH} at every boot and keeps it "
             f"delivering (watch); `systemctl start {ps.UNIT_NAME}` starts it now")
    for line in plan.todo:
        info(f"next: {line}")

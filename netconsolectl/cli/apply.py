"""CLI apply and export: the configuration file against the live targets."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from netconsolectl.cli import complete
from netconsolectl.cli.base import Invocation, Json, command, info, out, state, warn
from netconsolectl.cli.output import report
from netconsolectl.cli.resolve import ConfigArpRetriesOpt, ConfigArpTimeoutOpt, resolver
from netconsolectl.declarative.config import DEFAULT_PATH
from netconsolectl.errors import NetconsoleError

if TYPE_CHECKING:
    from netconsolectl.declarative.apply import ApplyPlan


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

PAST = {"create": "created", "change": "changed", "remove": "removed", "unchanged": "unchanged"}


def _print_plan(st: Invocation, ap: ApplyPlan, *, dry_run: bool) -> None:
    fs = st.fs
    for item in ap.items:
        if item.failed:
            continue
        verb = item.action if dry_run else PAST[item.action]
        detail = ""
        if item.action in ("create", "change") and item.changes:
            detail = ": " + ", ".join(item.changes)
        elif item.reason:
            detail = f" ({item.reason})"
        out(f"{verb} {item.name}{detail}")
        if dry_run and item.plan is not None:
            for note in item.plan.notes:
                out(f"  # {note}")
            for line in item.plan.describe(fs):
                out(f"  {line}")
        elif item.plan is not None:
            for note in item.plan.notes:
                info(f"{item.name}: {note}")
    if ap.loglevel is not None and ap.loglevel.error is None:
        cur = "unknown" if ap.loglevel.current is None else str(ap.loglevel.current)
        out(f"{'change' if dry_run else 'changed'} console loglevel {cur} -> "
            f"{ap.loglevel.wanted}")
        if dry_run:
            out(f"  echo {ap.loglevel.wanted} > {st.system.printk_path}")
    for note in ap.notes:
        info(note)
    for warning in ap.warnings:
        warn(warning)


def _json_plan(st: Invocation, ap: ApplyPlan, file: Path, *, dry_run: bool) -> None:
    """``apply --json``: one object, the plan with ``--dry-run``, what was done without."""
    import json

    targets = []
    for item in ap.items:
        entry = item.to_json()
        entry["operations"] = item.plan.describe(st.fs) if item.plan is not None else []
        entry["notes"] = item.plan.notes if item.plan is not None else []
        targets.append(entry)
    level = None
    if ap.loglevel is not None:
        level = {"current": ap.loglevel.current, "wanted": ap.loglevel.wanted,
                 "error": str(ap.loglevel.error) if ap.loglevel.error else None}
    out(json.dumps({
        "action": "apply",
        "file": str(file),
        "dry_run": dry_run,
        "changed": ap.changes and not dry_run,
        "would_change": ap.changes if dry_run else None,
        "targets": targets,
        "console_loglevel": level,
        "notes": ap.notes,
        "warnings": ap.warnings,
    }, indent=2))


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
    arp_timeout: ConfigArpTimeoutOpt = None,
    arp_retries: ConfigArpRetriesOpt = None,
    json_: Json = False,
    userdata_hostname: Annotated[bool, typer.Option(
        "--userdata-hostname",
        help="Give every target of FILE the userdata hostname=<this machine's name> (listen "
        "shows it as the sender's name), in addition to its userdata table.",
    )] = False,
) -> None:
    """Make the live targets equal FILE: create, change what differs, leave the rest alone.

    The whole file is validated before anything is written. Discovery fills dev_name,
    local_ip and remote_mac where the file leaves them out, at every run. A target that fails
    is reported and the others are still applied. Running apply twice changes nothing the
    second time.
    """
    st = state(ctx)
    try:
        ap = _apply(st, file, prune=prune, dry_run=dry_run, arp_timeout=arp_timeout,
                    arp_retries=arp_retries, userdata_hostname=userdata_hostname)
    except NetconsoleError as e:
        if not detailed_exitcode:
            raise
        report(e)  # --detailed-exitcode: every failure is 1, an invalid file included
        raise typer.Exit(1) from None
    if ap.changes and not dry_run:
        from netconsolectl.cli.output import changed

        changed()
    if json_:
        _json_plan(st, ap, file, dry_run=dry_run)
    else:
        _print_plan(st, ap, dry_run=dry_run)
    _report_outcome(st, ap, file, dry_run=dry_run)
    failures = ap.failures
    if failures:
        codes = {e.exit_code for e in failures}
        raise typer.Exit(1 if detailed_exitcode or len(codes) > 1 else codes.pop())
    if detailed_exitcode and ap.changes:
        raise typer.Exit(2)


def _apply(st: Invocation, file: Path, *, prune: bool, dry_run: bool,
           arp_timeout: float | None, arp_retries: int | None,
           userdata_hostname: bool) -> ApplyPlan:
    """Load, prepare and apply FILE (the command line's values over the file's options)."""
    from netconsolectl.declarative.apply import apply_config, prepare
    from netconsolectl.declarative.config import load

    config = load(file)
    if userdata_hostname:
        from netconsolectl.declarative.naming import name_targets

        config = name_targets(config)
    for line in prepare(st.system, dry_run=dry_run):
        info(line)
    opts = config.options
    return apply_config(
        st.system, config, prune=prune, dry_run=dry_run,
        resolver=resolver(opts.arp_timeout if arp_timeout is None else arp_timeout,
                          opts.arp_retries if arp_retries is None else arp_retries,
                          st.system))


def _report_outcome(st: Invocation, ap: ApplyPlan, file: Path, *, dry_run: bool) -> None:
    """Each target's error, the loglevel's, the summary and the loglevel warning."""
    for item in ap.items:
        if item.error is not None:
            report(item.error, f"{item.name}: ")
    if ap.loglevel is not None and ap.loglevel.error is not None:
        report(ap.loglevel.error, "console loglevel: ")
    info(ap.summary(file, dry_run=dry_run))
    if not dry_run and ap.enabled_targets(st.system):
        msg = st.system.loglevel_warning()
        if msg:
            warn(msg)


@command("export")
def export_cmd(
    ctx: typer.Context,
    format_: Annotated[Format | None, typer.Option(
        "--format", help="Output format [toml; json when the -o file ends in .json].",
        show_default=False)] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="FILE", help="Write the file (whole or not at all, mode "
        "0644) instead of printing it; apply, as root, accepts it as it is.",
    )] = None,
    pin: Annotated[bool, typer.Option(
        "--pin", help="Write every value, also dev_name, local_ip and remote_mac where "
        "discovery finds the same today (by default those are left out, so apply discovers "
        "them again after the network changed).",
    )] = False,
) -> None:
    """Print the live targets as a configuration file that `apply` accepts.

    Values that discovery finds the same today (the route's interface and source, the next
    hop's MAC as the neighbour table has it) are left out, so the file survives a replaced
    gateway or a renumbered network; --pin writes them all. Nothing is probed.
    """
    from netconsolectl.declarative.config import EXPORT_HEADER, dumps
    from netconsolectl.declarative.export import UNKNOWN_SYSDATA, export_live, unknown_sysdata_note
    from netconsolectl.sender.setup import read_live
    from netconsolectl.sender.target import require_netconsole

    st = state(ctx)
    require_netconsole(st.fs)
    live = read_live(st.system)
    fmt = format_.value if format_ is not None else (
        "json" if output is not None and output.suffix == ".json" else "toml")
    data, left_out = export_live(st.system, list(live.values()), pin=pin)
    text = dumps(data, fmt, header=EXPORT_HEADER)
    for name, keys in left_out.items():
        if UNKNOWN_SYSDATA in keys:
            info(unknown_sysdata_note(live[name]))
            keys = keys - {UNKNOWN_SYSDATA}
        if keys:
            info(f"{name}: left out {', '.join(sorted(keys))}: discovery finds the same "
                 "today, apply discovers them again (--pin writes them)")
    if not live:
        info("no netconsole targets: the exported configuration is empty")
    if output is None:
        sys.stdout.write(text)
        return
    from netconsolectl.declarative.config import write_file

    write_file(output, text)
    info(f"wrote {output} ({len(live)} target(s)); `netconsolectl apply {output}` applies it")

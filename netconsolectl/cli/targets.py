"""CLI core target commands: setup, add, set, enable, disable, list, show, remove."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Annotated

import typer

from netconsolectl.cli import complete
from netconsolectl.cli.base import Json, command, info, out, state, warn
from netconsolectl.cli.resolve import (
    ArpRetriesOpt,
    ArpTimeoutOpt,
    BroadcastOpt,
    IPv4Opt,
    IPv6Opt,
    collector_address,
    fill,
)
from netconsolectl.discover.model import DEFAULT_ARP_RETRIES, DEFAULT_ARP_TIMEOUT
from netconsolectl.sender import attrs
from netconsolectl.sender.spec import spec_from_options, validate_target_name

if TYPE_CHECKING:
    from netconsolectl.cli.base import Invocation
    from netconsolectl.host.system import System
    from netconsolectl.sender.spec import TargetSpec
    from netconsolectl.sender.target import TargetState
    from netconsolectl.sender.verbs import Change, Discover


# -- shared options -------------------------------------------------------------------------

NameArg = Annotated[
    str,
    typer.Argument(
        help="Target name (a directory under netconsole/).", autocompletion=complete.target_names
    ),
]
NewNameArg = Annotated[str, typer.Argument(help="Name of the new target.")]
RemoteIP = Annotated[
    str | None,
    typer.Option(
        "--remote-ip", help="Collector address or host name (the address is stored).",
        autocompletion=complete.remote_ip_value
    ),
]
RemotePort = Annotated[
    int | None,
    typer.Option(
        "--remote-port",
        help="Collector UDP port [add: 6666].",
        autocompletion=complete.remote_port_value,
    ),
]
LocalIP = Annotated[
    str | None,
    typer.Option(
        "--local-ip",
        help="Source address [discovered from the route].",
        autocompletion=complete.local_ip_value,
    ),
]
LocalPort = Annotated[
    int | None,
    typer.Option(
        "--local-port",
        help="Source UDP port [add: 6665].",
        autocompletion=complete.local_port_value,
    ),
]
Dev = Annotated[
    str | None,
    typer.Option(
        "--dev",
        help="Egress interface [discovered from the route].",
        autocompletion=complete.interface_names,
    ),
]
RemoteMac = Annotated[
    str | None,
    typer.Option(
        "--remote-mac",
        help="Next-hop MAC aa:bb:cc:dd:ee:ff [discovered by ARP/NDP].",
        autocompletion=complete.remote_mac_value,
    ),
]
ExtendedFlag = Annotated[
    bool | None,
    typer.Option("--extended/--no-extended", help="Extended format (level, sequence, userdata)."),
]
Release = Annotated[
    bool | None,
    typer.Option("--release/--no-release", help="Prepend the kernel release (implies --extended)."),
]
Userdata = Annotated[
    list[str] | None,
    typer.Option(
        "--userdata",
        metavar="KEY=VALUE",
        help="Userdata line appended to each message (repeatable; set: KEY= removes KEY).",
        autocompletion=complete.userdata_items,
    ),
]
UserdataHostname = Annotated[
    bool,
    typer.Option(
        "--userdata-hostname",
        help="Add userdata hostname=<this machine's name>, which listen shows as the sender's "
        "name.",
    ),
]
SysdataNames = Annotated[
    str | None,
    typer.Option(
        "--sysdata",
        metavar="NAMES",
        help=f"Kernel-added fields: comma-separated {','.join(attrs.SYSDATA_NAMES)} or none "
        f"({attrs.sysdata_versions()}; set: the complete set).",
    ),
]
Disabled = Annotated[bool, typer.Option("--disabled", help="Leave the target disabled.")]
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Print the configfs operations; change nothing.")
]


def _print_change(st: Invocation, change: Change, *, json_: bool) -> None:
    """What a verb did: the operations with --dry-run (text), the --json report, notices."""
    plan = change.plan
    for notice in change.notices:
        info(notice)
    for warning in change.warnings:
        warn(warning)
    if change.dry_run and plan is not None and not json_:
        for line in plan.describe(st.fs):
            typer.echo(line)
    if change.changed:
        from netconsolectl.cli.output import changed

        changed()  # from here on, a failing report must not say nothing happened
    if json_:
        _report_json(st, change)


def _report_json(st: Invocation, change: Change) -> None:
    """``--json`` of a changing command: what was (or, with --dry-run, would be) done.

    ``{"action", "name", "changed", "dry_run", "changes", "operations", "notes", "target"}``:
    ``changes`` in words, ``operations`` the configfs operations as shell commands, ``target``
    the target as ``show --json`` prints it afterwards (null when it does not exist).
    """
    import json

    from netconsolectl.sender.target import Target

    t = Target(st.fs, change.name)
    after = t.state().to_json() if st.fs.available() and t.exists() else None
    plan = change.plan
    out(json.dumps({
        "action": change.action,
        "name": change.name,
        "changed": change.changed,
        "dry_run": change.dry_run,
        "changes": change.summary,
        "operations": plan.describe(st.fs) if plan is not None else [],
        "notes": list(plan.notes) if plan is not None else [],
        "target": after,
    }, indent=2))


def _loglevel_check(st: Invocation) -> None:
    msg = st.system.loglevel_warning()
    if msg:
        warn(msg)


def _live(st: Invocation, name: str) -> TargetState:
    from netconsolectl.sender.target import Target, require_netconsole

    require_netconsole(st.fs)
    return Target(st.fs, validate_target_name(name)).state()


# -- commands -------------------------------------------------------------------------------


@command("setup")
def setup_cmd(ctx: typer.Context, json_: Json = False) -> None:
    """Load the configfs and netconsole modules and mount configfs if needed (idempotent)."""
    from netconsolectl.sender.setup import setup

    st = state(ctx)
    with st.system.lock():
        done = setup(st.system)
    if json_:
        import json

        out(json.dumps({"action": "setup", "changed": bool(done), "done": done}, indent=2))
        return
    for line in done:
        info(line)
    if not done:
        info(f"netconsole is ready at {st.fs.base}; nothing to do")


def _discover(arp_timeout: float, arp_retries: int, system: System) -> Discover:
    """Discovery for a verb, saying what it found (cli.resolve.fill)."""

    def discover(spec: TargetSpec, broadcast: bool) -> TargetSpec:
        return fill(spec, arp_timeout=arp_timeout, arp_retries=arp_retries, broadcast=broadcast,
                    system=system)

    return discover


@command("add")
def add_cmd(
    ctx: typer.Context,
    name: NewNameArg,
    remote_ip: Annotated[str, typer.Option(
        "--remote-ip", help="Collector address or host name (the address is stored).")],
    remote_port: RemotePort = None,
    local_ip: LocalIP = None,
    local_port: LocalPort = None,
    dev: Dev = None,
    remote_mac: RemoteMac = None,
    extended: ExtendedFlag = None,
    release: Release = None,
    userdata: Userdata = None,
    userdata_hostname: UserdataHostname = False,
    sysdata: SysdataNames = None,
    disabled: Disabled = False,
    dry_run: DryRun = False,
    arp_timeout: ArpTimeoutOpt = DEFAULT_ARP_TIMEOUT,
    arp_retries: ArpRetriesOpt = DEFAULT_ARP_RETRIES,
    broadcast: BroadcastOpt = False,
    json_: Json = False,
    ipv4: IPv4Opt = False,
    ipv6: IPv6Opt = False,
) -> None:
    """Create a target and enable it (unless --disabled)."""
    from netconsolectl.sender import verbs

    st = state(ctx)
    validate_target_name(name)
    spec = spec_from_options(
        remote_ip=collector_address(remote_ip, ipv4, ipv6), remote_port=remote_port,
        local_ip=local_ip, local_port=local_port,
        dev=dev, remote_mac=remote_mac, extended=extended, release=release, userdata=userdata,
        enabled=not disabled, sysdata=sysdata,
    )
    if userdata_hostname:
        from netconsolectl.sender.naming import with_hostname

        spec = replace(spec, userdata=with_hostname(spec.userdata)).check()
    change = verbs.add(st.system, name, spec, dry_run=dry_run, broadcast=broadcast,
                       discover=_discover(arp_timeout, arp_retries, st.system), say=info)
    _print_change(st, change, json_=json_)
    if not dry_run:
        s = _live(st, name)
        info(f"added {name}: {verbs.describe_added(s)}")
        if s.enabled:
            _loglevel_check(st)


@command("set")
def set_cmd(
    ctx: typer.Context,
    name: NameArg,
    remote_ip: RemoteIP = None,
    remote_port: RemotePort = None,
    local_ip: LocalIP = None,
    local_port: LocalPort = None,
    dev: Dev = None,
    remote_mac: RemoteMac = None,
    extended: ExtendedFlag = None,
    release: Release = None,
    userdata: Userdata = None,
    sysdata: SysdataNames = None,
    disabled: Disabled = False,
    dry_run: DryRun = False,
    arp_timeout: ArpTimeoutOpt = DEFAULT_ARP_TIMEOUT,
    arp_retries: ArpRetriesOpt = DEFAULT_ARP_RETRIES,
    broadcast: BroadcastOpt = False,
    json_: Json = False,
    ipv4: IPv4Opt = False,
    ipv6: IPv6Opt = False,
) -> None:
    """Change an existing target, even an enabled one (disable, write what differs, enable).

    Says what changed (remote_ip 192.0.2.50 -> 192.0.2.1), as apply does.
    """
    from netconsolectl.sender import verbs

    st = state(ctx)
    spec = spec_from_options(
        remote_ip=None if remote_ip is None else collector_address(remote_ip, ipv4, ipv6),
        remote_port=remote_port, local_ip=local_ip, local_port=local_port,
        dev=dev, remote_mac=remote_mac, extended=extended, release=release, userdata=userdata,
        enabled=False if disabled else None, sysdata=sysdata,
    )
    change = verbs.set_target(st.system, name, spec, dry_run=dry_run, broadcast=broadcast,
                              discover=_discover(arp_timeout, arp_retries, st.system), say=info)
    _print_change(st, change, json_=json_)
    what = ", ".join(change.summary)
    if not change.would_change:
        info(f"{name} already has these values; nothing to do")
    elif dry_run:
        info(f"would update {name}: {what}")
    else:
        enabled = _live(st, name).enabled
        info(f"updated {name}: {what} ({'enabled' if enabled else 'disabled'})")
        if enabled:
            _loglevel_check(st)


def _toggle(ctx: typer.Context, name: str, enabled: bool, dry_run: bool, json_: bool) -> None:
    from netconsolectl.sender import verbs

    st = state(ctx)
    change = verbs.toggle(st.system, name, enabled, dry_run=dry_run, say=info)
    _print_change(st, change, json_=json_)
    if not change.would_change:
        if change.waiting is None:
            info(f"{name} is already {'enabled' if enabled else 'disabled'}")
    elif not dry_run:
        info(f"{name} {'enabled' if enabled else 'disabled'}")
        if enabled:
            _loglevel_check(st)


@command("enable")
def enable_cmd(ctx: typer.Context, name: NameArg, dry_run: DryRun = False, json_: Json = False
               ) -> None:
    """Start sending to a target (success if it already is)."""
    _toggle(ctx, name, True, dry_run, json_)


@command("disable")
def disable_cmd(ctx: typer.Context, name: NameArg, dry_run: DryRun = False, json_: Json = False
                ) -> None:
    """Stop sending to a target (success if it already is)."""
    _toggle(ctx, name, False, dry_run, json_)


@command("remove")
def remove_cmd(
    ctx: typer.Context,
    name: NameArg,
    missing_ok: Annotated[
        bool, typer.Option("--missing-ok", help="Succeed when the target does not exist.")
    ] = False,
    dry_run: DryRun = False,
    json_: Json = False,
) -> None:
    """Remove a target (its userdata entries first)."""
    from netconsolectl.sender import verbs

    st = state(ctx)
    change = verbs.remove(st.system, name, dry_run=dry_run, missing_ok=missing_ok, say=info)
    _print_change(st, change, json_=json_)
    if change.plan is None:
        info(f"{name} does not exist; nothing to do")
    elif not dry_run:
        info(f"removed {name}")


@command("list")
def list_cmd(ctx: typer.Context, json_: Json = False) -> None:
    """List all targets, including boot-time cmdlineN ones (no root needed)."""
    from netconsolectl.cli.readonly import do_list

    do_list(state(ctx).system, json_)


@command("show")
def show_cmd(ctx: typer.Context, name: NameArg, json_: Json = False) -> None:
    """Every attribute of one target: userdata, local_mac, transmit_errors (no root needed)."""
    from netconsolectl.cli.readonly import do_show

    do_show(state(ctx).system, name, json_)

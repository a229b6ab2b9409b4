"""CLI core target commands: setup, add, set, enable, disable, list, show, remove."""

from __future__ import annotations

import errno
import os
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
from netconsolectl.endpoint import endpoint
from netconsolectl.errors import InvalidInput, PermissionDenied, TargetExists
from netconsolectl.facts import is_set
from netconsolectl.sender import attrs
from netconsolectl.sender.spec import (
    TargetSpec,
    parse_ip,
    spec_from_options,
    validate_target_name,
)

if TYPE_CHECKING:
    from netconsolectl.cli.base import State
    from netconsolectl.sender.plan import Plan
    from netconsolectl.sender.target import TargetState


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
Extended = Annotated[
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
Sysdata = Annotated[
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


def _run_plan(st: State, plan: Plan, *, dry_run: bool, quiet: bool = False) -> None:
    """Print (unless ``quiet``: --json says it) or apply a plan, read it back."""
    from netconsolectl.sender import plan as planner

    for note in plan.notes:
        info(note)
    if dry_run:
        if not quiet:
            for line in plan.describe(st.fs):
                typer.echo(line)
        if not plan.ops:
            info(f"{plan.name}: nothing to do")
        return
    with st.system.lock():
        planner.apply(st.system, plan)


def _report_json(st: State, action: str, name: str, plan: Plan | None, *, dry_run: bool) -> None:
    """``--json`` of a changing command: what was (or, with --dry-run, would be) done.

    ``{"action", "name", "changed", "dry_run", "changes", "operations", "notes", "target"}``:
    ``changes`` in words, ``operations`` the configfs operations as shell commands, ``target``
    the target as ``show --json`` prints it afterwards (null when it does not exist).
    """
    import json

    from netconsolectl.sender.target import Target

    t = Target(st.fs, name)
    after = t.state().to_json() if st.fs.available() and t.exists() else None
    ops = plan.describe(st.fs) if plan is not None else []
    out(json.dumps({
        "action": action,
        "name": name,
        "changed": bool(plan and plan.ops) and not dry_run,
        "dry_run": dry_run,
        "changes": list(plan.summary) if plan is not None else [],
        "operations": ops,
        "notes": list(plan.notes) if plan is not None else [],
        "target": after,
    }, indent=2))


def _loglevel_check(st: State) -> None:
    msg = st.system.loglevel_warning()
    if msg:
        warn(msg)


def _live(st: State, name: str) -> TargetState:
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
    extended: Extended = None,
    release: Release = None,
    userdata: Userdata = None,
    userdata_hostname: UserdataHostname = False,
    sysdata: Sysdata = None,
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
    from netconsolectl.sender.kernel import detect
    from netconsolectl.sender.plan import check_add, plan_add
    from netconsolectl.sender.setup import setup
    from netconsolectl.sender.target import Target, require_netconsole

    st = state(ctx)
    validate_target_name(name)
    spec = spec_from_options(
        remote_ip=collector_address(remote_ip, ipv4, ipv6), remote_port=remote_port,
        local_ip=local_ip, local_port=local_port,
        dev=dev, remote_mac=remote_mac, extended=extended, release=release, userdata=userdata,
        enabled=not disabled, sysdata=sysdata,
    )
    if userdata_hostname:
        from dataclasses import replace

        from netconsolectl.sender.naming import with_hostname

        spec = replace(spec, userdata=with_hostname(spec.userdata)).check()
    empty = [k for k, v in spec.userdata.items() if not v]
    if empty:
        raise InvalidInput(f"userdata {empty[0]!r} has an empty value (the kernel sends none)")
    if not st.fs.available() and st.fs.is_default_root:
        if dry_run:
            info("netconsole is not loaded: without --dry-run, `setup` runs first")
        else:
            with st.system.lock():
                for line in setup(st.system):
                    info(line)
    if not dry_run or st.fs.available():
        require_netconsole(st.fs)
        if Target(st.fs, name).exists():
            raise TargetExists(
                f"target {name!r} already exists", hint="use `netconsolectl set` to change it"
            )
        if not dry_run and st.fs.base.is_dir() and not os.access(st.fs.base, os.W_OK):
            # What the mkdir would hit; said before discovery asks the network (and probes).
            raise PermissionDenied(f"cannot create targets in {st.fs.base}: permission denied",
                                   hint="run as root", errno=errno.EACCES)
    kernel = detect(st.fs)
    check_add(name, spec, kernel)  # before discovery: what the kernel lacks or cannot hold
    spec = fill(spec, arp_timeout=arp_timeout, arp_retries=arp_retries, broadcast=broadcast,
                system=st.system)
    plan = plan_add(name, spec, kernel)
    plan.summary.append("created")
    _run_plan(st, plan, dry_run=dry_run, quiet=json_)
    if not dry_run:
        from netconsolectl.watch.marks import clear_mark

        clear_mark(st.system, name)
    if json_:
        _report_json(st, "add", name, plan, dry_run=dry_run)
    if not dry_run:
        s = Target(st.fs, name).state()
        info(
            f"added {name}: {endpoint(s.local_ip, s.local_port)} -> "
            f"{endpoint(s.remote_ip, s.remote_port)} "
            f"via {s.dev_name} to {s.remote_mac} ({'enabled' if s.enabled else 'disabled'})"
        )
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
    extended: Extended = None,
    release: Release = None,
    userdata: Userdata = None,
    sysdata: Sysdata = None,
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
    from dataclasses import replace

    from netconsolectl.sender.kernel import detect
    from netconsolectl.sender.plan import plan_set, waiting_for

    st = state(ctx)
    spec = spec_from_options(
        remote_ip=None if remote_ip is None else collector_address(remote_ip, ipv4, ipv6),
        remote_port=remote_port, local_ip=local_ip, local_port=local_port,
        dev=dev, remote_mac=remote_mac, extended=extended, release=release, userdata=userdata,
        enabled=False if disabled else None, sysdata=sysdata,
    )
    live = _live(st, name)
    kernel = detect(st.fs)
    plan_set(live, spec, kernel)  # refusals and limits before discovery
    if broadcast or (spec.remote_ip is not None and str(spec.remote_ip) != live.remote_ip):
        # A new collector may need another interface, source and next hop.
        spec = fill(
            replace(spec, remote_ip=spec.remote_ip or parse_ip(str(live.remote_ip))),
            arp_timeout=arp_timeout, arp_retries=arp_retries, broadcast=broadcast,
            system=st.system,
        )
    elif (spec.dev_name or spec.local_ip or spec.remote_mac) and is_set(live.remote_ip):
        # Check the new interface, source or MAC with what the target keeps, as add would;
        # only what was given is written.
        fill(replace(spec, remote_ip=parse_ip(str(live.remote_ip)),
                     dev_name=spec.dev_name or live.dev_name or None,
                     local_ip=spec.local_ip or (parse_ip(str(live.local_ip))
                                                if is_set(live.local_ip) else None),
                     remote_mac=spec.remote_mac or live.remote_mac or None),
             arp_timeout=arp_timeout, arp_retries=arp_retries, system=st.system)
    plan = plan_set(live, spec, kernel, waiting_for(st.system, kernel, live))
    if not plan.ops:
        for note in plan.notes:
            info(note)
        if json_:
            _report_json(st, "set", live.name, plan, dry_run=dry_run)
        info(f"{name} already has these values; nothing to do")
        return
    _run_plan(st, plan, dry_run=dry_run, quiet=json_)
    if json_:
        _report_json(st, "set", live.name, plan, dry_run=dry_run)
    what = ", ".join(plan.summary)
    if dry_run:
        info(f"would update {name}: {what}")
    else:
        enabled = _live(st, name).enabled
        info(f"updated {name}: {what} ({'enabled' if enabled else 'disabled'})")
        if enabled:
            _loglevel_check(st)


def _toggle(ctx: typer.Context, name: str, enabled: bool, dry_run: bool, json_: bool) -> None:
    from netconsolectl.sender.kernel import detect
    from netconsolectl.sender.plan import plan_set, waiting_for

    st = state(ctx)
    live = _live(st, name)
    kernel = detect(st.fs)
    waiting = waiting_for(st.system, kernel, live)
    plan = plan_set(live, TargetSpec(enabled=enabled), kernel, waiting)
    word = "enabled" if enabled else "disabled"
    if not dry_run:
        # Remembered even when already disabled (say, by the kernel): `watch` must not turn
        # on what a person turned off (netconsolectl.watch.marks).
        from netconsolectl.watch.marks import clear_mark, mark_disabled

        with st.system.lock():
            (clear_mark if enabled else mark_disabled)(st.system, live.name)
    action = "enable" if enabled else "disable"
    if not plan.ops:
        for note in plan.notes:  # deactivated: what the kernel will do by itself
            info(note)
        if json_:
            _report_json(st, action, live.name, plan, dry_run=dry_run)
        if waiting is None:
            info(f"{name} is already {word}")
        return
    _run_plan(st, plan, dry_run=dry_run, quiet=json_)
    if json_:
        _report_json(st, action, live.name, plan, dry_run=dry_run)
    if not dry_run:
        info(f"{name} {word}")
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
    from netconsolectl.errors import NoSuchTarget
    from netconsolectl.sender.plan import plan_remove

    st = state(ctx)
    try:
        live = _live(st, name)
    except NoSuchTarget:
        if missing_ok:
            if json_:
                _report_json(st, "remove", name, None, dry_run=dry_run)
            info(f"{name} does not exist; nothing to do")
            return
        raise
    plan = plan_remove(live)
    plan.summary.append("removed")
    _run_plan(st, plan, dry_run=dry_run, quiet=json_)
    if not dry_run:
        from netconsolectl.watch.marks import clear_mark

        clear_mark(st.system, live.name)
    if json_:
        _report_json(st, "remove", live.name, plan, dry_run=dry_run)
    if not dry_run:
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

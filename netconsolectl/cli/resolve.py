"""CLI resolve: what interface, source address and next-hop MAC a target would get.

Also home of the discovery options shared by ``add``, ``set`` and ``apply``, and of :func:`fill`,
which prints what discovery found for them. Discovery itself loads when a command runs.
"""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from typing import TYPE_CHECKING, Annotated

import typer

from netconsolectl.cli import complete
from netconsolectl.cli.base import command, info, state, warn
from netconsolectl.discover.model import (
    DEFAULT_ARP_RETRIES,
    DEFAULT_ARP_TIMEOUT,
    MAX_ARP_RETRIES,
    MAX_ARP_TIMEOUT,
    MIN_ARP_TIMEOUT,
)
from netconsolectl.errors import InvalidInput

if TYPE_CHECKING:
    from netconsolectl.declarative.apply import Resolver
    from netconsolectl.discover import Resolution
    from netconsolectl.discover.names import Family
    from netconsolectl.host.system import System
    from netconsolectl.sender.spec import TargetSpec

# Reusable options (Annotated aliases) for every command that discovers a next hop.
ArpTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--arp-timeout",
        metavar="S",
        min=MIN_ARP_TIMEOUT,
        max=MAX_ARP_TIMEOUT,
        help="Seconds to wait for an answer after each ARP/NDP request.",
    ),
]
ArpRetriesOpt = Annotated[
    int,
    typer.Option(
        "--arp-retries",
        metavar="N",
        min=1,
        max=MAX_ARP_RETRIES,
        help="ARP/NDP requests to send before giving up (each waits --arp-timeout).",
    ),
]
BroadcastOpt = Annotated[
    bool,
    typer.Option(
        "--broadcast",
        help="Send to ff:ff:ff:ff:ff:ff instead of the next hop's MAC (no probe; the "
        "collector must be on-link).",
    ),
]


def fill(
    spec: TargetSpec,
    *,
    arp_timeout: float = DEFAULT_ARP_TIMEOUT,
    arp_retries: int = DEFAULT_ARP_RETRIES,
    broadcast: bool = False,
    label: str = "",
    system: System | None = None,
) -> TargetSpec:
    """:func:`~netconsolectl.discover.fill.fill_spec`, saying what was found and warned.

    ``label`` prefixes the messages (``apply`` names the target); ``system`` gives the network
    to ask (``System.network``).
    """
    from netconsolectl.discover.fill import fill_spec

    network = system.network if system is not None else None
    # A sandbox enables on this host's devices: what it is given is checked as on a real
    # host (a missing device, loopback, a multicast MAC are refused there too).
    filled = fill_spec(spec, arp_timeout=arp_timeout, arp_retries=arp_retries,
                       broadcast=broadcast, progress=True, network=network)
    for w in filled.warnings:
        warn(f"{label}{w}")
    if filled.found:
        info(f"{label}discovered " + ", ".join(filled.found))
    return filled.spec


def resolver(arp_timeout: float, arp_retries: int, system: System | None = None) -> Resolver:
    """Discovery for the keys a configured target leaves out (and the check of those it
    gives), saying what it found."""

    def resolve(name: str, spec: TargetSpec) -> TargetSpec:
        return fill(spec, arp_timeout=arp_timeout, arp_retries=arp_retries, label=f"{name}: ",
                    system=system)

    return resolve


IPv4Opt = Annotated[bool, typer.Option(
    "--ipv4", help="With a host name: use its IPv4 address (the default when it has both).")]
IPv6Opt = Annotated[bool, typer.Option(
    "--ipv6", help="With a host name: use its IPv6 address.")]


def family(ipv4: bool, ipv6: bool) -> Family | None:
    """The address family --ipv4/--ipv6 ask for (None: the rule, IPv4 first)."""
    if ipv4 and ipv6:
        raise InvalidInput("--ipv4 and --ipv6 exclude each other")
    return 4 if ipv4 else 6 if ipv6 else None


def collector_address(value: str, ipv4: bool, ipv6: bool) -> str:
    """``--remote-ip`` as an address: a host name is looked up once and the lookup said."""
    from netconsolectl.discover.names import collector

    found = collector(value, family=family(ipv4, ipv6))
    if found.name is not None:
        info(found.describe())
    return str(found.address)


# ``apply``, ``cmdline --config`` and ``persist``: unset means "the file's [options], else the
# default".
ConfigArpTimeoutOpt = Annotated[
    float | None,
    typer.Option("--arp-timeout", metavar="S", min=MIN_ARP_TIMEOUT, max=MAX_ARP_TIMEOUT,
                 help="Seconds to wait for each ARP/NDP reply "
                 f"[options.arp_timeout, {DEFAULT_ARP_TIMEOUT:g}]."),
]
ConfigArpRetriesOpt = Annotated[
    int | None,
    typer.Option("--arp-retries", metavar="N", min=1, max=MAX_ARP_RETRIES,
                 help=f"ARP/NDP probes before giving up [options.arp_retries, "
                 f"{DEFAULT_ARP_RETRIES}]."),
]


def describe(res: Resolution) -> list[str]:
    """The resolution as aligned lines: name, value, where the value came from."""
    rows = [
        ("remote_ip", str(res.remote_ip),
         f"host name {res.remote_name}" if res.remote_name else ""),
        ("dev_name", res.dev_name, res.dev_source),
        ("local_ip", str(res.local_ip), res.local_source),
        ("next_hop", str(res.next_hop), res.next_hop_source),
        ("remote_mac", res.remote_mac, res.mac_source),
    ]
    width = max(len(v) for _, v, _ in rows)
    return [f"{k:<11} {v:<{width}}  {src}".rstrip() for k, v, src in rows]


@command("resolve")
def resolve_cmd(
    ctx: typer.Context,
    remote_ip: Annotated[
        str, typer.Argument(metavar="REMOTE", help="Collector address or host name.",
                            show_default=False)
    ],
    dev: Annotated[
        str | None,
        typer.Option(
            "--dev",
            metavar="IFACE",
            help="Egress interface [from the route].",
            autocompletion=complete.interface_names,
        ),
    ] = None,
    local_ip: Annotated[
        str | None,
        typer.Option("--local-ip", metavar="IP", help="Source address [from the route]."),
    ] = None,
    arp_timeout: ArpTimeoutOpt = DEFAULT_ARP_TIMEOUT,
    arp_retries: ArpRetriesOpt = DEFAULT_ARP_RETRIES,
    broadcast: BroadcastOpt = False,
    ipv4: IPv4Opt = False,
    ipv6: IPv6Opt = False,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show the interface, source address, next hop and MAC a target for REMOTE would use.

    REMOTE is an address or a host name (resolved once; IPv4 first when it has both, unless
    --ipv6). Asks the kernel's routing table (policy routing included), then its neighbour
    table, then the next hop itself (ARP or neighbour solicitation). Reads nothing from
    configfs and writes nothing.
    """
    from netconsolectl.discover import resolve

    network = state(ctx).system.network
    fam = family(ipv4, ipv6)
    with network() if network else nullcontext() as net:
        res = resolve(remote_ip, dev=dev, local_ip=local_ip, broadcast=broadcast, family=fam,
                      arp_timeout=arp_timeout, arp_retries=arp_retries, progress=True,
                      netlink=net)
    if res.remote_name is not None:
        info(f"{res.remote_name} is {res.remote_ip}")
    for w in res.warnings:
        warn(str(w))
    if json_out:
        sys.stdout.write(json.dumps(res.to_json(), indent=2) + "\n")
    else:
        for line in describe(res):
            sys.stdout.write(line + "\n")
    if not json_out and res.next_hop != res.remote_ip and res.mac_source != "given":
        info(f"{res.remote_ip} is reached through {res.next_hop}: remote_mac is the next hop's")

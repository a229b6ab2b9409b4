"""CLI resolve: what interface, source address and next-hop MAC a target would get.

Also home of the discovery options and the helper that ``add``/``set`` use to fill in what they
were not given. Nothing heavy is imported here; discovery loads when a command runs.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from netconsolectl.cli import complete
from netconsolectl.cli.base import command, info, warn
from netconsolectl.errors import InvalidInput

if TYPE_CHECKING:
    from netconsolectl.discover import IPAddress, Resolution
    from netconsolectl.sender.spec import TargetSpec

# 3 probes of 0.8 s keep a silent next hop's whole failing `add` under 3 s with start-up.
DEFAULT_ARP_TIMEOUT = 0.8
DEFAULT_ARP_RETRIES = 3

# Reusable options (Annotated aliases) for every command that discovers a next hop.
ArpTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--arp-timeout",
        metavar="S",
        min=0.05,
        max=60.0,
        help="Seconds to wait for an answer after each ARP/NDP request.",
    ),
]
ArpRetriesOpt = Annotated[
    int,
    typer.Option(
        "--arp-retries",
        metavar="N",
        min=1,
        max=20,
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


def discover(
    remote_ip: str | IPAddress,
    *,
    dev: str | None = None,
    local_ip: str | IPAddress | None = None,
    remote_mac: str | None = None,
    broadcast: bool = False,
    arp_timeout: float = DEFAULT_ARP_TIMEOUT,
    arp_retries: int = DEFAULT_ARP_RETRIES,
    label: str = "",
) -> Resolution:
    """Fill in ``dev``, ``local_ip`` and ``remote_mac`` for ``add``/``set``; print warnings.

    Given values are kept and checked. A spinner runs on stderr while probing if it is a
    terminal. Raises InvalidInput (exit 2), KernelRefused (exit 1) or PermissionDenied (exit 77).
    """
    from netconsolectl.discover import resolve

    res = resolve(
        remote_ip,
        dev=dev,
        local_ip=local_ip,
        remote_mac=remote_mac,
        broadcast=broadcast,
        arp_timeout=arp_timeout,
        arp_retries=arp_retries,
        progress=True,
    )
    for w in res.warnings:
        warn(f"{label}{w}")
    return res


def fill_spec(
    spec: TargetSpec,
    *,
    arp_timeout: float = DEFAULT_ARP_TIMEOUT,
    arp_retries: int = DEFAULT_ARP_RETRIES,
    broadcast: bool = False,
    label: str = "",
) -> TargetSpec:
    """Fill a target's dev_name, local_ip and remote_mac from discovery, saying what was found.

    ``label`` prefixes the messages (``apply`` names the target). Values already given are kept
    and no discovery runs when nothing is missing.
    """
    from dataclasses import replace

    if broadcast and spec.remote_mac is not None:
        raise InvalidInput("--broadcast and --remote-mac exclude each other")
    if spec.remote_ip is None:
        return spec
    if spec.dev_name is not None and spec.local_ip is not None and (
        spec.remote_mac is not None or broadcast
    ):
        return replace(spec, remote_mac=spec.remote_mac or "ff:ff:ff:ff:ff:ff")
    res = discover(
        spec.remote_ip,
        dev=spec.dev_name,
        local_ip=spec.local_ip,
        remote_mac=spec.remote_mac,
        broadcast=broadcast,
        arp_timeout=arp_timeout,
        arp_retries=arp_retries,
        label=label,
    )
    found = []
    if spec.dev_name is None:
        found.append(f"dev {res.dev_name} ({res.dev_source})")
    if spec.local_ip is None:
        found.append(f"local IP {res.local_ip} ({res.local_source})")
    if spec.remote_mac is None:
        found.append(f"next hop {res.next_hop} at {res.remote_mac} ({res.mac_source})")
    info(f"{label}discovered " + ", ".join(found))
    return replace(
        spec,
        dev_name=spec.dev_name or res.dev_name,
        local_ip=spec.local_ip or res.local_ip,
        remote_mac=spec.remote_mac or res.remote_mac,
    )


def describe(res: Resolution) -> list[str]:
    """The resolution as aligned lines: name, value, where the value came from."""
    rows = [
        ("remote_ip", str(res.remote_ip), ""),
        ("dev_name", res.dev_name, res.dev_source),
        ("local_ip", str(res.local_ip), res.local_source),
        ("next_hop", str(res.next_hop), res.next_hop_source),
        ("remote_mac", res.remote_mac, res.mac_source),
    ]
    width = max(len(v) for _, v, _ in rows)
    return [f"{k:<11} {v:<{width}}  {src}".rstrip() for k, v, src in rows]


@command("resolve")
def resolve_cmd(
    remote_ip: Annotated[
        str, typer.Argument(metavar="REMOTE_IP", help="Collector address.", show_default=False)
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
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show the interface, source address, next hop and MAC a target for REMOTE_IP would use.

    Asks the kernel's routing table (policy routing included), then its neighbour table, then
    the next hop itself (ARP or neighbour solicitation). Reads nothing from configfs and writes
    nothing.
    """
    res = discover(
        remote_ip,
        dev=dev,
        local_ip=local_ip,
        broadcast=broadcast,
        arp_timeout=arp_timeout,
        arp_retries=arp_retries,
    )
    if json_out:
        sys.stdout.write(json.dumps(res.to_json(), indent=2) + "\n")
    else:
        for line in describe(res):
            sys.stdout.write(line + "\n")
    if not json_out and res.next_hop != res.remote_ip and res.mac_source != "given":
        info(f"{res.remote_ip} is reached through {res.next_hop}: remote_mac is the next hop's")

"""Fill what a target spec leaves out (dev_name, local_ip, remote_mac) from discovery.

``add``, ``set``, ``apply`` and the boot parameter all complete a target this way: values the
user gave are kept (and checked by :func:`netconsolectl.discover.resolve`); the rest come from
the kernel's routing and neighbour tables or an ARP/NDP probe.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from netconsolectl.discover.model import DEFAULT_ARP_RETRIES, DEFAULT_ARP_TIMEOUT
from netconsolectl.errors import InvalidInput

if TYPE_CHECKING:
    from netconsolectl.discover.model import NetworkView, Resolution
    from netconsolectl.sender.spec import TargetSpec


@dataclass(frozen=True)
class Filled:
    """A completed spec, and what discovery found (empty when nothing had to be found)."""

    spec: TargetSpec
    resolution: Resolution | None = None
    found: tuple[str, ...] = ()

    @property
    def warnings(self) -> tuple[str, ...]:
        return () if self.resolution is None else tuple(map(str, self.resolution.warnings))


def _refuse_group_address(res: Resolution) -> None:
    """A collector address the route says is a broadcast (a subnet's, 192.0.2.255/24) or
    multicast one: netconsole sends unicast frames to one MAC, so refused as spec.py refuses
    the addresses that are such by themselves."""
    from netconsolectl.discover.model import Origin

    src = res.next_hop_source
    origin = getattr(src, "origin", None)
    kind = origin.value if origin is not None else str(src)
    if kind in (Origin.BROADCAST_ADDRESS.value, Origin.MULTICAST.value):
        raise InvalidInput(
            f"invalid remote IP {res.remote_ip}: a {kind} on {res.dev_name}; "
            "netconsole sends unicast frames to one collector",
            hint="give the collector's own address")


def fill_spec(
    spec: TargetSpec,
    *,
    arp_timeout: float = DEFAULT_ARP_TIMEOUT,
    arp_retries: int = DEFAULT_ARP_RETRIES,
    broadcast: bool = False,
    progress: bool = False,
    network: Callable[[], AbstractContextManager[Any]] | None = None,
) -> Filled:
    """Complete ``spec`` for sending, and check what it gives.

    Given values are checked as discovered ones are, even when all of dev_name, local_ip and
    remote_mac are given (then nothing is probed): a missing, down or enslaved device, a
    source of the wrong family or not on the device, a multicast or all-zero MAC are refused
    or warned about here rather than when the kernel enables the target. ``progress`` shows a
    spinner on stderr while probing, when stderr is a terminal. ``network`` opens the network
    to ask (``System.network``); None: the kernel's.
    """
    if broadcast and spec.remote_mac is not None:
        raise InvalidInput("--broadcast and --remote-mac exclude each other")
    if spec.remote_ip is None:
        return Filled(spec)
    from netconsolectl.discover import resolve

    opened: AbstractContextManager[NetworkView | None] = network() if network else nullcontext()
    with opened as net:
        res = resolve(
            spec.remote_ip,
            dev=spec.dev_name,
            local_ip=spec.local_ip,
            remote_mac=spec.remote_mac,
            broadcast=broadcast,
            arp_timeout=arp_timeout,
            arp_retries=arp_retries,
            progress=progress,
            netlink=net,
        )
    _refuse_group_address(res)
    found = []
    if spec.dev_name is None:
        found.append(f"dev {res.dev_name} ({res.dev_source})")
    if spec.local_ip is None:
        found.append(f"local IP {res.local_ip} ({res.local_source})")
    if spec.remote_mac is None:
        found.append(f"next hop {res.next_hop} at {res.remote_mac} ({res.mac_source})")
    filled = replace(
        spec,
        dev_name=spec.dev_name or res.dev_name,
        local_ip=spec.local_ip or res.local_ip,
        remote_mac=spec.remote_mac or res.remote_mac,
    )
    return Filled(filled, res, tuple(found))

"""Route, source address and next-hop MAC discovery for a netconsole target.

netconsole does no routing and no ARP: it sends Ethernet frames out of ``dev_name`` to
``remote_mac``. :func:`resolve` works out what those must be for one collector, the way the
kernel would route a packet to it:

* the interface and source address come from the kernel's route lookup (``ip route get``),
  honouring a given interface and source, so policy routing is respected;
* the next hop is the route's gateway, or the collector itself when it is on-link;
* the next hop's MAC comes from the neighbour table when the entry is usable, else from an ARP
  request (IPv4) or a neighbour solicitation (IPv6) sent out of the interface.

Route, link, address and neighbour lookups go through pyroute2; the probe is built, sent and
answered with scapy. Importing this package imports neither: pyroute2 loads when :func:`resolve`
opens the host's network, scapy only when the neighbour table has no usable entry.
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace

from netconsolectl.discover.logic import Status, parse_ip, resolve_on
from netconsolectl.discover.model import (
    DEFAULT_ARP_RETRIES,
    DEFAULT_ARP_TIMEOUT,
    Address,
    Link,
    Neighbour,
    NetworkView,
    Resolution,
    Route,
)
from netconsolectl.discover.names import Collector, Family, collector
from netconsolectl.errors import KernelRefused
from netconsolectl.sender.spec import IPAddress

__all__ = [
    "Address",
    "Collector",
    "Family",
    "IPAddress",
    "Link",
    "Neighbour",
    "NetworkView",
    "Resolution",
    "Route",
    "collector",
    "parse_ip",
    "resolve",
    "resolve_on",
]


def resolve(
    remote_ip: object,
    *,
    dev: str | None = None,
    local_ip: object | None = None,
    remote_mac: str | None = None,
    broadcast: bool = False,
    arp_timeout: float = DEFAULT_ARP_TIMEOUT,
    arp_retries: int = DEFAULT_ARP_RETRIES,
    progress: bool = False,
    netlink: NetworkView | None = None,
    fresh: bool = False,
    family: Family | None = None,
) -> Resolution:
    """Work out ``dev_name``, ``local_ip`` and ``remote_mac`` for a collector at ``remote_ip``.

    Values that are given are kept (and checked); the rest are discovered. ``arp_retries``
    requests are sent at most, each followed by a wait of ``arp_timeout`` seconds, so a silent
    next hop fails after about ``arp_timeout * arp_retries`` seconds. With ``progress``, a
    spinner runs on stderr while probing, if stderr is a terminal. ``netlink`` replaces the
    host's network (tests). ``fresh`` probes the next hop even when the neighbour table has a
    usable entry (``watch --revalidate``).

    ``remote_ip`` may be a host name: it is resolved once with the system resolver, IPv4 first
    when it has both families, or the ``family`` (4 or 6) asked for
    (:mod:`netconsolectl.discover.names`); the result's ``remote_name`` says which name it was.

    Raises :class:`~netconsolectl.errors.InvalidInput` for bad input,
    :class:`~netconsolectl.errors.KernelRefused` when netconsole could not use the result or no
    MAC was found, :class:`~netconsolectl.errors.PermissionDenied` when a probe needs
    CAP_NET_RAW.
    """
    status: Status | None = _spinner if progress and sys.stderr.isatty() else None
    # Validate (and look a name up) before opening sockets, so bad input is reported as such.
    target = collector(remote_ip, family=family)

    def run(network: NetworkView) -> Resolution:
        try:
            return replace(resolve_on(
                network, target.address, dev=dev, local_ip=local_ip, remote_mac=remote_mac,
                broadcast=broadcast, arp_timeout=arp_timeout, arp_retries=arp_retries,
                status=status, fresh=fresh,
            ), remote_name=target.name)
        except OSError as e:  # what the logic does not expect, e.g. a link vanishing mid-way
            raise KernelRefused(f"network lookup failed: {e.strerror or e}",
                                errno=e.errno) from e

    if netlink is not None:
        return run(netlink)
    from netconsolectl.discover.netlink import HostNetwork

    try:
        network = HostNetwork()
    except OSError as e:
        raise KernelRefused(f"cannot open a netlink socket: {e.strerror or e}",
                            errno=e.errno) from e
    with network:
        return run(network)


def _spinner(message: str) -> AbstractContextManager[object]:
    try:
        from rich.console import Console
    except ImportError:  # pragma: no cover - rich is a dependency, but the library need not be
        return nullcontext()
    return Console(stderr=True).status(message, spinner="dots")


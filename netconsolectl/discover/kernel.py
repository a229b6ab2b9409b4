"""The real :class:`~netconsolectl.discover.model.Network`: rtnetlink plus AF_PACKET probes.

Everything is asked of the network namespace the calling thread is in, as netconsole resolves
``dev_name`` in the writer's namespace.
"""

from __future__ import annotations

import fcntl
import socket
import struct
from dataclasses import replace
from ipaddress import IPv6Address
from pathlib import Path

from netconsolectl.discover import probe as _probe
from netconsolectl.discover.model import (
    IFA_F_DADFAILED,
    IFA_F_TENTATIVE,
    Address,
    IPAddress,
    Link,
    Neighbour,
    Route,
)
from netconsolectl.discover.rtnl import Rtnl

SIOCGIWNAME = 0x8B01  # wireless extensions "get name": succeeds only on wireless devices


class KernelNetwork:
    """The host's network, as seen from the calling thread's network namespace."""

    def __init__(self, sysfs: Path = Path("/sys/class/net")) -> None:
        self._rtnl = Rtnl()
        self._sysfs = sysfs

    def close(self) -> None:
        self._rtnl.close()

    def __enter__(self) -> KernelNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- links --------------------------------------------------------------------------------
    def link_by_name(self, name: str) -> Link:
        return self._with_wireless(self._rtnl.link_by_name(name))

    def link_by_index(self, index: int) -> Link:
        return self._with_wireless(self._rtnl.link_by_index(index))

    def _with_wireless(self, link: Link) -> Link:
        return replace(link, wireless=self._is_wireless(link)) if link.arphrd == 1 else link

    def _is_wireless(self, link: Link) -> bool:
        # cfg80211 creates "phy80211"/"wireless" under the device in sysfs. That sysfs view
        # belongs to the namespace that mounted /sys, so trust it only for the same device.
        base = self._sysfs / link.name
        try:
            if (
                int((base / "ifindex").read_text()) == link.index
                and (base / "address").read_text().strip() == link.mac
                and ((base / "phy80211").exists() or (base / "wireless").exists())
            ):
                return True
        except (OSError, ValueError):
            pass
        # Wireless-extension ioctls go to the socket's namespace; any socket family will do.
        request = struct.pack("16s16x", link.name.encode()[:15])
        try:
            fcntl.ioctl(self._rtnl.fileno(), SIOCGIWNAME, request)
        except OSError:
            return False
        return True

    # -- routes, addresses, neighbours --------------------------------------------------------
    def route_get(
        self, dst: IPAddress, *, oif: int | None = None, src: IPAddress | None = None
    ) -> Route:
        return self._rtnl.route_get(dst, oif=oif, src=src)

    def addresses(self, index: int, family: int) -> list[Address]:
        return self._rtnl.addresses(index, family)

    def neighbour(self, address: IPAddress, index: int) -> Neighbour | None:
        return self._rtnl.neighbour(address, index)

    # -- probes -------------------------------------------------------------------------------
    def probe(
        self, link: Link, target: IPAddress, source: IPAddress | None, timeout: float, attempts: int
    ) -> str | None:
        if link.mac is None:
            return None
        if source is None or isinstance(target, IPv6Address):
            source = self._probe_source(link, target, source)
            if source is None:
                return None
        return _probe.probe(link.name, link.mac, source, target, timeout, attempts)

    def _probe_source(
        self, link: Link, target: IPAddress, preferred: IPAddress | None
    ) -> IPAddress | None:
        """The address to solicit from: for IPv6 the link-local one, as hosts normally do."""
        family = socket.AF_INET if target.version == 4 else socket.AF_INET6
        usable = [
            a for a in self.addresses(link.index, family)
            if not a.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED)
        ]
        if target.version == 6:
            for a in usable:
                if a.address.is_link_local:
                    return a.address
        if preferred is not None:
            return preferred
        return usable[0].address if usable else None

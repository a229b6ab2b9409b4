"""The discovery :class:`~netconsolectl.discover.model.NetworkView` over the fake kernel's devices.

For the unit and CLI tiers only, where the configfs side is the kernel-faithful fake and the
devices it knows (``netconsolectl.sender.emulation.Device``) do not exist on the test
host. Each device sits on its own segment: a /24 around each IPv4 address and a /64 around each
IPv6 one, with no gateway; an address of a device routes to loopback. A route asked for out of
a given device treats the destination as on-link there, as IPv4 does. Real kernel networking
(routes, rules, neighbours, probes) is tested in the netns tier.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import ip_address, ip_interface

from netconsolectl.discover.model import (
    NUD_REACHABLE,
    RTN_LOCAL,
    Address,
    IPAddress,
    Link,
    Neighbour,
    Route,
)
from netconsolectl.facts import IFF_BROADCAST, IFF_LOOPBACK, IFF_LOWER_UP, IFF_UP
from netconsolectl.sender.emulation import Device


class DeviceNetwork:
    """Links, addresses and on-link routes of ``devices``; neighbours and probe answers given."""

    def __init__(self, devices: dict[str, Device], *,
                 neighbours: dict[str, str] | None = None,
                 answers: dict[str, str] | None = None) -> None:
        self.devices = devices
        self.neighbours = {ip_address(k): v for k, v in (neighbours or {}).items()}
        self.answers = {ip_address(k): v for k, v in (answers or {}).items()}
        self.probes: list[tuple[str, IPAddress]] = []

    @contextmanager
    def open(self) -> Iterator[DeviceNetwork]:
        """A network factory's product: ``System.network`` and doctor's factory call this."""
        yield self

    def __enter__(self) -> DeviceNetwork:  # used like the real HostNetwork, too
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    # -- links ----------------------------------------------------------------------------
    def _index(self, name: str) -> int:
        return 2 + list(self.devices).index(name)

    def _link(self, dev: Device) -> Link:
        flags = IFF_BROADCAST | (IFF_UP | IFF_LOWER_UP if dev.up else 0)
        master = self._index(dev.master) if dev.master in self.devices else None
        return Link(index=self._index(dev.name), name=dev.name, arphrd=1, flags=flags,
                    mac=dev.mac, kind=dev.kind, master=master)

    def link_by_name(self, name: str) -> Link:
        if name == "lo":
            return self.link_by_index(1)
        if name not in self.devices:
            raise OSError(errno.ENODEV, "No such device")
        return self._link(self.devices[name])

    def link_by_index(self, index: int) -> Link:
        if index == 1:
            return Link(1, "lo", 772, IFF_UP | IFF_LOWER_UP | IFF_LOOPBACK, "00:00:00:00:00:00")
        for dev in self.devices.values():
            if self._index(dev.name) == index:
                return self._link(dev)
        raise OSError(errno.ENODEV, "No such device")

    # -- addresses and routes -------------------------------------------------------------
    def _addrs(self, dev: Device) -> list[Address]:
        index = self._index(dev.name)
        return ([Address(ip_address(a), 24, index) for a in dev.ipv4]
                + [Address(ip_address(a), 64, index) for a in dev.ipv6])

    def addresses(self, index: int, family: int) -> list[Address]:
        for dev in self.devices.values():
            if self._index(dev.name) == index:
                return [a for a in self._addrs(dev) if a.family == family]
        return []

    def route_get(self, dst: IPAddress, *, oif: int | None = None,
                  src: IPAddress | None = None) -> Route:
        family = socket.AF_INET if dst.version == 4 else socket.AF_INET6
        every = [a for d in self.devices.values() for a in self._addrs(d)]
        if any(a.address == dst for a in every):
            return Route(oif=1, type=RTN_LOCAL, prefsrc=dst)
        if oif is not None:
            mine = self.addresses(oif, family)
            return Route(oif=oif, prefsrc=src or (mine[0].address if mine else None))
        for a in every:
            if a.family == family and dst in ip_interface(f"{a.address}/{a.prefixlen}").network:
                return Route(oif=a.index, prefsrc=a.address)
        raise OSError(errno.ENETUNREACH, "Network is unreachable")

    # -- neighbours and probes ------------------------------------------------------------
    def neighbour(self, address: IPAddress, index: int) -> Neighbour | None:
        mac = self.neighbours.get(address)
        return None if mac is None else Neighbour(address, index, NUD_REACHABLE, mac)

    def probe(self, link: Link, target: IPAddress, source: IPAddress | None, timeout: float,
              attempts: int) -> str | None:
        self.probes.append((link.name, target))
        return self.answers.get(target)

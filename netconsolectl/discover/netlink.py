"""The real :class:`~netconsolectl.discover.model.NetworkView`: pyroute2 for rtnetlink, scapy
probes.

Everything is asked of the network namespace the calling thread is in, as netconsole resolves
``dev_name`` in the writer's namespace: pyroute2's ``IPRoute`` opens its socket in the thread
that creates it. pyroute2 is imported when :class:`HostNetwork` is created; scapy only when a
probe is sent (:mod:`netconsolectl.discover.solicit`), i.e. when the neighbour table had no
usable entry.

pyroute2 raises ``NetlinkError`` whose ``code`` is the kernel errno; it is turned into an
``OSError`` with that errno so the decision logic maps ENETUNREACH, EHOSTUNREACH, EACCES, ENODEV
and the rest exactly as the :class:`NetworkView` protocol promises.
"""

from __future__ import annotations

import errno as _errno
import fcntl
import os
import socket
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from ipaddress import IPv6Address, ip_address
from pathlib import Path
from typing import Any, TypeVar

from netconsolectl.discover.model import (
    IFA_F_DADFAILED,
    IFA_F_TENTATIVE,
    RT_TABLE_MAIN,
    RTN_UNICAST,
    Address,
    Link,
    Neighbour,
    Route,
    family_of,
)
from netconsolectl.facts import ARPHRD_ETHER, SYS_CLASS_NET
from netconsolectl.sender.spec import IPAddress

SIOCGIWNAME = 0x8B01  # wireless extensions "get name": succeeds only on wireless devices
# Ask for the table the route came from: without it IPv4 reports "main" for a route found
# through a policy rule (include/uapi/linux/rtnetlink.h).
RTM_F_LOOKUP_TABLE = 0x1000

T = TypeVar("T")


@contextmanager
def _errno_of_netlink() -> Iterator[None]:
    """NetlinkError (pyroute2) -> OSError with the same errno and the kernel's message."""
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        yield
    except NetlinkError as e:
        code = int(e.code)
        text = os.strerror(code)
        detail = e.args[1] if len(e.args) > 1 else None
        if isinstance(detail, str) and detail and detail != text:
            text += f" ({detail})"
        raise OSError(code, text) from None


class HostNetwork:
    """The host's network, as seen from the calling thread's network namespace."""

    def __init__(self, sysfs: Path = Path(SYS_CLASS_NET)) -> None:
        # The narrowest entry point pyroute2 has: importing any pyroute2 module runs the
        # package's __init__, which imports everything anyway.
        from pyroute2 import IPRoute

        with _errno_of_netlink():
            self._ipr: Any = IPRoute()
        self._sysfs = sysfs

    def close(self) -> None:
        self._ipr.close()

    def __enter__(self) -> HostNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, fn: Callable[[], T]) -> T:
        with _errno_of_netlink():
            return fn()

    # -- links --------------------------------------------------------------------------------
    def link_by_name(self, name: str) -> Link:
        (msg,) = self._call(lambda: self._ipr.link("get", ifname=name))[:1]
        return self._with_wireless(link_from(msg))

    def link_by_index(self, index: int) -> Link:
        (msg,) = self._call(lambda: self._ipr.link("get", index=index))[:1]
        return self._with_wireless(link_from(msg))

    def _with_wireless(self, link: Link) -> Link:
        return replace(link, wireless=self._is_wireless(link)) if link.arphrd == ARPHRD_ETHER \
            else link

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
        # Wireless-extension ioctls go to the socket's namespace (the calling thread's); an
        # ordinary UDP socket will do.
        request = struct.pack("16s16x", link.name.encode()[:15])
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                fcntl.ioctl(s.fileno(), SIOCGIWNAME, request)
        except OSError:
            return False
        return True

    # -- routes, addresses, neighbours --------------------------------------------------------
    def route_get(
        self, dst: IPAddress, *, oif: int | None = None, src: IPAddress | None = None
    ) -> Route:
        kw: dict[str, object] = {"dst": str(dst), "family": family_of(dst),
                                 "flags": RTM_F_LOOKUP_TABLE}
        if oif is not None:
            kw["oif"] = oif
        if src is not None:
            kw["src"] = str(src)
        answer = self._call(lambda: self._ipr.route("get", **kw))
        if not answer:
            raise OSError(_errno.EBADMSG, "empty answer to a route request")
        return route_from(answer[0])

    def addresses(self, index: int, family: int) -> list[Address]:
        msgs = self._call(lambda: list(self._ipr.addr("dump", family=family, index=index)))
        out = []
        for msg in msgs:
            if msg["index"] != index or msg["family"] != family:
                continue
            raw = msg.get("IFA_LOCAL") or msg.get("IFA_ADDRESS")
            if raw is None:
                continue
            flags = msg.get("IFA_FLAGS")
            out.append(Address(ip_address(raw), msg["prefixlen"], index,
                               msg["flags"] if flags is None else flags, msg["scope"]))
        return out

    def neighbour(self, address: IPAddress, index: int) -> Neighbour | None:
        try:
            msgs = self._call(lambda: self._ipr.neigh("get", dst=str(address), ifindex=index,
                                                      family=family_of(address)))
            return neighbour_from(msgs[0]) if msgs else None
        except OSError as e:
            if e.errno == _errno.ENOENT:
                return None
            if e.errno not in (_errno.EINVAL, _errno.EOPNOTSUPP):
                raise
        # Kernels before 4.20 cannot get one entry: dump the family and pick ours.
        found = None
        for msg in self._call(lambda: list(self._ipr.neigh("dump", family=family_of(address)))):
            entry = neighbour_from(msg)
            if entry is not None and entry.address == address and entry.index == index:
                found = entry
        return found

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
        from netconsolectl.discover import solicit

        return solicit.probe(link.name, link.mac, source, target, timeout, attempts)

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


# -- pyroute2 messages -> model ---------------------------------------------------------------
def _mac(value: object) -> str | None:
    """A 6-byte link-layer address in lowercase colon form; None for other lengths."""
    if not isinstance(value, str) or len(value.split(":")) != 6:
        return None
    return value.lower()


def link_from(msg: Any) -> Link:
    info = msg.get("IFLA_LINKINFO")
    kind = info.get("IFLA_INFO_KIND") if info is not None else None
    return Link(
        index=msg["index"],
        name=msg.get("IFLA_IFNAME") or "",
        arphrd=msg["ifi_type"],
        flags=msg["flags"],
        mac=_mac(msg.get("IFLA_ADDRESS")),
        kind=kind,
        master=msg.get("IFLA_MASTER") or None,
    )


def route_from(msg: Any) -> Route:
    gateway: IPAddress | None = None
    if (gw := msg.get("RTA_GATEWAY")) is not None:
        gateway = ip_address(gw)
    elif isinstance(via := msg.get("RTA_VIA"), dict) and via.get("addr"):
        # struct rtvia: an IPv4 route whose next hop is IPv6.
        gateway = ip_address(via["addr"])
    prefsrc = msg.get("RTA_PREFSRC")
    table = msg.get("RTA_TABLE")
    return Route(
        oif=msg.get("RTA_OIF") or 0,
        type=msg.get("type", RTN_UNICAST),
        gateway=gateway,
        prefsrc=ip_address(prefsrc) if prefsrc is not None else None,
        table=table if table is not None else msg.get("table", RT_TABLE_MAIN),
    )


def neighbour_from(msg: Any) -> Neighbour | None:
    dst = msg.get("NDA_DST")
    if dst is None or msg["family"] not in (socket.AF_INET, socket.AF_INET6):
        return None
    return Neighbour(
        address=ip_address(dst),
        index=msg["ifindex"],
        state=msg["state"],
        lladdr=_mac(msg.get("NDA_LLADDR")),
    )

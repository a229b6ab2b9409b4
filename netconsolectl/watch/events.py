"""rtnetlink change notifications as small records, read from a pyroute2 socket.

The socket joins the link, IPv4/IPv6 address, IPv4/IPv6 route and neighbour multicast groups
(``RTMGRP_*`` in include/uapi/linux/rtnetlink.h). :class:`Subscription` never blocks: the
caller waits on :meth:`Subscription.fileno` with ``select`` (so an idle watch costs no CPU) and
then drains what is queued with :meth:`Subscription.read`; pyroute2 decodes the messages.

When events arrive faster than they are read, the kernel drops them and the next ``recv``
fails with ENOBUFS (net/netlink/af_netlink.c ``netlink_overrun``). That is reported as one
``overrun`` event: the reader must then assume anything may have changed.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from dataclasses import dataclass
from ipaddress import ip_address, ip_network
from typing import Any, Literal

from netconsolectl.facts import IFF_UP

# include/uapi/linux/rtnetlink.h (the legacy group bit masks bind() takes).
RTMGRP_LINK = 0x1
RTMGRP_NEIGH = 0x4
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400
GROUPS = (RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE
          | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE)

RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_DELADDR = 16, 17, 20, 21
RTM_NEWROUTE, RTM_DELROUTE, RTM_NEWNEIGH, RTM_DELNEIGH = 24, 25, 28, 29
RTM_F_CLONED = 0x200  # route cache entries (IPv6 PMTU exceptions): not routing changes
# include/uapi/linux/neighbour.h: states in which the entry's lladdr is what the kernel uses.
NUD_REACHABLE, NUD_STALE, NUD_DELAY, NUD_PROBE, NUD_PERMANENT = 0x02, 0x04, 0x08, 0x10, 0x80
NUD_HAS_LLADDR = NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT

EventKind = Literal["link", "addr", "route", "neigh", "overrun"]

# A receive buffer that absorbs a burst of a few thousand notifications between two reads.
RCVBUF = 4 << 20


@dataclass(frozen=True)
class NetlinkEvent:
    """One notification, reduced to what decides whether a target is concerned."""

    kind: EventKind
    new: bool = True  # RTM_NEW* (False: RTM_DEL*)
    index: int = 0  # the interface it is about
    name: str | None = None  # link: IFLA_IFNAME
    master: int = 0  # link: IFLA_MASTER (0: none)
    up: bool = False  # link: IFF_UP
    family: int = 0
    address: str | None = None  # addr: the address; neigh: the neighbour's IP
    prefix: str | None = None  # route: destination prefix ("0.0.0.0/0" for a default route)
    lladdr: str | None = None  # neigh: its MAC
    state: int = 0  # neigh: NUD_* bits

    def covers(self, addr: str) -> bool:
        """A route event whose destination prefix contains ``addr`` (it may change its route)."""
        if self.prefix is None:
            return False
        try:
            return ip_address(addr) in ip_network(self.prefix, strict=False)
        except (ValueError, TypeError):
            return False

    def describe(self) -> str:
        verb = "new" if self.new else "deleted"
        if self.kind == "link":
            return f"link {self.name or self.index} {'changed' if self.new else 'removed'}"
        if self.kind == "addr":
            return f"address {self.address} {'added' if self.new else 'removed'}"
        if self.kind == "route":
            return f"{verb} route {self.prefix}"
        if self.kind == "neigh":
            return f"neighbour {self.address} {'at ' + self.lladdr if self.lladdr else verb}"
        return "netlink notifications were lost (ENOBUFS)"


def _event(msg: Any) -> NetlinkEvent | None:
    """pyroute2 message -> NetlinkEvent (None for what no target can depend on)."""
    # The header's type, not msg.get("event"): get() also looks in the attributes, and a link
    # message may carry IFLA_EVENT.
    kind = msg["header"]["type"]
    new = kind in (RTM_NEWLINK, RTM_NEWADDR, RTM_NEWROUTE, RTM_NEWNEIGH)
    if kind in (RTM_NEWLINK, RTM_DELLINK):
        return NetlinkEvent("link", new, index=msg["index"], name=msg.get_attr("IFLA_IFNAME"),
                     master=msg.get_attr("IFLA_MASTER") or 0,
                     up=bool(msg["flags"] & IFF_UP))
    if kind in (RTM_NEWADDR, RTM_DELADDR):
        addr = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
        return NetlinkEvent("addr", new, index=msg["index"], family=msg["family"], address=addr)
    if kind in (RTM_NEWROUTE, RTM_DELROUTE):
        if msg["flags"] & RTM_F_CLONED:
            return None
        family = msg["family"]
        dst = msg.get_attr("RTA_DST") or ("0.0.0.0" if family == socket.AF_INET else "::")
        return NetlinkEvent("route", new, index=msg.get_attr("RTA_OIF") or 0, family=family,
                     prefix=f"{dst}/{msg['dst_len']}")
    if kind in (RTM_NEWNEIGH, RTM_DELNEIGH):
        return NetlinkEvent("neigh", new, index=msg["ifindex"], family=msg["family"],
                     address=msg.get_attr("NDA_DST"), lladdr=msg.get_attr("NDA_LLADDR"),
                     state=msg["state"])
    return None


class Subscription:
    """An rtnetlink socket bound to the groups above, decoded by pyroute2, read without blocking.

    The socket is a plain non-blocking one, so that ``select`` on it tells the whole truth:
    pyroute2 0.9's synchronous ``IPRoute.get()`` reads every queued datagram into an asyncio
    queue but returns one, which leaves notifications where ``select`` cannot see them. Decoding
    is pyroute2's (``MarshalRtnl``), the same message classes discovery uses.
    """

    def __init__(self) -> None:
        from pyroute2.netlink.rtnl.marshal import MarshalRtnl  # only `watch` pays for it

        self._marshal = MarshalRtnl()
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK
                                   | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        try:
            with contextlib.suppress(OSError):
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            self._sock.bind((0, GROUPS))
        except BaseException:
            self._sock.close()
            raise

    def fileno(self) -> int:
        return self._sock.fileno()

    def read(self, limit: int = 10000) -> list[NetlinkEvent]:
        """Everything queued now (at most about ``limit`` events), without waiting."""
        out: list[NetlinkEvent] = []
        while len(out) < limit:
            try:
                data = self._sock.recv(1 << 16)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    out.append(NetlinkEvent("overrun"))
                    continue
                raise
            for m in self._marshal.parse(data):
                ev = _event(m)
                if ev is not None:
                    out.append(ev)
        return out

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

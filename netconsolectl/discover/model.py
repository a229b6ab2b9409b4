"""Plain data the discovery logic works on, and the interface to "the network" it asks.

Nothing here touches the kernel. :class:`NetworkView` is what the decision logic in
:mod:`netconsolectl.discover.logic` needs from the host; :mod:`netconsolectl.discover.netlink`
implements it with pyroute2 and scapy, and unit tests implement it with small fakes.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from netconsolectl.facts import IFF_LOWER_UP, IFF_UP
from netconsolectl.sender.spec import IPAddress

# The active ARP/NDP probe's bounds, the same for add, set, resolve, apply and the library:
# three requests of 0.8 s keep a silent next hop's whole failing command under 3 s.
DEFAULT_ARP_TIMEOUT = 0.8
DEFAULT_ARP_RETRIES = 3
MIN_ARP_TIMEOUT = 0.05
MAX_ARP_TIMEOUT = 60.0
MAX_ARP_RETRIES = 20

ARPHRD_NAMES = {
    1: "ether",
    32: "infiniband",
    512: "ppp",
    519: "rawip",
    768: "ipip",
    769: "ip6tnl",
    772: "loopback",
    776: "sit",
    778: "gre",
    801: "ieee802.11",
    803: "radiotap",
    823: "ip6gre",
    65534: "none",
    65535: "void",
}

# Neighbour states (include/uapi/linux/neighbour.h).
NUD_INCOMPLETE = 0x01
NUD_REACHABLE = 0x02
NUD_STALE = 0x04
NUD_DELAY = 0x08
NUD_PROBE = 0x10
NUD_FAILED = 0x20
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80
NUD_NAMES = {
    NUD_INCOMPLETE: "INCOMPLETE",
    NUD_REACHABLE: "REACHABLE",
    NUD_STALE: "STALE",
    NUD_DELAY: "DELAY",
    NUD_PROBE: "PROBE",
    NUD_FAILED: "FAILED",
    NUD_NOARP: "NOARP",
    NUD_PERMANENT: "PERMANENT",
}
# States whose link-layer address is valid. STALE/DELAY/PROBE entries were confirmed once and
# are only awaiting re-confirmation: the address is still the one the kernel itself would use.
NUD_USABLE = NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP

# Address flags (include/uapi/linux/if_addr.h). 0x01 is "secondary" for IPv4 and
# "temporary" (RFC 4941 privacy address) for IPv6.
IFA_F_SECONDARY = 0x01
IFA_F_TEMPORARY = 0x01
IFA_F_OPTIMISTIC = 0x04
IFA_F_DADFAILED = 0x08
IFA_F_DEPRECATED = 0x20
IFA_F_TENTATIVE = 0x40

# Route types (include/uapi/linux/rtnetlink.h).
RTN_UNICAST = 1
RTN_LOCAL = 2
RTN_BROADCAST = 3
RTN_ANYCAST = 4
RTN_MULTICAST = 5
RTN_BLACKHOLE = 6
RTN_UNREACHABLE = 7
RTN_PROHIBIT = 8
RT_TABLE_MAIN = 254

# Address scopes.
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RT_SCOPE_HOST = 254


def family_of(addr: IPAddress) -> int:
    return socket.AF_INET if addr.version == 4 else socket.AF_INET6


@dataclass(frozen=True)
class Link:
    """One network interface as rtnetlink describes it."""

    index: int
    name: str
    arphrd: int  # ifinfomsg.ifi_type
    flags: int  # ifinfomsg.ifi_flags (IFF_*)
    mac: str | None = None  # IFLA_ADDRESS, lowercase colon form when 6 bytes
    kind: str | None = None  # IFLA_INFO_KIND ("bridge", "veth", "wireguard", ...); None for NICs
    master: int | None = None  # IFLA_MASTER ifindex
    wireless: bool = False

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)

    @property
    def lower_up(self) -> bool:
        return bool(self.flags & IFF_LOWER_UP)

    @property
    def type_name(self) -> str:
        return ARPHRD_NAMES.get(self.arphrd, f"type {self.arphrd}")


@dataclass(frozen=True)
class Route:
    """The kernel's answer to ``ip route get``: the route one packet would take."""

    oif: int
    type: int = RTN_UNICAST
    gateway: IPAddress | None = None  # RTA_GATEWAY, or RTA_VIA for an IPv4 route via IPv6
    prefsrc: IPAddress | None = None
    table: int = RT_TABLE_MAIN


@dataclass(frozen=True)
class Address:
    """One interface address (ifaddrmsg plus its attributes)."""

    address: IPAddress
    prefixlen: int
    index: int
    flags: int = 0  # IFA_FLAGS (falls back to the 8-bit ifa_flags)
    scope: int = RT_SCOPE_UNIVERSE

    @property
    def family(self) -> int:
        return family_of(self.address)


@dataclass(frozen=True)
class Neighbour:
    """One neighbour-table entry."""

    address: IPAddress
    index: int
    state: int
    lladdr: str | None = None

    @property
    def state_name(self) -> str:
        names = [n for bit, n in NUD_NAMES.items() if self.state & bit]
        return "|".join(names) if names else "NONE"

    @property
    def usable(self) -> bool:
        return bool(self.state & NUD_USABLE) and self.lladdr is not None


class NetworkView(Protocol):
    """What discovery needs from the host. Failures raise ``OSError`` with the kernel errno."""

    def link_by_name(self, name: str) -> Link: ...

    def link_by_index(self, index: int) -> Link: ...

    def route_get(
        self, dst: IPAddress, *, oif: int | None = None, src: IPAddress | None = None
    ) -> Route: ...

    def addresses(self, index: int, family: int) -> list[Address]:
        """The addresses of one interface and family, in the kernel's order (primary first)."""
        ...

    def neighbour(self, address: IPAddress, index: int) -> Neighbour | None:
        """The neighbour entry for ``address`` on interface ``index``, in any state."""
        ...

    def probe(
        self, link: Link, target: IPAddress, source: IPAddress | None, timeout: float, attempts: int
    ) -> str | None:
        """Ask ``target`` for its MAC on ``link`` (ARP or neighbour solicitation).

        Sends up to ``attempts`` requests, waiting ``timeout`` seconds after each; returns the
        MAC of the first answer, or None. Raises PermissionError without CAP_NET_RAW.
        """
        ...


class Origin(StrEnum):
    """Where a resolved value came from."""

    GIVEN = "given"
    ROUTE = "route"
    PREFERRED_SOURCE = "route (preferred source)"
    INTERFACE_ADDRESS = "interface address"
    INTERFACE_PRIMARY = "interface primary address"
    GATEWAY = "gateway"
    ON_LINK = "on-link"
    MULTICAST = "multicast"
    BROADCAST_ADDRESS = "broadcast address"
    BROADCAST_OPTION = "broadcast (--broadcast)"
    MULTICAST_GROUP = "multicast group address"
    NEIGHBOUR_TABLE = "neighbour table"
    ARP_PROBE = "ARP probe"
    NDP_PROBE = "NDP probe"


class Provenance(str):
    """An :class:`Origin` with its detail (the routing table, the neighbour state).

    It reads, prints and compares as the phrase users see (``route (table 100)``,
    ``neighbour table (STALE)``); code decides on :attr:`origin`.
    """

    origin: Origin
    detail: str

    def __new__(cls, origin: Origin, detail: str = "") -> Provenance:
        self = super().__new__(cls, f"{origin.value} ({detail})" if detail else origin.value)
        self.origin, self.detail = origin, detail
        return self


class Caution(str):
    """A warning about a resolution: its text, and a stable :attr:`code` to decide on."""

    code: str

    def __new__(cls, code: str, text: str) -> Caution:
        self = super().__new__(cls, text)
        self.code = code
        return self


@dataclass(frozen=True)
class Resolution:
    """What netconsole needs to reach one collector, and where each value came from."""

    remote_ip: IPAddress
    dev_name: str
    dev_source: Provenance  # given, route (table N)
    local_ip: IPAddress
    local_source: Provenance  # given, route (preferred source), interface address
    next_hop: IPAddress
    next_hop_source: Provenance  # gateway, on-link, multicast, broadcast address
    remote_mac: str
    mac_source: Provenance  # given, neighbour table (STATE), ARP/NDP probe, ...
    warnings: tuple[Caution, ...] = field(default=())
    remote_name: str | None = None  # the host name remote_ip was resolved from, if any

    def to_json(self) -> dict[str, object]:
        return {
            "remote_ip": str(self.remote_ip),
            "remote_name": self.remote_name,
            "dev_name": self.dev_name,
            "dev_source": self.dev_source,
            "local_ip": str(self.local_ip),
            "local_source": self.local_source,
            "next_hop": str(self.next_hop),
            "next_hop_source": self.next_hop_source,
            "remote_mac": self.remote_mac,
            "mac_source": self.mac_source,
            "warnings": list(self.warnings),
        }

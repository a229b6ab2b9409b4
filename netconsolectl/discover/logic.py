"""The decisions of discovery: which interface, source address, next hop and MAC netconsole gets.

Pure logic over a :class:`~netconsolectl.discover.model.NetworkView`; no I/O of its own. The rules
follow what the kernel does with a target (drivers/net/netconsole.c, net/core/netpoll.c):
netconsole sends raw Ethernet frames out of ``dev_name`` to ``remote_mac`` with no routing and no
ARP, refuses a device that has a master (EBUSY, "is a slave device"), and forces a down device up.
"""

from __future__ import annotations

import errno
import math
import socket
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from ipaddress import IPv4Address, IPv6Address

from netconsolectl.discover.model import (
    DEFAULT_ARP_RETRIES,
    DEFAULT_ARP_TIMEOUT,
    IFA_F_DADFAILED,
    IFA_F_DEPRECATED,
    IFA_F_SECONDARY,
    IFA_F_TEMPORARY,
    IFA_F_TENTATIVE,
    MAX_ARP_RETRIES,
    MAX_ARP_TIMEOUT,
    MIN_ARP_TIMEOUT,
    RT_TABLE_MAIN,
    RTN_BLACKHOLE,
    RTN_BROADCAST,
    RTN_LOCAL,
    RTN_MULTICAST,
    RTN_PROHIBIT,
    RTN_UNREACHABLE,
    Address,
    Caution,
    Link,
    NetworkView,
    Origin,
    Provenance,
    Resolution,
    Route,
    family_of,
)
from netconsolectl.errors import (
    ENOTSUPP,
    RUN_AS_ROOT,
    InvalidInput,
    KernelRefused,
    PermissionDenied,
)
from netconsolectl.facts import (
    ARPHRD_ETHER,
    BROADCAST_MAC,
    IFF_LOOPBACK,
    IFF_NOARP,
    multicast_mac,
)
from netconsolectl.sender import spec
from netconsolectl.sender.spec import IPAddress

Status = Callable[[str], AbstractContextManager[object]]

# Link kinds whose drivers set IFF_DISABLE_NETPOLL: enabling fails with ENOTSUPP
# ("doesn't support polling"). "hsr" covers PRP too.
NETPOLL_DISABLED_KINDS = frozenset({"netkit", "hsr"})
# Masters whose own device netconsole can use instead of the port.
USE_MASTER_KINDS = frozenset({"bridge", "bond", "team"})


# -- input validation ---------------------------------------------------------------------------
def parse_ip(value: object, what: str) -> IPAddress:
    """An address object as given, or a string checked like every other address (InvalidInput)."""
    if isinstance(value, IPv4Address | IPv6Address):
        if value.is_unspecified:
            raise InvalidInput(f"invalid {what} {value}: the unspecified address cannot be used")
        return value
    return spec.parse_ip(str(value), what)


# -- the decision -------------------------------------------------------------------------------
def resolve_on(
    network: NetworkView,
    remote_ip: object,
    *,
    dev: str | None = None,
    local_ip: object | None = None,
    remote_mac: str | None = None,
    broadcast: bool = False,
    arp_timeout: float = DEFAULT_ARP_TIMEOUT,
    arp_retries: int = DEFAULT_ARP_RETRIES,
    status: Status | None = None,
    fresh: bool = False,
) -> Resolution:
    """Fill in interface, source address and next-hop MAC for ``remote_ip`` (see package doc).

    ``fresh``: ask the next hop even when the neighbour table has a usable entry (an entry can
    name a MAC nobody has any more, e.g. a replaced gateway this host has not talked to).
    """
    remote = parse_ip(remote_ip, "remote IP")
    local, mac = _check_request(remote, dev, local_ip, remote_mac, broadcast, arp_timeout,
                                arp_retries)
    warnings: list[Caution] = []
    if dev is not None:
        link, route, dev_source = _given_dev(network, remote, dev, local, warnings)
    else:
        link, route, dev_source = _routed_dev(network, remote, local, warnings)
    local, local_source = _source(network, remote, route, link, local, warnings)
    next_hop, next_hop_source = _next_hop(remote, route)
    if mac is not None:
        _check_given_mac(mac, remote, next_hop, next_hop_source, warnings)
        mac_source = Provenance(Origin.GIVEN)
    elif broadcast:
        mac, mac_source = BROADCAST_MAC, Provenance(Origin.BROADCAST_OPTION)
        if next_hop_source.origin is Origin.GATEWAY:
            warnings.append(Caution(
                "broadcast-behind-gateway",
                f"{remote} is behind gateway {next_hop}: routers do not forward broadcast "
                "frames, so the collector will not receive them",
            ))
    elif next_hop_source.origin is Origin.MULTICAST:
        mac, mac_source = multicast_mac(remote), Provenance(Origin.MULTICAST_GROUP)
    elif next_hop_source.origin is Origin.BROADCAST_ADDRESS:
        mac, mac_source = BROADCAST_MAC, Provenance(Origin.BROADCAST_ADDRESS)
    else:
        mac, mac_source = _next_hop_mac(
            network, link, remote, next_hop, local, arp_timeout, arp_retries, status, warnings,
            fresh=fresh,
        )
    return Resolution(
        remote_ip=remote, dev_name=link.name, dev_source=dev_source,
        local_ip=local, local_source=local_source,
        next_hop=next_hop, next_hop_source=next_hop_source,
        remote_mac=mac, mac_source=mac_source, warnings=tuple(warnings),
    )


def _check_request(remote: IPAddress, dev: str | None, local_ip: object | None,
                   remote_mac: str | None, broadcast: bool, arp_timeout: float,
                   arp_retries: int) -> tuple[IPAddress | None, str | None]:
    """Refuse what no network could satisfy, before asking it; the local IP and MAC given."""
    if dev is not None:
        spec.validate_ifname(dev)
    local: IPAddress | None = None
    if local_ip is not None:
        local = parse_ip(local_ip, "local IP")
        if local.version != remote.version:
            raise InvalidInput(
                f"local IP {local} and remote IP {remote} are of different families",
                hint="netconsole sends IPv4 or IPv6, not a mix: give addresses of one family",
            )
    mac = spec.parse_mac(remote_mac) if remote_mac is not None else None
    if mac is not None and broadcast:
        raise InvalidInput("--remote-mac and --broadcast contradict each other; give one")
    if not (math.isfinite(arp_timeout) and MIN_ARP_TIMEOUT <= arp_timeout <= MAX_ARP_TIMEOUT):
        raise InvalidInput(
            f"ARP timeout must be between {MIN_ARP_TIMEOUT:g} and {MAX_ARP_TIMEOUT:g} s"
        )
    if not 1 <= arp_retries <= MAX_ARP_RETRIES:
        raise InvalidInput(f"ARP retries must be between 1 and {MAX_ARP_RETRIES}")
    if remote.version == 6 and remote.is_link_local and dev is None:
        raise InvalidInput(
            f"{remote} is link-local: it needs an interface",
            hint="give --dev IFACE",
        )
    return local, mac


def _given_dev(network: NetworkView, remote: IPAddress, dev: str, local: IPAddress | None,
               warnings: list[Caution]) -> tuple[Link, Route, Provenance]:
    """The interface given (--dev): the kernel must route ``remote`` out of it."""
    link = _link_by_name(network, dev)
    _check_link(network, link, warnings)
    route = _route(network, remote, link=link, src=local)
    _check_route_type(network, remote, route, link)
    if route.oif != link.index:
        other = _name_of(network, route.oif)
        raise KernelRefused(
            f"the kernel routes {remote} out of {other}, not {dev}, even when asked for {dev}",
            hint=f"use --dev {other}, or add a route to {remote} via {dev}",
        )
    try:
        preferred = network.route_get(remote, src=local)
    except OSError:
        preferred = None
    if preferred is not None and preferred.oif not in (0, link.index):
        other = _name_of(network, preferred.oif)
        warnings.append(Caution(
            "dev-overrides-route",
            f"the routing table sends {remote} out of {other}; --dev {dev} overrides it",
        ))
    return link, route, Provenance(Origin.GIVEN)


def _routed_dev(network: NetworkView, remote: IPAddress, local: IPAddress | None,
                warnings: list[Caution]) -> tuple[Link, Route, Provenance]:
    """The interface the routing table chooses for ``remote``."""
    route = _route(network, remote, link=None, src=local)
    _check_route_type(network, remote, route, None)
    if not route.oif:
        raise KernelRefused(f"the route to {remote} has no output interface",
                            hint="give --dev IFACE")
    link = network.link_by_index(route.oif)
    _check_route_type(network, remote, route, link)
    _check_link(network, link, warnings)
    return link, route, Provenance(Origin.ROUTE, "" if route.table == RT_TABLE_MAIN
                                   else f"table {route.table}")


def _next_hop(remote: IPAddress, route: Route) -> tuple[IPAddress, Provenance]:
    """Where the frame goes on this link. netconsole does no routing, so for a collector
    behind a router the frame must be addressed to the router."""
    if route.type == RTN_MULTICAST or remote.is_multicast:
        return remote, Provenance(Origin.MULTICAST)
    if route.type == RTN_BROADCAST or remote == IPv4Address("255.255.255.255"):
        return remote, Provenance(Origin.BROADCAST_ADDRESS)
    if route.gateway is not None:
        return route.gateway, Provenance(Origin.GATEWAY)
    return remote, Provenance(Origin.ON_LINK)


# -- steps ------------------------------------------------------------------------------------
def _check_given_mac(mac: str, remote: IPAddress, next_hop: IPAddress, next_hop_source: Provenance,
                     warnings: list[Caution]) -> None:
    """A --remote-mac netconsole could send to: unicast, or broadcast / a multicast group's."""
    fix = "give the next hop's MAC, or leave --remote-mac out to have it resolved"
    if mac == "00:00:00:00:00:00":
        raise InvalidInput(f"--remote-mac {mac} is all zeros, which no interface has", hint=fix)
    first = int(mac.split(":", 1)[0], 16)
    if mac == BROADCAST_MAC:
        if next_hop_source.origin is Origin.GATEWAY:
            warnings.append(Caution(
                "broadcast-behind-gateway",
                f"{remote} is behind gateway {next_hop}: routers do not forward broadcast "
                "frames, so the collector will not receive them"))
    elif first & 1 and next_hop_source.origin is not Origin.MULTICAST:
        # The group bit: a frame to it reaches whoever listens to that group, not the next hop.
        raise InvalidInput(
            f"--remote-mac {mac} is a multicast address; netconsole needs the next hop's "
            f"unicast MAC for {remote}", hint=fix + f" (or --broadcast for {BROADCAST_MAC})")


def _name_of(network: NetworkView, index: int) -> str:
    try:
        return network.link_by_index(index).name
    except OSError:
        return f"interface index {index}"


def _link_by_name(network: NetworkView, name: str) -> Link:
    try:
        return network.link_by_name(name)
    except OSError as e:
        if e.errno == errno.ENODEV:
            raise KernelRefused(
                f"there is no interface named {name} in this network namespace",
                hint="list interfaces with: ip -br link",
                errno=errno.ENODEV,
            ) from None
        raise KernelRefused(f"cannot look up interface {name}: {e.strerror}", errno=e.errno) from e


def _check_link(network: NetworkView, link: Link, warnings: list[Caution]) -> None:
    """Refuse what netconsole cannot use; warn about what it may use badly."""
    name = link.name
    if link.flags & IFF_LOOPBACK:
        raise KernelRefused(
            f"{name} is the loopback device; netconsole needs an Ethernet interface",
            hint="give the collector's address on the network, or --dev with an Ethernet NIC",
        )
    if link.arphrd != ARPHRD_ETHER:
        kind = f" ({link.kind})" if link.kind else ""
        raise KernelRefused(
            f"{name}{kind} has no Ethernet header (link type {link.type_name}); netconsole "
            "sends only Ethernet frames",
            hint="use an Ethernet interface (the one this tunnel or link runs over) with --dev",
        )
    if link.kind == "vrf":
        raise KernelRefused(
            f"{name} is a VRF device; netconsole sends frames out of one Ethernet interface",
            hint="give that interface with --dev (netconsole refuses VRF ports too: EBUSY)",
        )
    if link.kind in NETPOLL_DISABLED_KINDS:
        raise KernelRefused(
            f"{name} is a {link.kind} device, which does not support netpoll; netconsole "
            f"refuses it (\"{name} doesn't support polling\")",
            hint="use a physical Ethernet interface with --dev",
            errno=ENOTSUPP,
        )
    if link.master is not None:
        _refuse_port(network, link)
    if not link.up:
        # Enabling a target on a down device makes netconsole bring it up (dev_open) and wait
        # for carrier; a configuration tool must not switch on an interface someone switched
        # off, and no next hop can be resolved over a down link anyway.
        raise KernelRefused(
            f"{name} is down; netconsole would force it up when the target is enabled",
            hint=f"bring it up first (ip link set {name} up) or choose another --dev",
            errno=errno.ENETDOWN,
        )
    if not link.lower_up:
        warnings.append(Caution(
            "no-carrier", f"{name} has no carrier: frames are dropped until the link comes up"))
    if link.wireless:
        warnings.append(Caution(
            "wireless",
            f"{name} is a wireless device: netpoll over Wi-Fi is unreliable, prefer a wired "
            "interface",
        ))


def _refuse_port(network: NetworkView, link: Link) -> None:
    assert link.master is not None
    try:
        master = network.link_by_index(link.master)
        mname, mkind = master.name, master.kind or "master"
    except OSError:
        mname, mkind = f"interface index {link.master}", "master"
    if mkind in USE_MASTER_KINDS:
        message = f"{link.name} is a port of {mkind} {mname}; use --dev {mname}"
        hint = f"netconsole refuses ports (\"{link.name} is a slave device\"); the {mkind} works"
    elif mkind == "openvswitch":
        message = f"{link.name} is a port of the Open vSwitch datapath {mname}"
        hint = "use the OVS bridge's internal interface with --dev"
    elif mkind == "vrf":
        message = f"{link.name} is enslaved to VRF {mname}; netconsole refuses devices that have " \
                  "a master"
        hint = "use an interface outside the VRF"
    else:
        message = f"{link.name} has master {mname} ({mkind}); netconsole refuses devices that " \
                  "have a master"
        hint = f"try --dev {mname}"
    raise KernelRefused(message, hint=hint, errno=errno.EBUSY)


def _route(network: NetworkView, remote: IPAddress, *, link: Link | None, src: IPAddress | None
           ) -> Route:
    via = f" out of {link.name}" if link is not None else ""
    frm = f" from {src}" if src is not None else ""
    try:
        return network.route_get(remote, oif=link.index if link else None, src=src)
    except OSError as e:
        code = e.errno
        if code == errno.ENETUNREACH:
            message = f"no route to {remote}{frm}{via}"
            hint = (f"add a route to {remote} via {link.name}, or leave out --dev"
                    if link is not None else
                    "add a route, or give --dev IFACE for an on-link collector")
        elif code == errno.EHOSTUNREACH:
            message = f"{remote} is unreachable: an unreachable route matches it{frm}"
            hint = "check the routing table: ip route get " + str(remote)
        elif code == errno.EACCES:
            message = f"routing to {remote}{frm} is prohibited by a route or rule"
            hint = "check: ip rule; ip route get " + str(remote)
        elif code == errno.EINVAL and src is not None:
            message = f"the kernel refused to route {remote} from {src}{via}: {e.strerror}"
            hint = f"is {src} an address of this machine? (ip -br addr)"
        else:
            message = f"route lookup for {remote}{frm}{via} failed: {e.strerror}"
            hint = "check: ip route get " + str(remote)
        raise KernelRefused(message, hint=hint, errno=code) from None


def _check_route_type(network: NetworkView, remote: IPAddress, route: Route, link: Link | None
                      ) -> None:
    if route.type == RTN_LOCAL or (link is not None and link.flags & IFF_LOOPBACK):
        raise KernelRefused(
            f"{remote} is an address of this machine (its route goes through loopback); "
            "netconsole needs a remote collector",
            hint="give the collector's address",
        )
    if route.type in (RTN_BLACKHOLE, RTN_UNREACHABLE, RTN_PROHIBIT):
        raise KernelRefused(f"the route to {remote} discards packets (blackhole, unreachable "
                            "or prohibit)", hint="check: ip route get " + str(remote))


_UNSTABLE_WHY = {
    "dadfailed": "failed duplicate address detection",
    "tentative": "tentative (duplicate address detection is still running)",
    "temporary": "a temporary (privacy) address that will change",
    "deprecated": "deprecated (its preferred lifetime is over)",
}


def _unstable(addr: Address) -> str | None:
    """Why an IPv6 address is a poor netconsole source (a key of _UNSTABLE_WHY), or None."""
    if addr.address.version != 6:
        return None
    for flag, label in ((IFA_F_DADFAILED, "dadfailed"), (IFA_F_TENTATIVE, "tentative"),
                        (IFA_F_TEMPORARY, "temporary"), (IFA_F_DEPRECATED, "deprecated")):
        if addr.flags & flag:
            return label
    return None


def _same_scope(a: IPAddress, remote: IPAddress) -> bool:
    return a.version == remote.version and (
        remote.version == 4 or a.is_link_local == remote.is_link_local
    )


def _source(
    network: NetworkView,
    remote: IPAddress,
    route: Route,
    link: Link,
    given: IPAddress | None,
    warnings: list[Caution],
) -> tuple[IPAddress, Provenance]:
    family = family_of(remote)
    addrs = network.addresses(link.index, family)
    by_ip = {a.address: a for a in addrs}
    if given is not None:
        if given not in by_ip:
            warnings.append(Caution("local-ip-elsewhere",
                                    f"local IP {given} is not assigned to {link.name}"))
        elif (why := _unstable(by_ip[given])) is not None:
            warnings.append(Caution(
                "unstable-source", f"local IP {given} is {_UNSTABLE_WHY[why]}; prefer a stable "
                "address"))
        return given, Provenance(Origin.GIVEN)

    stable = [a for a in addrs if _same_scope(a.address, remote) and _unstable(a) is None]
    if route.prefsrc is not None:
        chosen = by_ip.get(route.prefsrc)
        why = _unstable(chosen) if chosen is not None else None
        if why is None:
            return route.prefsrc, Provenance(Origin.PREFERRED_SOURCE)
        if stable:
            return stable[0].address, Provenance(Origin.INTERFACE_ADDRESS,
                                             f"stable; route preferred {why} one")
        warnings.append(Caution(
            "unstable-source", f"source {route.prefsrc} is {_UNSTABLE_WHY[why]}, and {link.name} "
            "has no stable address to use instead; consider --local-ip"))
        return route.prefsrc, Provenance(Origin.PREFERRED_SOURCE)

    # No preferred source in the route: take the interface's primary address, which is what
    # netconsole itself would pick for an unset local_ip.
    if family == socket.AF_INET:
        primary = [a for a in addrs if not a.flags & IFA_F_SECONDARY]
        if primary:
            return primary[0].address, Provenance(Origin.INTERFACE_PRIMARY)
    else:
        if stable:
            return stable[0].address, Provenance(Origin.INTERFACE_ADDRESS)
        scoped = [a for a in addrs if _same_scope(a.address, remote)
                  and not a.flags & IFA_F_DADFAILED]
        if scoped:
            why = _unstable(scoped[0]) or "tentative"  # never None: stable is empty
            warnings.append(Caution(
                "unstable-source", f"source {scoped[0].address} is {_UNSTABLE_WHY[why]}; "
                f"{link.name} has no stable address, consider --local-ip"))
            return scoped[0].address, Provenance(Origin.INTERFACE_ADDRESS)
    version = "IPv4" if family == socket.AF_INET else "IPv6"
    raise KernelRefused(
        f"{link.name} has no {version} address to send from",
        hint="give --local-ip, or add an address to the interface",
        errno=errno.EDESTADDRREQ,
    )


def _next_hop_mac(
    network: NetworkView,
    link: Link,
    remote: IPAddress,
    next_hop: IPAddress,
    local: IPAddress,
    timeout: float,
    attempts: int,
    status: Status | None,
    warnings: list[Caution],
    *,
    fresh: bool = False,
) -> tuple[str, Provenance]:
    neigh = network.neighbour(next_hop, link.index)
    if neigh is not None and neigh.usable and not (fresh and neigh.state_name != "PERMANENT"):
        assert neigh.lladdr is not None
        return neigh.lladdr, Provenance(Origin.NEIGHBOUR_TABLE, neigh.state_name)
    what = f"next hop {next_hop}" + (f" (gateway for {remote})" if next_hop != remote else "")
    fix = "give --remote-mac MAC (the next hop's MAC), or --broadcast to send to " \
          f"{BROADCAST_MAC}"
    if link.flags & IFF_NOARP:
        raise KernelRefused(
            f"{link.name} does not use ARP (NOARP) and the neighbour table has no address for "
            f"{what}",
            hint=fix,
        )
    proto = "ARP" if next_hop.version == 4 else "NDP"
    # The kernel does the ARP for an IPv4 route via an IPv6 gateway with NDP, and so do we.
    with (status or _no_status)(f"Asking for the MAC of {next_hop} on {link.name} ({proto})"):
        try:
            mac = network.probe(link, next_hop, local if local.version == next_hop.version
                                else None, timeout, attempts)
        except PermissionError:
            raise PermissionDenied(
                f"probing {link.name} for the MAC of {what} needs CAP_NET_RAW",
                hint=f"{RUN_AS_ROOT}, or {fix}",
            ) from None
        except OSError as e:
            raise KernelRefused(f"cannot probe {what} on {link.name}: {e.strerror}",
                                hint=fix, errno=e.errno) from None
    if mac is None:
        kernel = f"; the kernel's entry is {neigh.state_name}" if neigh is not None else ""
        requests = "ARP request" if proto == "ARP" else "neighbour solicitation"
        plural = "s" if attempts != 1 else ""
        # With --dev off the routing table's path, IPv4 treats the remote as on-link there:
        # say so, it is the likely reason for the silence.
        context = "".join(f" ({w})" for w in warnings if w.code == "dev-overrides-route")
        raise KernelRefused(
            f"no answer from {what} on {link.name}: {attempts} {requests}{plural}, "
            f"{timeout:g} s each{kernel}{context}",
            hint=fix,
        )
    return mac, Provenance(Origin.ARP_PROBE if proto == "ARP" else Origin.NDP_PROBE)


def _no_status(_message: str) -> AbstractContextManager[object]:
    return nullcontext()

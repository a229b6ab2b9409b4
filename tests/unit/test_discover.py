"""Decision logic of discovery, with a small fake standing in for the host's network."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest

from netconsolectl.discover import Resolution, resolve
from netconsolectl.discover.model import (
    IFA_F_DEPRECATED,
    IFA_F_SECONDARY,
    IFA_F_TEMPORARY,
    IFA_F_TENTATIVE,
    NUD_DELAY,
    NUD_FAILED,
    NUD_INCOMPLETE,
    NUD_NOARP,
    NUD_PERMANENT,
    NUD_PROBE,
    NUD_REACHABLE,
    NUD_STALE,
    RTN_BROADCAST,
    RTN_LOCAL,
    RTN_MULTICAST,
    Address,
    IPAddress,
    Link,
    Neighbour,
    Route,
)
from netconsolectl.errors import InvalidInput, KernelRefused, PermissionDenied
from netconsolectl.facts import IFF_LOOPBACK, IFF_LOWER_UP, IFF_NOARP, IFF_UP

UP = IFF_UP | IFF_LOWER_UP
ETH0_MAC = "52:54:00:00:00:01"
PEER_MAC = "52:54:00:00:00:02"
GW_MAC = "52:54:00:00:00:fe"


def ip(text: str) -> IPAddress:
    return ip_address(text)


@dataclass
class FakeNetwork:
    """Links, a routing function, addresses, a neighbour table and who answers probes."""

    links: dict[int, Link] = field(default_factory=dict)
    # (dst, oif or None, src or None) -> Route or errno; (dst, None, None) also serves any src
    routes: dict[tuple[IPAddress, int | None, IPAddress | None], Route | int] = field(
        default_factory=dict)
    addrs: list[Address] = field(default_factory=list)
    neighbours: list[Neighbour] = field(default_factory=list)
    answers: dict[IPAddress, str] = field(default_factory=dict)  # probe target -> MAC
    probe_error: OSError | None = None
    probes: list[tuple[str, IPAddress, IPAddress | None, float, int]] = field(
        default_factory=list)
    neighbour_lookups: int = 0

    def add_link(self, index: int, name: str, *, arphrd: int = 1, flags: int = UP,
                 mac: str | None = ETH0_MAC, **kw: object) -> Link:
        link = Link(index=index, name=name, arphrd=arphrd, flags=flags, mac=mac, **kw)  # type: ignore[arg-type]
        self.links[index] = link
        return link

    def link_by_name(self, name: str) -> Link:
        for link in self.links.values():
            if link.name == name:
                return link
        raise OSError(errno.ENODEV, "No such device")

    def link_by_index(self, index: int) -> Link:
        if index in self.links:
            return self.links[index]
        raise OSError(errno.ENODEV, "No such device")

    def route_get(self, dst: IPAddress, *, oif: int | None = None,
                  src: IPAddress | None = None) -> Route:
        for key in ((dst, oif, src), (dst, oif, None)):
            if key in self.routes:
                found = self.routes[key]
                if isinstance(found, int):
                    raise OSError(found, "route error")
                return found
        raise OSError(errno.ENETUNREACH, "Network is unreachable")

    def addresses(self, index: int, family: int) -> list[Address]:
        return [a for a in self.addrs if a.index == index and a.family == family]

    def neighbour(self, address: IPAddress, index: int) -> Neighbour | None:
        self.neighbour_lookups += 1
        for n in self.neighbours:
            if n.address == address and n.index == index:
                return n
        return None

    def probe(self, link: Link, target: IPAddress, source: IPAddress | None, timeout: float,
              attempts: int) -> str | None:
        self.probes.append((link.name, target, source, timeout, attempts))
        if self.probe_error is not None:
            raise self.probe_error
        return self.answers.get(target)


@pytest.fixture
def net() -> FakeNetwork:
    """eth0 (index 2) on 192.0.2.0/24 and 2001:db8::/64 with gateway .1 / fe80::1."""
    n = FakeNetwork()
    n.add_link(1, "lo", arphrd=772, flags=UP | IFF_LOOPBACK, mac="00:00:00:00:00:00")
    n.add_link(2, "eth0")
    n.addrs += [
        Address(ip("192.0.2.10"), 24, 2),
        Address(ip("2001:db8::10"), 64, 2),
        Address(ip("fe80::10"), 64, 2, scope=253),
    ]
    n.routes[(ip("192.0.2.20"), None, None)] = Route(oif=2, prefsrc=ip("192.0.2.10"))
    n.routes[(ip("192.0.2.20"), 2, None)] = Route(oif=2, prefsrc=ip("192.0.2.10"))
    n.routes[(ip("198.51.100.7"), None, None)] = Route(
        oif=2, gateway=ip("192.0.2.1"), prefsrc=ip("192.0.2.10"))
    n.routes[(ip("2001:db8::20"), None, None)] = Route(oif=2, prefsrc=ip("2001:db8::10"))
    n.routes[(ip("2001:db8:9::7"), None, None)] = Route(
        oif=2, gateway=ip("fe80::1"), prefsrc=ip("2001:db8::10"))
    n.answers = {ip("192.0.2.20"): PEER_MAC, ip("192.0.2.1"): GW_MAC,
                 ip("2001:db8::20"): PEER_MAC, ip("fe80::1"): GW_MAC}
    return n


def run(net: FakeNetwork, remote: str, **kw: object) -> Resolution:
    return resolve(remote, netlink=net, **kw)  # type: ignore[arg-type]


def refused(net: FakeNetwork, remote: str, *needles: str, **kw: object) -> KernelRefused:
    with pytest.raises(KernelRefused) as info:
        run(net, remote, **kw)
    for needle in needles:
        assert needle in str(info.value) + " " + (info.value.hint or ""), info.value
    assert info.value.exit_code == 1
    return info.value


# -- the ordinary paths -------------------------------------------------------------------------
def test_on_link_collector_cold_cache_is_probed(net: FakeNetwork) -> None:
    res = run(net, "192.0.2.20", arp_timeout=0.5, arp_retries=4)
    assert (res.dev_name, res.dev_source) == ("eth0", "route")
    assert (res.local_ip, res.local_source) == (ip("192.0.2.10"), "route (preferred source)")
    assert (res.next_hop, res.next_hop_source) == (ip("192.0.2.20"), "on-link")
    assert (res.remote_mac, res.mac_source) == (PEER_MAC, "ARP probe")
    assert net.probes == [("eth0", ip("192.0.2.20"), ip("192.0.2.10"), 0.5, 4)]
    assert res.warnings == ()


def test_collector_behind_gateway_gets_the_gateway_mac(net: FakeNetwork) -> None:
    res = run(net, "198.51.100.7")
    assert (res.next_hop, res.next_hop_source) == (ip("192.0.2.1"), "gateway")
    assert res.remote_mac == GW_MAC
    assert net.probes[0][1] == ip("192.0.2.1")


@pytest.mark.parametrize(
    ("state", "name"),
    [(NUD_REACHABLE, "REACHABLE"), (NUD_STALE, "STALE"), (NUD_DELAY, "DELAY"),
     (NUD_PROBE, "PROBE"), (NUD_PERMANENT, "PERMANENT"), (NUD_NOARP, "NOARP")],
)
def test_usable_neighbour_entries_avoid_the_probe(net: FakeNetwork, state: int, name: str
                                                  ) -> None:
    net.neighbours.append(Neighbour(ip("192.0.2.20"), 2, state, "02:aa:bb:cc:dd:ee"))
    res = run(net, "192.0.2.20")
    assert (res.remote_mac, res.mac_source) == ("02:aa:bb:cc:dd:ee", f"neighbour table ({name})")
    assert net.probes == []


@pytest.mark.parametrize("state", [NUD_FAILED, NUD_INCOMPLETE, 0])
def test_unusable_neighbour_entries_are_probed_over(net: FakeNetwork, state: int) -> None:
    net.neighbours.append(Neighbour(ip("192.0.2.20"), 2, state,
                                    None if state == NUD_INCOMPLETE else "02:00:00:00:00:99"))
    res = run(net, "192.0.2.20")
    assert (res.remote_mac, res.mac_source) == (PEER_MAC, "ARP probe")


def test_neighbour_entry_on_another_interface_does_not_count(net: FakeNetwork) -> None:
    net.add_link(3, "eth1", mac="52:54:00:00:00:03")
    net.neighbours.append(Neighbour(ip("192.0.2.20"), 3, NUD_REACHABLE, "02:00:00:00:00:99"))
    assert run(net, "192.0.2.20").mac_source == "ARP probe"


def test_ipv6_on_link_and_routed_use_ndp(net: FakeNetwork) -> None:
    res = run(net, "2001:db8::20")
    assert (res.remote_mac, res.mac_source, res.next_hop_source) == (PEER_MAC, "NDP probe",
                                                                     "on-link")
    res = run(net, "2001:db8:9::7")
    assert (res.next_hop, res.remote_mac) == (ip("fe80::1"), GW_MAC)
    assert res.local_ip == ip("2001:db8::10")


def test_ipv4_route_via_ipv6_gateway_probes_with_ndp(net: FakeNetwork) -> None:
    net.routes[(ip("203.0.113.5"), None, None)] = Route(
        oif=2, gateway=ip("fe80::1"), prefsrc=ip("192.0.2.10"))
    res = run(net, "203.0.113.5")
    assert (res.next_hop, res.remote_mac, res.mac_source) == (ip("fe80::1"), GW_MAC, "NDP probe")
    assert net.probes[-1][2] is None  # the IPv4 source is no use for a solicitation


def test_policy_routing_table_is_reported(net: FakeNetwork) -> None:
    net.routes[(ip("198.51.100.7"), None, None)] = Route(
        oif=2, gateway=ip("192.0.2.1"), prefsrc=ip("192.0.2.10"), table=100)
    assert run(net, "198.51.100.7").dev_source == "route (table 100)"


def test_given_local_ip_is_passed_to_the_route_lookup(net: FakeNetwork) -> None:
    net.add_link(3, "eth1", mac="52:54:00:00:00:03")
    net.addrs.append(Address(ip("10.1.0.5"), 24, 3))
    net.routes[(ip("198.51.100.7"), None, ip("10.1.0.5"))] = Route(
        oif=3, gateway=ip("10.1.0.1"), prefsrc=ip("10.1.0.5"))
    net.answers[ip("10.1.0.1")] = "02:00:00:00:10:01"
    res = run(net, "198.51.100.7", local_ip="10.1.0.5")
    assert (res.dev_name, res.local_ip, res.local_source) == ("eth1", ip("10.1.0.5"), "given")
    assert res.remote_mac == "02:00:00:00:10:01"


def test_given_values_are_kept_and_mac_is_not_looked_up(net: FakeNetwork) -> None:
    res = run(net, "192.0.2.20", dev="eth0", local_ip="192.0.2.10",
              remote_mac="02:AA:BB:CC:DD:EE")
    assert (res.dev_source, res.local_source, res.mac_source) == ("given", "given", "given")
    assert res.remote_mac == "02:aa:bb:cc:dd:ee"
    assert net.probes == [] and net.neighbour_lookups == 0


def test_address_objects_are_accepted(net: FakeNetwork) -> None:
    res = run(net, IPv4Address("192.0.2.20"), local_ip=IPv4Address("192.0.2.10"))  # type: ignore[arg-type]
    assert res.local_ip == IPv4Address("192.0.2.10")


def test_broadcast_skips_the_probe_and_warns_behind_a_gateway(net: FakeNetwork) -> None:
    res = run(net, "192.0.2.20", broadcast=True)
    assert (res.remote_mac, res.mac_source) == ("ff:ff:ff:ff:ff:ff", "broadcast (--broadcast)")
    assert res.warnings == () and net.probes == []
    res = run(net, "198.51.100.7", broadcast=True)
    assert any("routers do not forward broadcast" in w for w in res.warnings)


def test_multicast_and_broadcast_destinations_need_no_probe(net: FakeNetwork) -> None:
    net.routes[(ip("239.1.2.3"), None, None)] = Route(oif=2, type=RTN_MULTICAST,
                                                      prefsrc=ip("192.0.2.10"))
    net.routes[(ip("192.0.2.255"), None, None)] = Route(oif=2, type=RTN_BROADCAST,
                                                        prefsrc=ip("192.0.2.10"))
    net.routes[(ip("ff0e::1:2"), None, None)] = Route(oif=2, type=RTN_MULTICAST,
                                                      prefsrc=ip("2001:db8::10"))
    assert run(net, "239.1.2.3").remote_mac == "01:00:5e:01:02:03"
    assert run(net, "ff0e::1:2").remote_mac == "33:33:00:01:00:02"
    assert run(net, "192.0.2.255").remote_mac == "ff:ff:ff:ff:ff:ff"
    assert net.probes == []


def test_to_json_shape(net: FakeNetwork) -> None:
    data = run(net, "198.51.100.7").to_json()
    assert data == {
        "remote_ip": "198.51.100.7", "dev_name": "eth0", "dev_source": "route",
        "local_ip": "192.0.2.10", "local_source": "route (preferred source)",
        "next_hop": "192.0.2.1", "next_hop_source": "gateway", "remote_mac": GW_MAC,
        "mac_source": "ARP probe", "warnings": [], "remote_name": None,
    }


@pytest.mark.parametrize(("mac", "message"), [
    ("00:00:00:00:00:00", "--remote-mac 00:00:00:00:00:00 is all zeros, which no interface has"),
    ("01:00:5e:00:00:01", "--remote-mac 01:00:5e:00:00:01 is a multicast address; netconsole "
                          "needs the next hop's unicast MAC for 198.51.100.7"),
])
def test_given_mac_must_be_unicast(net: FakeNetwork, mac: str, message: str) -> None:
    net.routes[(ip("198.51.100.7"), 2, None)] = net.routes[(ip("198.51.100.7"), None, None)]
    with pytest.raises(InvalidInput) as info:
        run(net, "198.51.100.7", dev="eth0", local_ip="192.0.2.10", remote_mac=mac)
    assert str(info.value) == message
    assert net.probes == []


def test_given_broadcast_mac_behind_a_gateway_warns(net: FakeNetwork) -> None:
    net.routes[(ip("198.51.100.7"), 2, None)] = net.routes[(ip("198.51.100.7"), None, None)]
    res = run(net, "198.51.100.7", dev="eth0", local_ip="192.0.2.10",
              remote_mac="FF:FF:FF:FF:FF:FF")
    assert res.remote_mac == "ff:ff:ff:ff:ff:ff"
    assert any("routers do not forward broadcast frames" in w for w in res.warnings)


def test_spinner_runs_only_while_probing(net: FakeNetwork) -> None:
    from netconsolectl.discover.logic import resolve_on

    shown: list[str] = []

    @contextmanager
    def status(message: str) -> Iterator[None]:
        shown.append(message)
        yield

    resolve_on(net, "192.0.2.20", status=status)
    assert shown == ["Asking for the MAC of 192.0.2.20 on eth0 (ARP)"]
    net.neighbours.append(Neighbour(ip("192.0.2.1"), 2, NUD_REACHABLE, GW_MAC))
    resolve_on(net, "198.51.100.7", status=status)
    assert len(shown) == 1


# -- failures -----------------------------------------------------------------------------------
def test_silent_next_hop_names_it_and_suggests_overrides(net: FakeNetwork) -> None:
    del net.answers[ip("192.0.2.1")]
    net.neighbours.append(Neighbour(ip("192.0.2.1"), 2, NUD_FAILED, None))
    err = refused(net, "198.51.100.7", "192.0.2.1", "gateway for 198.51.100.7", "eth0",
                  "3 ARP requests", "FAILED", "--remote-mac", "--broadcast")
    assert err.hint is not None


def test_silent_ipv6_next_hop(net: FakeNetwork) -> None:
    del net.answers[ip("2001:db8::20")]
    refused(net, "2001:db8::20", "neighbour solicitations", "eth0", "--remote-mac")


def test_probe_without_privileges_is_permission_denied(net: FakeNetwork) -> None:
    net.probe_error = PermissionError(errno.EPERM, "Operation not permitted")
    with pytest.raises(PermissionDenied) as info:
        run(net, "192.0.2.20")
    assert info.value.exit_code == 77
    assert "CAP_NET_RAW" in str(info.value) and "--remote-mac" in (info.value.hint or "")


def test_probe_os_error_is_refused(net: FakeNetwork) -> None:
    net.probe_error = OSError(errno.ENETDOWN, "Network is down")
    refused(net, "192.0.2.20", "cannot probe", "Network is down")


@pytest.mark.parametrize(
    ("code", "needle"),
    [(errno.ENETUNREACH, "no route to 203.0.113.9"),
     (errno.EHOSTUNREACH, "unreachable route"),
     (errno.EACCES, "prohibited"),
     (errno.EINVAL, "route lookup for 203.0.113.9 failed")],
)
def test_route_errors(net: FakeNetwork, code: int, needle: str) -> None:
    net.routes[(ip("203.0.113.9"), None, None)] = code
    assert refused(net, "203.0.113.9", needle).errno == code


def test_route_error_with_a_foreign_source(net: FakeNetwork) -> None:
    net.routes[(ip("192.0.2.20"), None, ip("10.9.9.9"))] = errno.EINVAL
    refused(net, "192.0.2.20", "from 10.9.9.9", "address of this machine", local_ip="10.9.9.9")


def test_local_address_is_refused(net: FakeNetwork) -> None:
    net.routes[(ip("192.0.2.10"), None, None)] = Route(oif=1, type=RTN_LOCAL,
                                                       prefsrc=ip("192.0.2.10"))
    refused(net, "192.0.2.10", "address of this machine")


def test_loopback_dev_is_refused(net: FakeNetwork) -> None:
    refused(net, "192.0.2.20", "lo is the loopback device", dev="lo")


@pytest.mark.parametrize(
    ("arphrd", "kind", "needle"),
    [(65534, "wireguard", "wg0 (wireguard) has no Ethernet header (link type none)"),
     (65534, "tun", "(tun) has no Ethernet header"),
     (512, None, "link type ppp"),
     (768, "ipip", "link type ipip"),
     (778, "gre", "link type gre")],
)
def test_l3_devices_are_refused(net: FakeNetwork, arphrd: int, kind: str | None, needle: str
                                ) -> None:
    net.add_link(5, "wg0", arphrd=arphrd, kind=kind, mac=None, flags=UP | IFF_NOARP)
    net.routes[(ip("10.8.0.2"), None, None)] = Route(oif=5, prefsrc=ip("10.8.0.1"))
    refused(net, "10.8.0.2", needle, "Ethernet")


@pytest.mark.parametrize(
    ("kind", "needles"),
    [("bridge", ("eth1 is a port of bridge br0; use --dev br0", "slave device")),
     ("bond", ("eth1 is a port of bond br0; use --dev br0",)),
     ("team", ("port of team br0",)),
     ("openvswitch", ("Open vSwitch", "internal interface")),
     ("vrf", ("enslaved to VRF br0",)),
     ("macsec", ("has master br0 (macsec)",))],
)
def test_ports_are_refused_naming_the_master(net: FakeNetwork, kind: str,
                                             needles: tuple[str, ...]) -> None:
    net.add_link(3, "br0", kind=kind, mac="52:54:00:00:00:b0")
    net.add_link(4, "eth1", master=3, mac="52:54:00:00:00:e1")
    net.routes[(ip("192.0.2.20"), 4, None)] = Route(oif=4)
    assert refused(net, "192.0.2.20", *needles, dev="eth1").errno == errno.EBUSY


def test_route_through_a_port_is_refused_too(net: FakeNetwork) -> None:
    net.add_link(3, "br0", kind="bridge", mac="52:54:00:00:00:b0")
    net.add_link(4, "eth1", master=3, mac="52:54:00:00:00:e1")
    net.routes[(ip("10.5.0.2"), None, None)] = Route(oif=4, prefsrc=ip("10.5.0.1"))
    refused(net, "10.5.0.2", "use --dev br0")


def test_vrf_and_netpoll_less_devices_are_refused(net: FakeNetwork) -> None:
    net.add_link(6, "blue", kind="vrf", flags=UP | IFF_NOARP)
    refused(net, "192.0.2.20", "blue is a VRF device", dev="blue")
    net.add_link(7, "nk0", kind="netkit")
    assert refused(net, "192.0.2.20", "does not support netpoll", dev="nk0").errno == 524


def test_down_interface_is_refused(net: FakeNetwork) -> None:
    net.add_link(8, "eth2", flags=0, mac="52:54:00:00:00:e2")
    err = refused(net, "192.0.2.20", "eth2 is down", "force it up", "ip link set eth2 up",
                  dev="eth2")
    assert err.errno == errno.ENETDOWN


def test_no_carrier_and_wireless_warn(net: FakeNetwork) -> None:
    net.links[2] = Link(2, "eth0", 1, IFF_UP, ETH0_MAC, wireless=True)
    res = run(net, "192.0.2.20")
    assert any("no carrier" in w for w in res.warnings)
    assert any("wireless" in w and "unreliable" in w for w in res.warnings)


def test_noarp_link_without_entry_is_refused_without_probing(net: FakeNetwork) -> None:
    net.links[2] = Link(2, "eth0", 1, UP | IFF_NOARP, ETH0_MAC)
    refused(net, "192.0.2.20", "NOARP", "--remote-mac")
    assert net.probes == []


def test_unknown_dev_is_refused(net: FakeNetwork) -> None:
    assert refused(net, "192.0.2.20", "no interface named eth9", dev="eth9").errno == errno.ENODEV


def test_given_dev_differing_from_the_routing_table_warns(net: FakeNetwork) -> None:
    net.add_link(3, "eth1", mac="52:54:00:00:00:03")
    net.addrs.append(Address(ip("10.1.0.5"), 24, 3))
    net.routes[(ip("192.0.2.20"), 3, None)] = Route(oif=3, prefsrc=ip("10.1.0.5"))
    net.answers[ip("192.0.2.20")] = PEER_MAC
    res = run(net, "192.0.2.20", dev="eth1")
    assert res.dev_name == "eth1"
    assert any("sends 192.0.2.20 out of eth0" in w for w in res.warnings)


def test_kernel_ignoring_the_given_dev_is_refused(net: FakeNetwork) -> None:
    net.add_link(3, "eth1", mac="52:54:00:00:00:03")
    net.routes[(ip("192.0.2.20"), 3, None)] = Route(oif=2, prefsrc=ip("192.0.2.10"))
    refused(net, "192.0.2.20", "out of eth0, not eth1", dev="eth1")


# -- source address -----------------------------------------------------------------------------
def test_ipv4_without_prefsrc_takes_the_primary_address(net: FakeNetwork) -> None:
    net.addrs.insert(0, Address(ip("192.0.2.99"), 24, 2, flags=IFA_F_SECONDARY))
    net.routes[(ip("192.0.2.20"), None, None)] = Route(oif=2)
    res = run(net, "192.0.2.20")
    assert (res.local_ip, res.local_source) == (ip("192.0.2.10"), "interface primary address")


def test_no_address_of_the_family_is_refused(net: FakeNetwork) -> None:
    net.addrs = [a for a in net.addrs if a.address.version == 6]
    net.routes[(ip("192.0.2.20"), None, None)] = Route(oif=2)
    assert refused(net, "192.0.2.20", "eth0 has no IPv4 address", "--local-ip").errno == \
        errno.EDESTADDRREQ


def test_ipv6_temporary_prefsrc_is_replaced_by_a_stable_address(net: FakeNetwork) -> None:
    net.addrs.insert(0, Address(ip("2001:db8::abcd"), 64, 2, flags=IFA_F_TEMPORARY))
    net.routes[(ip("2001:db8::20"), None, None)] = Route(oif=2, prefsrc=ip("2001:db8::abcd"))
    res = run(net, "2001:db8::20")
    assert res.local_ip == ip("2001:db8::10")
    assert "stable" in res.local_source and "temporary" in res.local_source
    assert res.warnings == ()


@pytest.mark.parametrize(("flag", "word"), [(IFA_F_TEMPORARY, "temporary"),
                                            (IFA_F_DEPRECATED, "deprecated")])
def test_ipv6_only_unstable_addresses_warn(net: FakeNetwork, flag: int, word: str) -> None:
    net.addrs = [Address(ip("2001:db8::abcd"), 64, 2, flags=flag),
                 Address(ip("fe80::10"), 64, 2, scope=253)]
    net.routes[(ip("2001:db8::20"), None, None)] = Route(oif=2, prefsrc=ip("2001:db8::abcd"))
    res = run(net, "2001:db8::20")
    assert res.local_ip == ip("2001:db8::abcd")
    assert any(word in w and "--local-ip" in w for w in res.warnings)


def test_ipv6_without_prefsrc_skips_tentative_and_temporary(net: FakeNetwork) -> None:
    net.addrs = [Address(ip("2001:db8::1"), 64, 2, flags=IFA_F_TENTATIVE),
                 Address(ip("2001:db8::2"), 64, 2, flags=IFA_F_TEMPORARY),
                 Address(ip("fe80::10"), 64, 2, scope=253),
                 Address(ip("2001:db8::3"), 64, 2)]
    net.routes[(ip("2001:db8::20"), None, None)] = Route(oif=2)
    res = run(net, "2001:db8::20")
    assert (res.local_ip, res.local_source) == (ip("2001:db8::3"), "interface address")


def test_ipv6_link_local_remote_needs_dev_and_gets_link_local_source(net: FakeNetwork) -> None:
    with pytest.raises(InvalidInput, match="link-local"):
        run(net, "fe80::20")
    net.routes[(ip("fe80::20"), 2, None)] = Route(oif=2)
    net.answers[ip("fe80::20")] = PEER_MAC
    res = run(net, "fe80::20", dev="eth0")
    assert res.local_ip == ip("fe80::10") and res.remote_mac == PEER_MAC


def test_given_unstable_or_foreign_local_ip_warns(net: FakeNetwork) -> None:
    net.addrs.append(Address(ip("2001:db8::abcd"), 64, 2, flags=IFA_F_TEMPORARY))
    net.routes[(ip("2001:db8::20"), None, ip("2001:db8::abcd"))] = Route(
        oif=2, prefsrc=ip("2001:db8::abcd"))
    res = run(net, "2001:db8::20", local_ip="2001:db8::abcd")
    assert any("temporary" in w for w in res.warnings)
    net.routes[(ip("192.0.2.20"), None, ip("192.0.2.77"))] = Route(oif=2)
    res = run(net, "192.0.2.20", local_ip="192.0.2.77")
    assert res.warnings == ("local IP 192.0.2.77 is not assigned to eth0",)


# -- invalid input ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("remote", "kw", "needle"),
    [("not/an/ip", {}, "not an IPv4 or IPv6 address"),
     ("0.0.0.0", {}, "unspecified"),
     ("192.0.2.20", {"local_ip": "2001:db8::10"}, "different families"),
     ("192.0.2.20", {"local_ip": "nope"}, "local IP"),
     ("192.0.2.20", {"dev": "a/b"}, "interface name"),
     ("192.0.2.20", {"dev": "x" * 16}, "interface name"),
     ("192.0.2.20", {"remote_mac": "02:00:00:00:00"}, "MAC"),
     ("192.0.2.20", {"remote_mac": PEER_MAC, "broadcast": True}, "--broadcast"),
     ("192.0.2.20", {"arp_timeout": 0.0}, "ARP timeout"),
     ("192.0.2.20", {"arp_timeout": float("nan")}, "ARP timeout"),
     ("192.0.2.20", {"arp_retries": 0}, "ARP retries")],
)
def test_invalid_input(net: FakeNetwork, remote: str, kw: dict[str, object], needle: str
                       ) -> None:
    with pytest.raises(InvalidInput) as info:
        run(net, remote, **kw)
    assert info.value.exit_code == 2
    assert needle in str(info.value)
    assert net.probes == []


def test_invalid_remote_without_a_fake_needs_no_netlink() -> None:
    with pytest.raises(InvalidInput):
        resolve("999.1.1.1")


def test_ipv6_family_constant_is_inet6() -> None:
    assert Address(IPv6Address("::1"), 128, 1).family == socket.AF_INET6


# -- wireless detection -------------------------------------------------------------------------
def test_wireless_is_read_from_sysfs_only_for_the_same_device(tmp_path: object) -> None:
    from pathlib import Path

    from netconsolectl.discover.netlink import HostNetwork

    sysfs = Path(str(tmp_path))
    dev = sysfs / "nctlwl0"
    (dev / "phy80211").mkdir(parents=True)
    (dev / "ifindex").write_text("7\n")
    (dev / "address").write_text(PEER_MAC + "\n")
    link = Link(7, "nctlwl0", 1, UP, PEER_MAC)
    with HostNetwork(sysfs=sysfs) as net:
        assert net._is_wireless(link)
        # Same name in another namespace's sysfs view: a different index or MAC.
        assert not net._is_wireless(Link(8, "nctlwl0", 1, UP, PEER_MAC))
        assert not net._is_wireless(Link(7, "nctlwl0", 1, UP, ETH0_MAC))


def test_unexpected_os_errors_become_one_refusal(net: FakeNetwork) -> None:
    def vanish(index: int) -> Link:
        raise OSError(errno.ENODEV, "No such device")

    net.link_by_index = vanish  # type: ignore[method-assign]
    assert refused(net, "192.0.2.20", "network lookup failed: No such device").errno == \
        errno.ENODEV

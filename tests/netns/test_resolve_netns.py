"""resolve() against the real kernel: namespaces, veth pairs, routes, rules and neighbours."""

from __future__ import annotations

import json
import socket
import time
from ipaddress import ip_address

import pytest

from netconsolectl.discover import Resolution, resolve
from netconsolectl.discover.netlink import HostNetwork
from netconsolectl.errors import KernelRefused
from tests.netns.conftest import C_MAC, H_MAC, R2_MAC, R_MAC, OnLink, Routed
from tests.netns.lab import Lab

pytestmark = pytest.mark.netns


def resolve_in(lab: Lab, ns: str, remote: str, **kw: object) -> Resolution:
    return lab.in_netns(ns, lambda: resolve(remote, **kw))  # type: ignore[arg-type]


def refused_in(lab: Lab, ns: str, remote: str, **kw: object) -> KernelRefused:
    with pytest.raises(KernelRefused) as info:
        resolve_in(lab, ns, remote, **kw)
    return info.value


def warm_up(lab: Lab, ns: str, remote: str, next_hop: str, dev: str) -> str:
    """Let the kernel resolve the next hop itself (one UDP datagram), return the entry state."""

    def send_and_wait() -> str:
        family = socket.AF_INET6 if ":" in remote else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.sendto(b"warm-up", (remote, 9))
        with HostNetwork() as net:
            index = net.link_by_name(dev).index
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                entry = net.neighbour(ip_address(next_hop), index)
                if entry is not None and entry.usable:
                    return entry.state_name
                time.sleep(0.02)
        raise AssertionError(f"the kernel did not resolve {next_hop}")

    return lab.in_netns(ns, send_and_wait)


# -- on-link collector --------------------------------------------------------------------------
@pytest.mark.parametrize(("remote", "local", "proto"),
                         [("10.0.0.2", "10.0.0.1", "ARP"), ("fd00::2", "fd00::1", "NDP")])
def test_on_link_cold_cache_probes_the_collector(onlink: OnLink, remote: str, local: str,
                                                 proto: str) -> None:
    res = resolve_in(onlink.lab, onlink.h, remote)
    assert (res.dev_name, res.dev_source) == ("eth0", "route")
    assert (str(res.local_ip), res.local_source) == (local, "route (preferred source)")
    assert (str(res.next_hop), res.next_hop_source) == (remote, "on-link")
    assert (res.remote_mac, res.mac_source) == (C_MAC, f"{proto} probe")
    assert res.warnings == ()


def test_link_local_collector_with_dev(onlink: OnLink) -> None:
    # EUI-64 link-local addresses derived from the fixed MACs.
    res = resolve_in(onlink.lab, onlink.h, "fe80::ff:fe00:2", dev="eth0")
    assert (str(res.local_ip), res.remote_mac, res.mac_source) == (
        "fe80::ff:fe00:1", C_MAC, "NDP probe")


@pytest.mark.parametrize("remote", ["10.0.0.2", "fd00::2"])
def test_on_link_warm_cache_uses_the_neighbour_table(onlink: OnLink, remote: str) -> None:
    state = warm_up(onlink.lab, onlink.h, remote, remote, "eth0")
    res = resolve_in(onlink.lab, onlink.h, remote)
    assert (res.remote_mac, res.mac_source) == (C_MAC, f"neighbour table ({state})")


def test_stale_entry_is_used_and_failed_entry_is_probed_over(onlink: OnLink) -> None:
    lab, h = onlink.lab, onlink.h
    lab.neigh(h, "replace", "10.0.0.2", "lladdr", C_MAC, "dev", "eth0", "nud", "stale")
    assert resolve_in(lab, h, "10.0.0.2").mac_source == "neighbour table (STALE)"
    # A wrong permanent entry wins, exactly as it would for the kernel's own traffic.
    lab.neigh(h, "replace", "10.0.0.2", "lladdr", "02:00:00:00:00:99", "dev", "eth0",
              "nud", "permanent")
    assert resolve_in(lab, h, "10.0.0.2").remote_mac == "02:00:00:00:00:99"
    lab.neigh(h, "del", "10.0.0.2", "dev", "eth0")
    lab.neigh(h, "add", "10.0.0.2", "dev", "eth0", "nud", "incomplete")
    assert resolve_in(lab, h, "10.0.0.2").mac_source == "ARP probe"


def test_broadcast_and_given_mac_send_nothing(onlink: OnLink) -> None:
    res = resolve_in(onlink.lab, onlink.h, "10.0.0.2", broadcast=True)
    assert (res.remote_mac, res.mac_source) == ("ff:ff:ff:ff:ff:ff", "broadcast (--broadcast)")
    res = resolve_in(onlink.lab, onlink.h, "10.0.0.77", remote_mac="02:00:00:00:00:77")
    assert (res.remote_mac, res.mac_source) == ("02:00:00:00:00:77", "given")


# -- collector behind a router ------------------------------------------------------------------
@pytest.mark.parametrize(("remote", "local", "gateway", "proto"),
                         [("10.0.2.2", "10.0.1.1", "10.0.1.254", "ARP"),
                          ("fd02::2", "fd01::1", "fe80::fe", "NDP")])
def test_routed_collector_gets_the_routers_mac(routed: Routed, remote: str, local: str,
                                               gateway: str, proto: str) -> None:
    res = resolve_in(routed.lab, routed.h, remote)
    assert (res.dev_name, str(res.local_ip)) == ("eth0", local)
    assert (str(res.next_hop), res.next_hop_source) == (gateway, "gateway")
    assert (res.remote_mac, res.mac_source) == (R_MAC, f"{proto} probe")
    assert res.remote_mac != C_MAC


def test_routed_warm_cache(routed: Routed) -> None:
    state = warm_up(routed.lab, routed.h, "10.0.2.2", "10.0.1.254", "eth0")
    res = resolve_in(routed.lab, routed.h, "10.0.2.2")
    assert (res.remote_mac, res.mac_source) == (R_MAC, f"neighbour table ({state})")


# -- silent next hops ---------------------------------------------------------------------------
@pytest.mark.parametrize(("remote", "words"),
                         [("10.0.0.99", "2 ARP requests"),
                          ("fd00::99", "2 neighbour solicitations")])
def test_silent_on_link_next_hop_fails_within_the_timeout(onlink: OnLink, remote: str,
                                                          words: str) -> None:
    start = time.monotonic()
    err = refused_in(onlink.lab, onlink.h, remote, arp_timeout=0.3, arp_retries=2)
    elapsed = time.monotonic() - start
    assert 0.55 <= elapsed < 0.6 + 0.5, elapsed
    assert f"no answer from next hop {remote} on eth0: {words}, 0.3 s each" in str(err)
    assert "--remote-mac" in (err.hint or "") and "--broadcast" in (err.hint or "")


def test_silent_gateway_is_named_as_the_gateway(routed: Routed) -> None:
    lab, h = routed.lab, routed.h
    lab.ip(h, "route", "add", "10.0.9.0/24", "via", "10.0.1.99")
    err = refused_in(lab, h, "10.0.9.9", arp_timeout=0.2, arp_retries=1)
    assert "next hop 10.0.1.99 (gateway for 10.0.9.9) on eth0" in str(err)


# -- policy routing -----------------------------------------------------------------------------
@pytest.fixture
def two_uplinks(lab: Lab) -> tuple[Lab, str]:
    """H with eth0 to router R1 (main table) and eth1 to router R2 (table 100)."""
    h, r1, r2 = lab.netns("h"), lab.netns("r1"), lab.netns("r2")
    lab.veth(h, "eth0", r1, "eth0", mac_b=R_MAC)
    lab.veth(h, "eth1", r2, "eth0", mac_b=R2_MAC)
    lab.addr(h, "eth0", "10.0.1.1/24", "fd01::1/64")
    lab.addr(h, "eth1", "10.0.3.1/24", "fd03::1/64")
    lab.addr(r1, "eth0", "10.0.1.254/24", "fd01::fe/64")
    lab.addr(r2, "eth0", "10.0.3.254/24", "fd03::fe/64")
    lab.ip(h, "route", "add", "10.9.9.0/24", "via", "10.0.1.254")
    lab.ip(h, "route", "add", "10.9.9.0/24", "via", "10.0.3.254", "table", "100")
    lab.ip(h, "-6", "route", "add", "fd09::/64", "via", "fd01::fe")
    lab.ip(h, "-6", "route", "add", "fd09::/64", "via", "fd03::fe", "table", "100")
    return lab, h


@pytest.mark.parametrize(("family", "collector", "other"),
                         [("-4", "10.9.9.9", "10.9.9.8"), ("-6", "fd09::9", "fd09::8")])
def test_policy_rule_sends_the_collector_out_of_the_second_interface(
        two_uplinks: tuple[Lab, str], family: str, collector: str, other: str) -> None:
    lab, h = two_uplinks
    lab.ip(h, family, "rule", "add", "to", collector, "lookup", "100", "pref", "100")
    res = resolve_in(lab, h, collector)
    assert (res.dev_name, res.dev_source) == ("eth1", "route (table 100)")
    assert res.remote_mac == R2_MAC
    assert str(res.local_ip) in ("10.0.3.1", "fd03::1")
    res = resolve_in(lab, h, other)
    assert (res.dev_name, res.dev_source, res.remote_mac) == ("eth0", "route", R_MAC)


def test_source_rule_follows_the_given_local_ip(two_uplinks: tuple[Lab, str]) -> None:
    lab, h = two_uplinks
    lab.ip(h, "rule", "add", "from", "10.0.3.1", "lookup", "100", "pref", "100")
    assert resolve_in(lab, h, "10.9.9.9").dev_name == "eth0"
    res = resolve_in(lab, h, "10.9.9.9", local_ip="10.0.3.1")
    assert (res.dev_name, res.local_source, res.remote_mac) == ("eth1", "given", R2_MAC)
    assert res.next_hop == ip_address("10.0.3.254")


def test_given_dev_overrides_the_table_with_a_warning(two_uplinks: tuple[Lab, str]) -> None:
    lab, h = two_uplinks
    lab.ip(h, "route", "add", "default", "via", "10.0.3.254", "dev", "eth1")
    res = resolve_in(lab, h, "10.9.9.9", dev="eth1")
    assert (res.dev_name, res.dev_source, res.remote_mac) == ("eth1", "given", R2_MAC)
    assert any("sends 10.9.9.9 out of eth0" in w for w in res.warnings)


def test_given_dev_without_a_route_there(two_uplinks: tuple[Lab, str]) -> None:
    lab, h = two_uplinks
    # IPv4 assumes the destination is on-link on the given device; say why nothing answers.
    err = refused_in(lab, h, "10.9.9.9", dev="eth1", arp_timeout=0.2, arp_retries=1)
    assert "no answer from next hop 10.9.9.9 on eth1: 1 ARP request, 0.2 s each" in str(err)
    assert "(the routing table sends 10.9.9.9 out of eth0; --dev eth1 overrides it)" in str(err)
    # IPv6 has no such fallback.
    err = refused_in(lab, h, "fd09::9", dev="eth1")
    assert str(err) == "no route to fd09::9 out of eth1"
    assert err.hint == "add a route to fd09::9 via eth1, or leave out --dev"


# -- refusals -----------------------------------------------------------------------------------
def test_bridge_port_is_refused_naming_the_master(lab: Lab) -> None:
    h, c = lab.netns("h"), lab.netns("c")
    lab.ip(h, "link", "add", "br0", "type", "bridge")
    lab.veth(h, "eth1", c, "eth0", mac_b=C_MAC)
    lab.ip(h, "link", "set", "eth1", "master", "br0")
    lab.ip(h, "link", "set", "br0", "up")
    lab.addr(h, "br0", "10.0.5.1/24")
    lab.addr(c, "eth0", "10.0.5.2/24")
    err = refused_in(lab, h, "10.0.5.2", dev="eth1")
    assert str(err) == "eth1 is a port of bridge br0; use --dev br0"
    # Left to the routing table, the bridge itself is chosen and the collector found through it.
    res = resolve_in(lab, h, "10.0.5.2")
    assert (res.dev_name, res.remote_mac, res.mac_source) == ("br0", C_MAC, "ARP probe")


def test_local_and_loopback_destinations_are_refused(onlink: OnLink) -> None:
    lab, h = onlink.lab, onlink.h
    for remote in ("127.0.0.1", "10.0.0.1", "::1", "fd00::1"):
        assert "is an address of this machine" in str(refused_in(lab, h, remote)), remote
    assert "lo is the loopback device" in str(refused_in(lab, h, "10.0.0.2", dev="lo"))


def test_down_interface_is_refused(onlink: OnLink) -> None:
    lab, h, c = onlink.lab, onlink.h, onlink.c
    lab.veth(h, "eth2", c, "eth2", up=False)
    err = refused_in(lab, h, "10.0.0.2", dev="eth2")
    assert "eth2 is down; netconsole would force it up" in str(err)


def test_l3_tun_device_is_refused(lab: Lab) -> None:
    h = lab.netns("h")
    try:
        lab.ip(h, "tuntap", "add", "tun0", "mode", "tun")
    except RuntimeError as e:
        pytest.skip(f"no tun support: {e}")
    lab.ip(h, "link", "set", "tun0", "up")
    lab.addr(h, "tun0", "10.8.0.1/24")
    err = refused_in(lab, h, "10.8.0.2", dev="tun0")
    assert str(err).startswith("tun0 (tun) has no Ethernet header (link type none)")


def test_noarp_link_without_entry_is_refused(onlink: OnLink) -> None:
    lab, h = onlink.lab, onlink.h
    lab.ip(h, "link", "set", "eth0", "arp", "off")
    assert "NOARP" in str(refused_in(lab, h, "10.0.0.2"))
    lab.neigh(h, "replace", "10.0.0.2", "lladdr", C_MAC, "dev", "eth0", "nud", "permanent")
    assert resolve_in(lab, h, "10.0.0.2").remote_mac == C_MAC


def test_missing_carrier_warns(onlink: OnLink) -> None:
    lab, h, c = onlink.lab, onlink.h, onlink.c
    lab.ip(c, "link", "set", "eth0", "down")
    res = resolve_in(lab, h, "10.0.0.2", remote_mac=C_MAC)
    assert res.warnings == ("eth0 has no carrier: frames are dropped until the link comes up",)


# -- IPv6 source address ------------------------------------------------------------------------
def test_ipv6_deprecated_source_is_avoided_or_warned(onlink: OnLink) -> None:
    lab, h = onlink.lab, onlink.h
    lab.ip(h, "addr", "del", "fd00::1/64", "dev", "eth0")
    lab.ip(h, "addr", "add", "fd00::1/64", "dev", "eth0", "nodad", "preferred_lft", "0")
    res = resolve_in(lab, h, "fd00::2", remote_mac=C_MAC)
    assert str(res.local_ip) == "fd00::1"
    assert any("deprecated" in w for w in res.warnings), res.warnings
    lab.addr(h, "eth0", "fd00::5/64")
    res = resolve_in(lab, h, "fd00::2", remote_mac=C_MAC)
    assert str(res.local_ip) == "fd00::5" and res.warnings == ()


# -- the lookups against an independent implementation (iproute2) ------------------------------
def test_route_answers_match_iproute2(routed: Routed) -> None:
    def ours() -> list[tuple[object, ...]]:
        out = []
        with HostNetwork() as net:
            for dst in ("10.0.2.2", "10.0.1.254", "fd02::2"):
                route = net.route_get(ip_address(dst))
                out.append((net.link_by_index(route.oif).name,
                            str(route.gateway) if route.gateway else None, str(route.prefsrc)))
        return out

    theirs = []
    for dst in ("10.0.2.2", "10.0.1.254", "fd02::2"):
        (r,) = json.loads(routed.lab.ip(routed.h, "-j", "route", "get", dst))
        theirs.append((r["dev"], r.get("gateway"), r["prefsrc"]))
    assert routed.lab.in_netns(routed.h, ours) == theirs
    mac = routed.lab.mac(routed.h, "eth0")
    assert mac == H_MAC

"""The wire side of discovery: ARP/NDP frames checked against scapy, rtnetlink parsing."""

from __future__ import annotations

import errno
import logging
import socket
import struct
from ipaddress import IPv4Address, IPv6Address

import pytest

from netconsolectl.discover import probe, rtnl

logging.getLogger("scapy").setLevel(logging.ERROR)  # scapy warns on import about routes etc.
scapy_l2 = pytest.importorskip("scapy.layers.l2")
scapy_inet6 = pytest.importorskip("scapy.layers.inet6")
Ether, ARP = scapy_l2.Ether, scapy_l2.ARP
IPv6 = scapy_inet6.IPv6

OURS = "02:00:00:00:00:01"
THEIRS = "02:00:00:00:00:02"


# -- ARP ----------------------------------------------------------------------------------------
def test_arp_request_dissects_as_a_broadcast_who_has() -> None:
    frame = probe.arp_request(OURS, IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2"))
    assert len(frame) == 60
    pkt = Ether(frame)
    assert (pkt.dst, pkt.src, pkt.type) == ("ff:ff:ff:ff:ff:ff", OURS, 0x0806)
    arp = pkt[ARP]
    assert (arp.op, arp.hwsrc, arp.psrc, arp.hwdst, arp.pdst) == (
        1, OURS, "10.0.0.1", "00:00:00:00:00:00", "10.0.0.2")


def test_arp_reply_is_recognised_only_from_the_target() -> None:
    reply = bytes(Ether(dst=OURS, src=THEIRS) / ARP(op=2, hwsrc=THEIRS, psrc="10.0.0.2",
                                                    hwdst=OURS, pdst="10.0.0.1"))
    assert probe.parse_arp_reply(reply, IPv4Address("10.0.0.2")) == THEIRS
    assert probe.parse_arp_reply(reply, IPv4Address("10.0.0.3")) is None
    request = bytes(Ether(src=THEIRS) / ARP(op=1, hwsrc=THEIRS, psrc="10.0.0.2"))
    assert probe.parse_arp_reply(request, IPv4Address("10.0.0.2")) is None
    assert probe.parse_arp_reply(reply[:30], IPv4Address("10.0.0.2")) is None
    other = bytes(Ether(dst=OURS, src=THEIRS, type=0x0800) / (b"\0" * 28))
    assert probe.parse_arp_reply(other, IPv4Address("10.0.0.2")) is None


# -- NDP ----------------------------------------------------------------------------------------
def test_solicited_node_group_and_its_mac() -> None:
    group = probe.solicited_node(IPv6Address("fd00::12:3456:789a"))
    assert group == IPv6Address("ff02::1:ff56:789a")
    assert probe.multicast_mac(group) == bytes.fromhex("3333ff56789a")


def test_neighbour_solicitation_dissects_with_a_valid_checksum() -> None:
    src, target = IPv6Address("fe80::1"), IPv6Address("fd00::2")
    frame = probe.neighbour_solicitation(OURS, src, target)
    pkt = Ether(frame)
    assert (pkt.dst, pkt.src, pkt.type) == ("33:33:ff:00:00:02", OURS, 0x86DD)
    ip6 = pkt[IPv6]
    assert (ip6.src, ip6.dst, ip6.hlim, ip6.nh) == ("fe80::1", "ff02::1:ff00:2", 255, 58)
    ns = pkt[scapy_inet6.ICMPv6ND_NS]
    assert (ns.type, ns.code, ns.tgt) == (135, 0, "fd00::2")
    assert pkt[scapy_inet6.ICMPv6NDOptSrcLLAddr].lladdr == OURS
    # Let scapy compute the checksum from scratch and compare.
    theirs = IPv6(bytes(ip6))
    del theirs[scapy_inet6.ICMPv6ND_NS].cksum
    assert IPv6(bytes(theirs))[scapy_inet6.ICMPv6ND_NS].cksum == ns.cksum


def _advert(target: str, *, tlla: str | None, hlim: int = 255) -> bytes:
    na = scapy_inet6.ICMPv6ND_NA(tgt=target, R=0, S=1, O=1)
    if tlla is not None:
        na = na / scapy_inet6.ICMPv6NDOptDstLLAddr(lladdr=tlla)
    return bytes(Ether(dst=OURS, src=THEIRS) / IPv6(src=target, dst="fe80::1", hlim=hlim) / na)


def test_neighbour_advert_parsing() -> None:
    target = IPv6Address("fd00::2")
    assert probe.parse_neighbour_advert(_advert("fd00::2", tlla="02:00:00:00:00:aa"),
                                        target) == "02:00:00:00:00:aa"
    assert probe.parse_neighbour_advert(_advert("fd00::2", tlla=None), target) == THEIRS
    assert probe.parse_neighbour_advert(_advert("fd00::3", tlla=THEIRS), target) is None
    assert probe.parse_neighbour_advert(_advert("fd00::2", tlla=THEIRS, hlim=64), target) is None
    solicitation = probe.neighbour_solicitation(THEIRS, IPv6Address("fd00::2"), target)
    assert probe.parse_neighbour_advert(solicitation, target) is None


# -- rtnetlink ----------------------------------------------------------------------------------
def test_link_message_parsing() -> None:
    info = rtnl._attr(rtnl.IFLA_INFO_KIND, b"veth\0")
    body = struct.pack("=BxHiII", socket.AF_UNSPEC, 1, 7, 0x11043, 0)
    body += rtnl._attr(rtnl.IFLA_IFNAME, b"eth1\0")
    body += rtnl._attr(rtnl.IFLA_ADDRESS, bytes.fromhex("020000000002"))
    body += rtnl._attr(rtnl.IFLA_MASTER, struct.pack("=I", 3))
    body += rtnl._attr(rtnl.IFLA_OPERSTATE, b"\x06")
    body += rtnl._attr(rtnl.IFLA_LINKINFO | 0x8000, info)  # NLA_F_NESTED set
    link = rtnl.parse_link(body)
    assert (link.index, link.name, link.arphrd, link.mac, link.kind, link.master) == (
        7, "eth1", 1, THEIRS, "veth", 3)
    assert link.up and link.lower_up and link.operstate == 6


def test_error_message_carries_errno_and_extended_ack() -> None:
    request = struct.pack("=IHHII", 16, rtnl.RTM_GETROUTE, 1, 5, 0)
    payload = struct.pack("=i", -errno.ENETUNREACH) + request
    payload += rtnl._attr(rtnl.NLMSGERR_ATTR_MSG, b"Nexthop has invalid gateway\0")
    with pytest.raises(OSError) as info:
        rtnl.Rtnl._raise_error(payload, rtnl.NLM_F_CAPPED | rtnl.NLM_F_ACK_TLVS)
    assert info.value.errno == errno.ENETUNREACH
    assert "(Nexthop has invalid gateway)" in str(info.value)
    rtnl.Rtnl._raise_error(struct.pack("=i", 0) + request, 0)  # a plain ack raises nothing

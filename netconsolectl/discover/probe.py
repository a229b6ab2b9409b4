"""Active next-hop probes: ARP requests (IPv4) and neighbour solicitations (IPv6).

Frames are built and parsed here and sent on an ``AF_PACKET`` socket bound to the egress
interface, the same way netconsole itself sends: a raw Ethernet frame out of one device, no
routing. The builders and parsers are pure functions so they can be checked without a network.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from ipaddress import IPv4Address, IPv6Address

ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
PACKET_OUTGOING = 4
ICMPV6_NS = 135
ICMPV6_NA = 136
ND_OPT_SOURCE_LL = 1
ND_OPT_TARGET_LL = 2
IPPROTO_ICMPV6 = 58

_ETH = struct.Struct("!6s6sH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_MIN_FRAME = 60  # shortest Ethernet frame without FCS; pad so no driver has to


def mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def mac_str(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _pad(frame: bytes) -> bytes:
    return frame + b"\0" * (_MIN_FRAME - len(frame)) if len(frame) < _MIN_FRAME else frame


# -- ARP ------------------------------------------------------------------------------------------
def arp_request(src_mac: str, src_ip: IPv4Address, target: IPv4Address) -> bytes:
    """Broadcast "who has ``target``, tell ``src_ip``" (RFC 826)."""
    eth = _ETH.pack(b"\xff" * 6, mac_bytes(src_mac), ETH_P_ARP)
    arp = _ARP.pack(1, 0x0800, 6, 4, 1, mac_bytes(src_mac), src_ip.packed, b"\0" * 6,
                    target.packed)
    return _pad(eth + arp)


def parse_arp_reply(frame: bytes, target: IPv4Address) -> str | None:
    """The sender MAC if ``frame`` is an ARP reply from ``target``."""
    if len(frame) < _ETH.size + _ARP.size:
        return None
    _dst, _src, ethertype = _ETH.unpack_from(frame)
    if ethertype != ETH_P_ARP:
        return None
    htype, ptype, hlen, plen, op, sha, spa, _tha, _tpa = _ARP.unpack_from(frame, _ETH.size)
    if (htype, ptype, hlen, plen, op) != (1, 0x0800, 6, 4, 2) or spa != target.packed:
        return None
    return mac_str(sha)


# -- IPv6 neighbour discovery (RFC 4861) ---------------------------------------------------------
def solicited_node(target: IPv6Address) -> IPv6Address:
    return IPv6Address(b"\xff\x02" + b"\0" * 9 + b"\x01\xff" + target.packed[13:])


def multicast_mac(group: IPv6Address) -> bytes:
    return b"\x33\x33" + group.packed[12:]


def _icmpv6_checksum(src: IPv6Address, dst: IPv6Address, message: bytes) -> int:
    pseudo = src.packed + dst.packed + struct.pack("!I3xB", len(message), IPPROTO_ICMPV6)
    data = pseudo + message
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def neighbour_solicitation(src_mac: str, src_ip: IPv6Address, target: IPv6Address) -> bytes:
    """Multicast NS for ``target`` to its solicited-node group, with our link-layer address."""
    group = solicited_node(target)
    body = struct.pack("!BBHI", ICMPV6_NS, 0, 0, 0) + target.packed
    body += struct.pack("!BB", ND_OPT_SOURCE_LL, 1) + mac_bytes(src_mac)
    checksum = _icmpv6_checksum(src_ip, group, body)
    body = body[:2] + struct.pack("!H", checksum) + body[4:]
    # Version 6, no traffic class or flow label; hop limit 255 as RFC 4861 requires.
    ipv6 = _IPV6.pack(6 << 28, len(body), IPPROTO_ICMPV6, 255, src_ip.packed, group.packed)
    eth = _ETH.pack(multicast_mac(group), mac_bytes(src_mac), ETH_P_IPV6)
    return _pad(eth + ipv6 + body)


def parse_neighbour_advert(frame: bytes, target: IPv6Address) -> str | None:
    """The advertised MAC if ``frame`` is a neighbour advertisement for ``target``."""
    start = _ETH.size + _IPV6.size
    if len(frame) < start + 24:
        return None
    _dst, eth_src, ethertype = _ETH.unpack_from(frame)
    if ethertype != ETH_P_IPV6:
        return None
    _vtf, plen, next_header, hop_limit, _src, _dst6 = _IPV6.unpack_from(frame, _ETH.size)
    if next_header != IPPROTO_ICMPV6 or hop_limit != 255:
        return None
    icmp = frame[start : start + plen]
    if len(icmp) < 24 or icmp[0] != ICMPV6_NA or icmp[1] != 0 or icmp[8:24] != target.packed:
        return None
    offset = 24
    while offset + 8 <= len(icmp):
        opt_type, opt_len = icmp[offset], icmp[offset + 1]
        if opt_len == 0:
            break
        if opt_type == ND_OPT_TARGET_LL and opt_len == 1:
            return mac_str(icmp[offset + 2 : offset + 8])
        offset += opt_len * 8
    # An NA may omit the option when it answers a unicast solicitation; the frame's source is
    # then the advertiser's own address.
    return mac_str(eth_src)


# -- I/O ------------------------------------------------------------------------------------------
def probe(
    ifname: str,
    src_mac: str,
    source: IPv4Address | IPv6Address,
    target: IPv4Address | IPv6Address,
    timeout: float,
    attempts: int,
) -> str | None:
    """Send up to ``attempts`` requests out of ``ifname``; the first answer's MAC, or None.

    Each request is followed by a wait of ``timeout`` seconds; an answer to an earlier request
    that arrives late still counts. Raises PermissionError without CAP_NET_RAW.
    """
    if isinstance(target, IPv4Address):
        assert isinstance(source, IPv4Address)
        ethertype = ETH_P_ARP
        request = arp_request(src_mac, source, target)

        def answer(frame: bytes) -> str | None:
            return parse_arp_reply(frame, target)
    else:
        assert isinstance(source, IPv6Address)
        ethertype = ETH_P_IPV6
        request = neighbour_solicitation(src_mac, source, target)

        def answer(frame: bytes) -> str | None:
            return parse_neighbour_advert(frame, target)

    # Protocol 0 at creation, the real one at bind: a socket created with a protocol hooks
    # into every device first and bind() must unhook it again, which waits for an RCU grace
    # period (synchronize_net, several ms). Closing costs one such wait regardless.
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0) as sock:
        sock.bind((ifname, ethertype))
        for _ in range(attempts):
            sock.send(request)
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                ready, _w, _x = select.select([sock], [], [], left)
                if not ready:
                    break
                frame, addr = sock.recvfrom(2048)
                if addr[2] == PACKET_OUTGOING:  # our own request, looped back to the socket
                    continue
                mac = answer(frame)
                if mac is not None:
                    return mac
    return None

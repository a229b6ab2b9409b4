"""Active next-hop probes with scapy: an ARP request (IPv4) or a neighbour solicitation (IPv6).

The request goes out of the egress interface as a raw Ethernet frame, the way netconsole itself
sends (no routing), on scapy's Linux L2 socket bound to that interface and to one EtherType.

scapy must not change the machine:

* the socket is opened **without promiscuous mode**. scapy's default (``conf.sniff_promisc``)
  adds a PACKET_MR_PROMISC membership, and the kernel then logs "<dev>: entered promiscuous
  mode" (net/core/dev.c, __dev_set_promiscuity) - a line every netconsole target would carry
  to the collector. An ARP reply or a neighbour advertisement is addressed to our MAC (or
  broadcast), so promiscuous reception is never needed;
* scapy's loggers are quietened before it is imported, so nothing about missing routes or IPv6
  is printed;
* the socket is closed in ``finally``, so Ctrl-C during a probe leaves nothing behind (without
  promiscuous mode there is no interface state to undo).

Only the layers one family needs are imported: ``scapy.layers.l2`` for ARP, and
``scapy.layers.inet6`` (which is heavier) for neighbour discovery.
"""

from __future__ import annotations

import logging
import select
import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import TYPE_CHECKING, Any

from netconsolectl.facts import BROADCAST_MAC, multicast_mac

if TYPE_CHECKING:
    from scapy.packet import Packet

ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
MIN_FRAME = 60  # shortest Ethernet frame without FCS; pad so no driver has to
ARP_REPLY = 2


def quiet_scapy() -> None:
    """Keep scapy's import-time warnings (no default route, no IPv6) off stderr."""
    for name in ("scapy", "scapy.runtime", "scapy.loading"):
        log = logging.getLogger(name)
        if log.level == logging.NOTSET:
            log.setLevel(logging.ERROR)


def _pad(frame: Packet) -> Packet:
    from scapy.packet import Padding

    short = MIN_FRAME - len(frame)
    return frame / Padding(load=b"\0" * short) if short > 0 else frame


def arp_request(src_mac: str, source: IPv4Address, target: IPv4Address) -> Packet:
    """Broadcast "who has ``target``, tell ``source``" (RFC 826)."""
    quiet_scapy()
    from scapy.layers.l2 import ARP, Ether

    frame: Packet = Ether(dst=BROADCAST_MAC, src=src_mac, type=ETH_P_ARP) / ARP(
        op=1, hwsrc=src_mac, psrc=str(source), hwdst="00:00:00:00:00:00", pdst=str(target))
    return _pad(frame)


def arp_answer(frame: Packet, target: IPv4Address) -> str | None:
    """The sender MAC if ``frame`` is an ARP reply from ``target``."""
    from scapy.layers.l2 import ARP

    if ARP not in frame:
        return None
    arp: Any = frame[ARP]
    if arp.op != ARP_REPLY or arp.ptype != 0x0800 or arp.psrc != str(target):
        return None
    return str(arp.hwsrc).lower()


def neighbour_solicitation(src_mac: str, source: IPv6Address, target: IPv6Address) -> Packet:
    """A solicitation for ``target`` to its solicited-node group, with our link-layer address."""
    quiet_scapy()
    from scapy.layers.inet6 import ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6
    from scapy.layers.l2 import Ether

    # RFC 4291 2.7.1: ff02::1:ffXX:XXXX from the target's low 24 bits.
    group = IPv6Address(b"\xff\x02" + b"\0" * 9 + b"\x01\xff" + target.packed[13:])
    group_mac = multicast_mac(group)
    # Hop limit 255 as RFC 4861 requires; scapy computes the ICMPv6 checksum.
    frame: Packet = (Ether(dst=group_mac, src=src_mac, type=ETH_P_IPV6)
                     / IPv6(src=str(source), dst=str(group), hlim=255)
                     / ICMPv6ND_NS(tgt=str(target))
                     / ICMPv6NDOptSrcLLAddr(lladdr=src_mac))
    return frame


def advert_answer(frame: Packet, target: IPv6Address) -> str | None:
    """The advertised MAC if ``frame`` is a neighbour advertisement for ``target``."""
    from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
    from scapy.layers.l2 import Ether

    if ICMPv6ND_NA not in frame or IPv6 not in frame:
        return None
    ipv6: Any = frame[IPv6]
    na: Any = frame[ICMPv6ND_NA]
    if ipv6.hlim != 255 or na.code != 0 or ip_address(na.tgt) != target:
        return None
    if ICMPv6NDOptDstLLAddr in frame:
        return str(frame[ICMPv6NDOptDstLLAddr].lladdr).lower()
    # An NA may omit the option when it answers a unicast solicitation; the frame's source is
    # then the advertiser's own address.
    return str(frame[Ether].src).lower()


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
    answer: Callable[[Packet], str | None]
    if isinstance(target, IPv4Address):
        assert isinstance(source, IPv4Address)
        ethertype = ETH_P_ARP
        request = arp_request(src_mac, source, target)

        def answer(frame: Packet) -> str | None:
            return arp_answer(frame, target)
    else:
        assert isinstance(source, IPv6Address)
        ethertype = ETH_P_IPV6
        request = neighbour_solicitation(src_mac, source, target)

        def answer(frame: Packet) -> str | None:
            return advert_answer(frame, target)

    from scapy.arch.linux import L2Socket

    # Bound to one EtherType, so the kernel hands us ARP (or IPv6) frames only; scapy drops
    # our own request when the kernel loops it back (PACKET_OUTGOING).
    sock = L2Socket(iface=ifname, type=ethertype, promisc=False)
    try:
        for _ in range(attempts):
            sock.send(request)
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                ready, _w, _x = select.select([sock.fileno()], [], [], left)
                if not ready:
                    break
                frame = sock.recv()
                if frame is None:
                    continue
                mac = answer(frame)
                if mac is not None:
                    return mac
    finally:
        sock.close()
    return None

"""A minimal rtnetlink client: route get, link get, address dump, neighbour get.

Only the four read-only requests discovery needs, encoded and decoded with ``struct`` over an
``AF_NETLINK`` socket. Going straight to the socket keeps ``resolve`` within its start-up
budget: importing pyroute2 alone costs more than the whole warm-path goal (see bench/resolve.py).
Errors become ``OSError`` carrying the kernel errno and, when the kernel sends one, its
extended-ack message.
"""

from __future__ import annotations

import contextlib
import errno as _errno
import os
import socket
import struct
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address, ip_address

from netconsolectl.discover.model import (
    Address,
    IPAddress,
    Link,
    Neighbour,
    Route,
    family_of,
)

NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11

NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_DUMP = 0x300
NLM_F_CAPPED = 0x100  # on NLMSG_ERROR: the request payload is not echoed
NLM_F_ACK_TLVS = 0x200  # on NLMSG_ERROR: extended-ack attributes follow
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSGERR_ATTR_MSG = 1

RTM_NEWLINK, RTM_GETLINK = 16, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
RTM_NEWNEIGH, RTM_GETNEIGH = 28, 30

RTM_F_LOOKUP_TABLE = 0x1000
RTA_DST, RTA_SRC, RTA_OIF, RTA_GATEWAY, RTA_PREFSRC, RTA_TABLE, RTA_VIA = 1, 2, 4, 5, 7, 15, 18
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MASTER, IFLA_OPERSTATE, IFLA_LINKINFO = 1, 3, 10, 16, 18
IFLA_EXT_MASK = 29
IFLA_INFO_KIND = 1
RTEXT_FILTER_SKIP_STATS = 1 << 3
IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS = 1, 2, 8
NDA_DST, NDA_LLADDR = 1, 2

_NLMSGHDR = struct.Struct("=IHHII")
_RTATTR = struct.Struct("=HH")
_RTMSG = struct.Struct("=BBBBBBBBI")
_IFINFOMSG = struct.Struct("=BxHiII")
_IFADDRMSG = struct.Struct("=BBBBI")
_NDMSG = struct.Struct("=BxxxiHBB")
_U32 = struct.Struct("=I")
_I32 = struct.Struct("=i")

_RECV_SIZE = 1 << 18


def _align(n: int) -> int:
    return (n + 3) & ~3


def _attr(kind: int, payload: bytes) -> bytes:
    length = _RTATTR.size + len(payload)
    return _RTATTR.pack(length, kind) + payload + b"\0" * (_align(length) - length)


def _attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    """Attributes of one message as {type: payload}; the nested bit is masked off."""
    out: dict[int, bytes] = {}
    while offset + _RTATTR.size <= len(data):
        length, kind = _RTATTR.unpack_from(data, offset)
        if length < _RTATTR.size:
            break
        out[kind & 0x3FFF] = data[offset + _RTATTR.size : offset + length]
        offset += _align(length)
    return out


def _ip(family: int, raw: bytes) -> IPAddress:
    if family == socket.AF_INET and len(raw) == 4:
        return IPv4Address(raw)
    if family == socket.AF_INET6 and len(raw) == 16:
        return IPv6Address(raw)
    raise ValueError(f"unexpected address of family {family}, {len(raw)} bytes")


def format_mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


class Rtnl:
    """One NETLINK_ROUTE socket in the caller's network namespace."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                   NETLINK_ROUTE)
        self._sock.bind((0, 0))
        for opt in (NETLINK_EXT_ACK, NETLINK_CAP_ACK):
            # Kernels before 4.12 lack extended acks; plain errnos still work there.
            with contextlib.suppress(OSError):
                self._sock.setsockopt(SOL_NETLINK, opt, 1)
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def fileno(self) -> int:
        return self._sock.fileno()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ----------------------------------------------------------------------------
    def _request(self, msg_type: int, body: bytes, *, dump: bool = False) -> Iterator[bytes]:
        """Send one request; yield the payload of every answer message (header stripped)."""
        self._seq += 1
        seq = self._seq
        flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else 0)
        self._sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), msg_type, flags, seq, 0) + body)
        while True:
            data = self._sock.recv(_RECV_SIZE)
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, kind, mflags, mseq, _pid = _NLMSGHDR.unpack_from(data, offset)
                if length < _NLMSGHDR.size:
                    raise OSError(_errno.EBADMSG, "truncated netlink message")
                payload = data[offset + _NLMSGHDR.size : offset + length]
                offset += _align(length)
                if mseq != seq:
                    continue  # a late answer to an earlier request
                if kind == NLMSG_DONE:
                    return
                if kind == NLMSG_ERROR:
                    self._raise_error(payload, mflags)
                    return  # error 0 is a plain ack
                yield payload
                if not (mflags & NLM_F_MULTI):
                    return

    @staticmethod
    def _raise_error(payload: bytes, flags: int) -> None:
        (code,) = _I32.unpack_from(payload, 0)
        if code == 0:
            return
        message = ""
        if flags & NLM_F_ACK_TLVS:
            # struct nlmsgerr: error, then the request header (and, unless capped, its body).
            skip = 4 + _NLMSGHDR.size
            if not flags & NLM_F_CAPPED:
                (req_len,) = _U32.unpack_from(payload, 4)
                skip = 4 + _align(req_len)
            raw = _attrs(payload, skip).get(NLMSGERR_ATTR_MSG)
            if raw:
                message = _cstr(raw)
        err = -code
        text = os.strerror(err) + (f" ({message})" if message else "")
        raise OSError(err, text)

    # -- requests -----------------------------------------------------------------------------
    def route_get(
        self, dst: IPAddress, *, oif: int | None = None, src: IPAddress | None = None
    ) -> Route:
        family = family_of(dst)
        bits = dst.max_prefixlen
        # RTM_F_LOOKUP_TABLE: report the table the route came from (IPv4 reports main otherwise).
        body = _RTMSG.pack(family, bits, bits if src is not None else 0, 0, 0, 0, 0, 0,
                           RTM_F_LOOKUP_TABLE)
        body += _attr(RTA_DST, dst.packed)
        if src is not None:
            body += _attr(RTA_SRC, src.packed)
        if oif is not None:
            body += _attr(RTA_OIF, _U32.pack(oif))
        for payload in self._request(RTM_GETROUTE, body):
            fam, _dl, _sl, _tos, table, _proto, _scope, rtype, _flags = _RTMSG.unpack_from(payload)
            attrs = _attrs(payload, _RTMSG.size)
            gateway: IPAddress | None = None
            if RTA_GATEWAY in attrs:
                gateway = _ip(fam, attrs[RTA_GATEWAY])
            elif RTA_VIA in attrs:  # struct rtvia: an IPv4 route whose next hop is IPv6
                via = attrs[RTA_VIA]
                (via_family,) = struct.unpack_from("=H", via, 0)
                gateway = _ip(via_family, via[2:])
            if RTA_TABLE in attrs:
                (table,) = _U32.unpack(attrs[RTA_TABLE][:4])
            return Route(
                oif=_U32.unpack(attrs[RTA_OIF][:4])[0] if RTA_OIF in attrs else 0,
                type=rtype,
                gateway=gateway,
                prefsrc=_ip(fam, attrs[RTA_PREFSRC]) if RTA_PREFSRC in attrs else None,
                table=table,
            )
        raise OSError(_errno.EBADMSG, "empty answer to a route request")

    def _link(self, index: int, name: str | None) -> Link:
        body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0)
        if name is not None:
            body += _attr(IFLA_IFNAME, name.encode() + b"\0")
        body += _attr(IFLA_EXT_MASK, _U32.pack(RTEXT_FILTER_SKIP_STATS))
        for payload in self._request(RTM_GETLINK, body):
            return parse_link(payload)
        raise OSError(_errno.EBADMSG, "empty answer to a link request")

    def link_by_index(self, index: int) -> Link:
        return self._link(index, None)

    def link_by_name(self, name: str) -> Link:
        return self._link(0, name)

    def addresses(self, index: int, family: int) -> list[Address]:
        out = []
        body = _IFADDRMSG.pack(family, 0, 0, 0, 0)
        for payload in self._request(RTM_GETADDR, body, dump=True):
            fam, plen, flags8, scope, idx = _IFADDRMSG.unpack_from(payload)
            if idx != index or fam != family:
                continue
            attrs = _attrs(payload, _IFADDRMSG.size)
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if raw is None:
                continue
            flags = _U32.unpack(attrs[IFA_FLAGS][:4])[0] if IFA_FLAGS in attrs else flags8
            out.append(Address(_ip(fam, raw), plen, idx, flags, scope))
        return out

    def neighbour(self, address: IPAddress, index: int) -> Neighbour | None:
        family = family_of(address)
        body = _NDMSG.pack(family, index, 0, 0, 0) + _attr(NDA_DST, address.packed)
        try:
            for payload in self._request(RTM_GETNEIGH, body):
                return _parse_neigh(payload)
            return None
        except OSError as e:
            if e.errno == _errno.ENOENT:
                return None
            if e.errno not in (_errno.EINVAL, _errno.EOPNOTSUPP):
                raise
        # Kernels before 4.20 cannot get one entry: dump the family and pick ours.
        dump = _NDMSG.pack(family, 0, 0, 0, 0)
        found = None
        for payload in self._request(RTM_GETNEIGH, dump, dump=True):
            entry = _parse_neigh(payload)
            if entry is not None and entry.address == address and entry.index == index:
                found = entry
        return found


def parse_link(payload: bytes) -> Link:
    _fam, arphrd, index, flags, _change = _IFINFOMSG.unpack_from(payload)
    attrs = _attrs(payload, _IFINFOMSG.size)
    kind = None
    if IFLA_LINKINFO in attrs:
        info = _attrs(attrs[IFLA_LINKINFO])
        if IFLA_INFO_KIND in info:
            kind = _cstr(info[IFLA_INFO_KIND])
    mac = None
    if IFLA_ADDRESS in attrs and len(attrs[IFLA_ADDRESS]) == 6:
        mac = format_mac(attrs[IFLA_ADDRESS])
    master = _U32.unpack(attrs[IFLA_MASTER][:4])[0] if IFLA_MASTER in attrs else 0
    return Link(
        index=index,
        name=_cstr(attrs.get(IFLA_IFNAME, b"")),
        arphrd=arphrd,
        flags=flags,
        mac=mac,
        kind=kind,
        master=master or None,
        operstate=attrs[IFLA_OPERSTATE][0] if IFLA_OPERSTATE in attrs else None,
    )


def _parse_neigh(payload: bytes) -> Neighbour | None:
    family, index, state, _flags, _type = _NDMSG.unpack_from(payload)
    attrs = _attrs(payload, _NDMSG.size)
    if NDA_DST not in attrs or family not in (socket.AF_INET, socket.AF_INET6):
        return None
    lladdr = attrs.get(NDA_LLADDR)
    return Neighbour(
        address=ip_address(attrs[NDA_DST]),
        index=index,
        state=state,
        lladdr=format_mac(lladdr) if lladdr is not None and len(lladdr) == 6 else None,
    )

"""The collector by host name: resolved once with the system resolver, stored as an address.

netconsole itself takes only addresses (``remote_ip``); a name given to ``add``, ``set``,
``resolve`` or in ``apply``'s configuration is looked up here, once, with ``getaddrinfo`` (so
/etc/hosts, DNS and nsswitch apply as for any program), and the address goes into the target.

The family rule: ``--ipv4``/``--ipv6`` (``family=4``/``6``) take the first address of that
family and fail when the name has none. Without them IPv4 wins when the name has both A and
AAAA records, whatever order the resolver (or /etc/gai.conf) returns them in: the choice then
does not change with the host's IPv6 routes or resolver configuration, and IPv4 is what
netconsole's own documentation and most collectors use.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any, Literal

from netconsolectl.errors import InvalidInput
from netconsolectl.sender import spec

Family = Literal[4, 6]
GetAddrInfo = Callable[..., list[tuple[Any, ...]]]

# RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, 253 at most
# (a trailing dot, the DNS root, is allowed). Underscores appear in real zones; accept them.
_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


@dataclass(frozen=True)
class Collector:
    """The collector's address, and the name it came from (None when an address was given)."""

    address: IPv4Address | IPv6Address
    name: str | None = None

    def describe(self) -> str:
        """``collector.example is 192.0.2.50`` for messages; the address alone otherwise."""
        return f"{self.name} is {self.address}" if self.name else str(self.address)


def looks_like_address(value: str) -> bool:
    """Whether ``value`` is meant as an IP address (digits and dots only, or has a colon)."""
    text = value.strip()
    return ":" in text or (bool(text) and all(c.isdigit() or c == "." for c in text))


def is_host_name(value: str) -> bool:
    text = value.strip().removesuffix(".")
    if not text or len(text) > 253 or looks_like_address(text):
        return False
    return all(_LABEL.fullmatch(label) for label in text.split("."))


def collector(
    value: object,
    *,
    family: Family | None = None,
    what: str = "remote IP",
    getaddrinfo: GetAddrInfo = socket.getaddrinfo,
) -> Collector:
    """The collector's address from an address or a host name (see the module doc for the rule).

    An address is checked as every address is and must match ``family`` when one is given.
    Raises :class:`~netconsolectl.errors.InvalidInput` for a malformed value, a name that does
    not resolve, or one without an address of the asked family.
    """
    if isinstance(value, IPv4Address | IPv6Address) or looks_like_address(str(value)):
        addr = spec.parse_ip(str(value), what)
        if family is not None and addr.version != family:
            raise InvalidInput(f"{what} {addr} is not an IPv{family} address",
                               hint=f"leave out --ipv{family}, or give an IPv{family} address")
        return Collector(addr)
    name = str(value).strip()
    if not is_host_name(name):
        raise InvalidInput(f"invalid {what} {value!r}: not an IPv4 or IPv6 address or a host "
                           "name")
    try:
        # Both families, then the rule: "has no IPv6 address" says more than EAI_NONAME.
        infos = getaddrinfo(name, None, socket.AF_UNSPEC, socket.SOCK_DGRAM)
    except socket.gaierror as e:
        raise InvalidInput(
            f"cannot resolve host name {name}: {e.strerror or e}",
            hint="give the collector's IP address, or check DNS and /etc/hosts",
        ) from None
    found: list[IPv4Address | IPv6Address] = []
    for fam, _type, _proto, _canon, sockaddr in infos:
        if fam not in (socket.AF_INET, socket.AF_INET6):
            continue
        addr = ip_address(str(sockaddr[0]).split("%", 1)[0])  # no zone: --dev chooses
        if addr not in found:
            found.append(addr)
    usable = [a for a in found if not a.is_unspecified]
    if family is not None:
        usable = [a for a in usable if a.version == family]
    if not usable:
        kind = f" IPv{family}" if family else ""
        raise InvalidInput(f"host name {name} has no{kind} address",
                           hint="give the collector's IP address" + (
                               f", or leave out --ipv{family}" if family else ""))
    v4 = [a for a in usable if a.version == 4]
    return Collector(v4[0] if v4 else usable[0], name)

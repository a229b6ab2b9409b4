"""The collector by host name: which address a name gives, and the errors.

The system resolver runs for real on ``localhost`` (every host's /etc/hosts has it; no query
leaves the machine); names with both A and AAAA records, and unknown ones, are resolved for
real in the netns tier, through a namespace's own /etc/hosts. The family rule itself is
checked here on answers given in either order.
"""

from __future__ import annotations

import socket
from ipaddress import ip_address
from typing import Any

import pytest

from netconsolectl.discover.names import Collector, collector, is_host_name
from netconsolectl.errors import InvalidInput


def answers(*addrs: str) -> Any:
    """A getaddrinfo that returns ``addrs`` in this order (filtered by the asked family)."""
    def gai(host: str, port: object, family: int = 0, *_a: object) -> list[tuple[Any, ...]]:
        out = []
        for a in addrs:
            fam = socket.AF_INET6 if ":" in a else socket.AF_INET
            if family in (0, fam):
                sockaddr = (a, 0, 0, 0) if fam == socket.AF_INET6 else (a, 0)
                out.append((fam, socket.SOCK_DGRAM, 17, "", sockaddr))
        if not out:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return out
    return gai


def test_localhost_through_the_system_resolver() -> None:
    assert collector("localhost") == Collector(ip_address("127.0.0.1"), "localhost")
    assert collector("localhost").describe() == "localhost is 127.0.0.1"


def test_an_unknown_name_is_invalid_input() -> None:
    # Not through the system resolver: it would ask DNS, off this machine. The netns tier
    # asks it for real inside a namespace with no way out.
    with pytest.raises(InvalidInput) as info:
        collector("no-such-host.invalid", getaddrinfo=answers())
    assert str(info.value).startswith("cannot resolve host name no-such-host.invalid: ")
    assert "IP address" in (info.value.hint or "")


@pytest.mark.parametrize("order", [("192.0.2.50", "2001:db8::50"),
                                   ("2001:db8::50", "192.0.2.50")])
def test_ipv4_wins_when_both_exist_in_any_order(order: tuple[str, str]) -> None:
    gai = answers(*order)
    assert collector("c.example", getaddrinfo=gai).address == ip_address("192.0.2.50")
    assert collector("c.example", family=6, getaddrinfo=gai).address == \
        ip_address("2001:db8::50")
    assert collector("c.example", family=4, getaddrinfo=gai).address == \
        ip_address("192.0.2.50")


def test_only_ipv6_is_taken_without_a_flag_and_refused_with_ipv4() -> None:
    gai = answers("2001:db8::50", "fe80::1%eth0")
    assert collector("c.example", getaddrinfo=gai) == Collector(ip_address("2001:db8::50"),
                                                                "c.example")
    with pytest.raises(InvalidInput, match=r"c\.example has no IPv4 address"):
        collector("c.example", family=4, getaddrinfo=gai)


def test_addresses_pass_through_and_must_match_the_flag() -> None:
    assert collector("192.0.2.1") == Collector(ip_address("192.0.2.1"))
    assert collector("2001:db8::1", family=6).name is None
    with pytest.raises(InvalidInput, match=r"192\.0\.2\.1 is not an IPv6 address"):
        collector("192.0.2.1", family=6)
    with pytest.raises(InvalidInput, match="not an IPv4 or IPv6 address"):
        collector("192.0.2.999")


@pytest.mark.parametrize("bad", ["", "-x.example", "a..b", "a b", "x" * 64 + ".example",
                                 "host/name", "c.example:6666"])
def test_malformed_values_are_invalid_input(bad: str) -> None:
    assert not is_host_name(bad) or bad == ""
    with pytest.raises(InvalidInput):
        collector(bad)


@pytest.mark.parametrize("good", ["collector", "log-1.dc.example", "log.example.", "_x.example"])
def test_host_name_syntax(good: str) -> None:
    assert is_host_name(good)


def test_configuration_takes_a_host_name_and_apply_looks_it_up() -> None:
    from netconsolectl.declarative.apply import resolve_targets
    from netconsolectl.declarative.config import loads

    cfg = loads('[targets.t1]\nremote_ip = "localhost"\nremote_port = 514\n')
    (t,) = cfg.targets
    assert (t.remote_name, t.spec.remote_ip) == ("localhost", None)
    # Looked up when applied (not when loaded), so a failure stays with its target.
    assert resolve_targets(cfg, None)["t1"].remote_ip == ip_address("127.0.0.1")  # type: ignore[union-attr]
    with pytest.raises(InvalidInput):
        loads('[targets.t1]\nremote_ip = "192.0.2.999"\n')

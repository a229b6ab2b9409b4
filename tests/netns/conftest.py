"""Fixtures for the netns tier: throwaway namespaces joined by veth pairs, always removed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.netns.lab import Lab, sweep_orphans, unavailable_reason

H_MAC = "02:00:00:00:00:01"  # the machine running netconsolectl
C_MAC = "02:00:00:00:00:02"  # the collector
R_MAC = "02:00:00:00:00:fe"  # the router's leg facing the machine
R2_MAC = "02:00:00:00:01:fe"  # a second router, reached through a second interface


@pytest.fixture(scope="session")
def _netns_available() -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"netns tier: {reason}")
    sweep_orphans()


@pytest.fixture
def lab(_netns_available: None) -> Iterator[Lab]:
    lab = Lab()
    try:
        yield lab
    finally:
        lab.cleanup()


@dataclass
class OnLink:
    """H and the collector C on one segment: 10.0.0.0/24 and fd00::/64."""

    lab: Lab
    h: str
    c: str


@pytest.fixture
def onlink(lab: Lab) -> OnLink:
    h, c = lab.netns("h"), lab.netns("c")
    lab.veth(h, "eth0", c, "eth0", mac_a=H_MAC, mac_b=C_MAC)
    lab.addr(h, "eth0", "10.0.0.1/24", "fd00::1/64")
    lab.addr(c, "eth0", "10.0.0.2/24", "fd00::2/64")
    return OnLink(lab, h, c)


@dataclass
class Routed:
    """H -- R -- C: the collector 10.0.2.2 / fd02::2 is one router away from H."""

    lab: Lab
    h: str
    r: str
    c: str


@pytest.fixture
def routed(lab: Lab) -> Routed:
    h, r, c = lab.netns("h"), lab.netns("r"), lab.netns("c")
    lab.veth(h, "eth0", r, "eth0", mac_a=H_MAC, mac_b=R_MAC)
    lab.veth(r, "eth1", c, "eth0", mac_b=C_MAC)
    lab.addr(h, "eth0", "10.0.1.1/24", "fd01::1/64")
    lab.addr(r, "eth0", "10.0.1.254/24", "fd01::fe/64", "fe80::fe/64")
    lab.addr(r, "eth1", "10.0.2.254/24", "fd02::fe/64")
    lab.addr(c, "eth0", "10.0.2.2/24", "fd02::2/64")
    for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
        lab.sysctl(r, key, "1")
    lab.ip(h, "route", "add", "default", "via", "10.0.1.254")
    lab.ip(h, "-6", "route", "add", "default", "via", "fe80::fe", "dev", "eth0")
    lab.ip(c, "route", "add", "default", "via", "10.0.2.254")
    lab.ip(c, "-6", "route", "add", "default", "via", "fd02::fe")
    return Routed(lab, h, r, c)

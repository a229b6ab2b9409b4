"""Discovery on a real kernel: route, source address and the gateway's MAC by ARP."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from netconsolectl.sender.configfs import ConfigFS
from tests.kernel.guest.conftest import GATEWAY_MAC, GUEST_IP, HOST_IP, NIC, Cli, Wire

pytestmark = pytest.mark.usefixtures("netconsole")


def test_resolve_and_add_without_addresses(cli: Cli, wire: Wire, kmsg: Callable[..., None],
                                           configfs: ConfigFS,
                                           names: Callable[[str], str]) -> None:
    r = cli("resolve", HOST_IP, "--json")
    assert r.code == 0, str(r)
    res = json.loads(r.out)
    assert (res["dev_name"], res["local_ip"], res["remote_mac"]) == (NIC, GUEST_IP, GATEWAY_MAC)

    port = wire.port()
    name = names("disc")
    r = cli("add", name, "--remote-ip", HOST_IP, "--remote-port", str(port), "--extended")
    assert r.code == 0, str(r)
    assert "discovered" in r.err, str(r)
    got = {a: configfs.read(f"{name}/{a}") for a in ("dev_name", "local_ip", "remote_mac")}
    assert got == {"dev_name": NIC, "local_ip": GUEST_IP, "remote_mac": GATEWAY_MAC}
    marker = wire.marker("discovered")
    kmsg(marker)
    wire.expect(port, marker)

"""``netconsolectl resolve`` as a whole process inside a namespace (``ip netns exec``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from tests.netns.conftest import C_MAC, R_MAC, OnLink, Routed
from tests.netns.lab import Lab

pytestmark = pytest.mark.netns


def cli(lab: Lab, ns: str, *args: str) -> subprocess.CompletedProcess[str]:
    return lab.exec(ns, [sys.executable, "-m", "netconsolectl", "resolve", *args])


def one_error_line(res: subprocess.CompletedProcess[str]) -> str:
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("netconsolectl: error: "), res.stderr
    assert "Traceback" not in res.stderr
    return lines[0]


def test_text_output_says_where_each_value_came_from(routed: Routed) -> None:
    res = cli(routed.lab, routed.h, "10.0.2.2")
    assert res.returncode == 0, res.stderr
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in res.stdout.splitlines()}
    assert rows["remote_ip"] == ["10.0.2.2"]
    assert rows["dev_name"] == ["eth0", "route"]
    assert rows["local_ip"] == ["10.0.1.1", "route (preferred source)"]
    assert rows["next_hop"] == ["10.0.1.254", "gateway"]
    assert rows["remote_mac"] == [R_MAC, "ARP probe"]
    assert "reached through 10.0.1.254" in res.stderr


def test_json_output(onlink: OnLink) -> None:
    res = cli(onlink.lab, onlink.h, "fd00::2", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data == {
        "remote_ip": "fd00::2", "dev_name": "eth0", "dev_source": "route",
        "local_ip": "fd00::1", "local_source": "route (preferred source)",
        "next_hop": "fd00::2", "next_hop_source": "on-link",
        "remote_mac": C_MAC, "mac_source": "NDP probe", "warnings": [], "remote_name": None,
    }


def test_silent_next_hop_exits_1_within_the_timeout(onlink: OnLink) -> None:
    start = time.monotonic()
    res = cli(onlink.lab, onlink.h, "10.0.0.99", "--arp-timeout", "0.25", "--arp-retries", "2")
    elapsed = time.monotonic() - start
    assert res.returncode == 1 and res.stdout == ""
    line = one_error_line(res)
    assert "no answer from next hop 10.0.0.99 on eth0" in line
    assert "--remote-mac" in line and "--broadcast" in line
    assert "2 ARP requests, 0.25 s each" in line  # the bounds given, not the defaults
    # A guard against a probe that ignores its bounds, not a speed goal: how fast the whole
    # command is, is bench/resolve.py's to measure (a loaded machine starts Python slowly).
    assert elapsed < 30, elapsed


def test_bridge_port_refusal_exits_1(lab: Lab) -> None:
    h, c = lab.netns("h"), lab.netns("c")
    lab.ip(h, "link", "add", "br0", "type", "bridge")
    lab.veth(h, "eth1", c, "eth0")
    lab.ip(h, "link", "set", "eth1", "master", "br0")
    res = cli(lab, h, "10.0.5.2", "--dev", "eth1")
    assert res.returncode == 1
    assert "eth1 is a port of bridge br0; use --dev br0" in one_error_line(res)


def test_invalid_input_exits_2(onlink: OnLink) -> None:
    res = cli(onlink.lab, onlink.h, "10.0.0.300")
    assert res.returncode == 2
    assert "remote IP" in one_error_line(res)


def test_broadcast_warns_behind_a_gateway(routed: Routed) -> None:
    res = cli(routed.lab, routed.h, "10.0.2.2", "--broadcast", "--json")
    assert res.returncode == 0
    assert json.loads(res.stdout)["remote_mac"] == "ff:ff:ff:ff:ff:ff"
    assert "netconsolectl: warning: 10.0.2.2 is behind gateway 10.0.1.254" in res.stderr


def test_unprivileged_user_resolves_from_tables_and_needs_cap_net_raw_to_probe(
        onlink: OnLink) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux) to drop privileges")
    from tests.unprivileged import nobody_python

    python, env = nobody_python()  # works from a checkout only root can enter
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
              *python, "-m", "netconsolectl", "resolve", "10.0.0.2"]
    env = {**os.environ, **env}
    res = onlink.lab.exec(onlink.h, nobody, env=env)
    assert res.returncode == 77
    assert "needs CAP_NET_RAW" in one_error_line(res)
    onlink.lab.neigh(onlink.h, "replace", "10.0.0.2", "lladdr", C_MAC, "dev", "eth0",
                     "nud", "stale")
    res = onlink.lab.exec(onlink.h, nobody, env=env)
    assert res.returncode == 0 and "neighbour table (STALE)" in res.stdout


IMPORTS = """
import json, runpy, sys
try:
    runpy.run_module("netconsolectl", run_name="__main__")
except SystemExit:
    pass
finally:
    sys.stderr.write("\\nMODULES " + json.dumps(sorted(
        {m.split(".")[0] for m in sys.modules} & {"pyroute2", "scapy"})) + "\\n")
"""


def test_warm_resolve_imports_pyroute2_only_a_probe_scapy(onlink: OnLink) -> None:
    lab, h = onlink.lab, onlink.h

    def run(remote: str) -> tuple[str, list[str]]:
        res = lab.exec(h, [sys.executable, "-c", IMPORTS, "resolve", "--json", remote])
        err, _, tail = res.stderr.rpartition("\nMODULES ")
        assert res.returncode == 0 and err.strip() == "", res.stderr
        return json.loads(res.stdout)["mac_source"], json.loads(tail)

    assert run("10.0.0.2") == ("ARP probe", ["pyroute2", "scapy"])
    lab.neigh(h, "replace", "10.0.0.2", "lladdr", C_MAC, "dev", "eth0", "nud", "stale")
    assert run("10.0.0.2") == ("neighbour table (STALE)", ["pyroute2"])
    assert run("fd00::2") == ("NDP probe", ["pyroute2", "scapy"])


def test_collector_by_host_name(onlink: OnLink) -> None:
    lab, h = onlink.lab, onlink.h
    # AAAA listed first: IPv4 still wins without --ipv6. "v6only" has only an IPv6 address.
    lab.hosts(h, "127.0.0.1 localhost\nfd00::2 collector\n10.0.0.2 collector\n"
                 "fd00::2 v6only\n")
    res = cli(lab, h, "collector", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert (data["remote_ip"], data["remote_name"], data["remote_mac"]) == (
        "10.0.0.2", "collector", C_MAC)
    res = cli(lab, h, "collector")
    assert res.returncode == 0, res.stderr
    assert "collector is 10.0.0.2" in res.stderr
    res = cli(lab, h, "v6only", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["remote_ip"] == "fd00::2"
    # An unknown name: the resolver finds no way out of the namespace; exit 2, nothing else.
    res = cli(lab, h, "no-such-collector.invalid")
    assert res.returncode == 2
    assert one_error_line(res).startswith(
        "netconsolectl: error: cannot resolve host name no-such-collector.invalid: ")

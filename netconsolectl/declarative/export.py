"""What ``export`` writes: the live targets as a configuration that survives network changes.

A value that discovery finds the same today (the interface and source from the route, the
next hop's MAC from the neighbour table) is left out, so ``apply`` discovers it again at the
next boot instead of pinning what a replaced gateway or a renumbered network made wrong.
``pin`` writes every value. Only the kernel's tables are read to decide: nothing is probed.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from ipaddress import ip_address
from typing import TYPE_CHECKING, Any

from netconsolectl.declarative.config import export_data
from netconsolectl.errors import NetconsoleError
from netconsolectl.facts import BROADCAST_MAC, is_set
from netconsolectl.host.system import System
from netconsolectl.sender.target import TargetState

if TYPE_CHECKING:
    from netconsolectl.discover.model import NetworkView

#: The keys discovery fills when a configuration leaves them out.
DISCOVERED_KEYS = ("dev_name", "local_ip", "remote_mac")


def rediscovered(net: NetworkView, state: TargetState) -> frozenset[str]:
    """The keys of ``state`` that discovery on ``net`` finds the same today; empty when in doubt.

    dev_name and local_ip come from the route; remote_mac only from a usable neighbour entry
    for the next hop (a MAC the table does not confirm stays, as does a broadcast MAC chosen
    on purpose). The source and the MAC are left out only with the interface, since they
    belong to it.
    """
    if not is_set(state.remote_ip) or not state.dev_name:
        return frozenset()
    from netconsolectl.discover import resolve

    mac = (state.remote_mac or BROADCAST_MAC).lower()
    try:
        # The live MAC is given, so nothing is probed; the route decides the rest.
        res = resolve(state.remote_ip, remote_mac=mac, netlink=net)
        if res.dev_name != state.dev_name:
            return frozenset()
        same = {"dev_name"}
        if is_set(state.local_ip) and res.local_ip == ip_address(state.local_ip):
            same.add("local_ip")
        neigh = net.neighbour(res.next_hop, net.link_by_name(res.dev_name).index)
    except (NetconsoleError, OSError, ValueError):
        return frozenset()
    if (mac != BROADCAST_MAC and neigh is not None and neigh.usable
            and (neigh.lladdr or "").lower() == mac):
        same.add("remote_mac")
    return frozenset(same)


def export_live(system: System, states: list[TargetState], *, pin: bool = False
                ) -> tuple[dict[str, Any], dict[str, frozenset[str]]]:
    """The configuration document for ``states``, and per target what was left out.

    The network is opened once for all targets. A sandbox root emulates a kernel, not this
    host's network: nothing is left out there unless a network is given with it
    (``System.network``, the tests').
    """
    left_out: dict[str, frozenset[str]] = {}
    sandbox = system.configfs.emulated and system.network is None
    if not pin and not sandbox and states:
        opened: AbstractContextManager[NetworkView]
        if system.network is not None:
            opened = system.network()
        else:
            from netconsolectl.discover.netlink import HostNetwork

            opened = HostNetwork()
        try:
            with opened as net:
                left_out = {s.name: rediscovered(net, s) for s in states}
        except OSError:  # no netlink here: keep every value
            left_out = {}
    doc = export_data(states, left_out)
    for s in states:
        if s.sysdata is not None and None in s.sysdata.values():
            # A toggle this kernel cannot read back (release_enabled on 6.15-6.18 reads the
            # taskname bit): any list written would claim it off, and apply would turn it
            # off. Without the key, apply leaves the toggles as they are.
            doc["targets"][s.name].pop("sysdata", None)
            left_out[s.name] = left_out.get(s.name, frozenset()) | {UNKNOWN_SYSDATA}
    return doc, {n: k for n, k in left_out.items() if k}


#: In the left-out keys of :func:`export_live`: ``sysdata`` was left out because a toggle
#: cannot be read back on this kernel.
UNKNOWN_SYSDATA = "sysdata"


def unknown_sysdata_note(state: TargetState) -> str:
    """What the user is told when :func:`export_live` left a target's sysdata out."""
    unknown = [k for k, v in (state.sysdata or {}).items() if v is None]
    on = [k for k, v in (state.sysdata or {}).items() if v]
    return (f"{state.name}: sysdata left out: this kernel cannot read "
            f"{', '.join(f'{k}_enabled' for k in unknown)} back (it reports taskname's bit), "
            "so a list would turn it off; the file leaves the toggles as they are "
            f"(read as on: {', '.join(on) or 'none'}); add sysdata = [...] to pin them")

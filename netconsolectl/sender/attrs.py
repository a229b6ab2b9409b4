"""The attributes of a netconsole target, once: every other list of them is derived from here.

A target is a configfs directory (drivers/net/netconsole.c ``netconsole_target_attrs``) with
one file per attribute, a ``userdata/`` group (6.9+) of user keys and, from 6.15, one
``<name>_enabled`` file per *sysdata* toggle. :data:`ATTRS` and :data:`SYSDATA` say for each
what the kernel does with it (since which version, whether it can be written, whether it may
change while the target is enabled, what a new target reads); from them come:

* the kernel emulation's files and defaults (netconsolectl.sender.emulation),
* what a :class:`~netconsolectl.sender.kernel.Kernel` has by version (``for_release``),
* the order ``plan`` writes parameters and ``show``/``show --json`` print them
  (netconsolectl.sender.target ``PARAM_ATTRS``/``JSON_KEYS``),
* the ``--sysdata`` names, their wire order and what ``export`` writes.

Adding the next sysdata toggle is one :class:`Sysdata` row (plus its tests); a new attribute
file is one :class:`Attr` row. Standard library only, nothing imported at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from netconsolectl.facts import BROADCAST_MAC, DEFAULT_LOCAL_PORT, DEFAULT_REMOTE_PORT

Version = tuple[int, int]
Kind = Literal["bool", "text", "ip", "port", "mac", "counter"]

@dataclass(frozen=True)
class Attr:
    """One attribute file of a target directory."""

    name: str  # the configfs file name, also the key in show --json, export and config files
    kind: Kind
    since: Version | None  # the release adding it; None: every kernel netconsolectl knows
    default: str  # what a new target reads (make_netconsole_target / alloc_and_init)
    writable: bool = True  # has a store(); without one the open for writing fails (EACCES)
    while_enabled: bool = False  # store allowed while enabled (else EINVAL, "disable to update")
    parameter: bool = True  # part of a target's configuration (plan writes it, export keeps it)


#: In the order the kernel lists them, which is the order plan writes the parameters and show
#: prints them. ``enabled`` is written last by plan, whatever its place here.
ATTRS: tuple[Attr, ...] = (
    Attr("enabled", "bool", None, "0", while_enabled=True, parameter=False),
    Attr("dev_name", "text", None, "eth0"),
    Attr("local_ip", "ip", None, "0.0.0.0"),
    Attr("local_port", "port", None, str(DEFAULT_LOCAL_PORT)),
    Attr("remote_ip", "ip", None, "0.0.0.0"),
    Attr("remote_port", "port", None, str(DEFAULT_REMOTE_PORT)),
    # remote_mac's default, and local_mac while no device is held (eth_broadcast_addr()).
    Attr("local_mac", "mac", None, BROADCAST_MAC, writable=False, parameter=False),
    Attr("remote_mac", "mac", None, BROADCAST_MAC),
    Attr("extended", "bool", None, "0"),
    # 6.6 (≈; docs credit 2023-07-07): prepend the kernel release; needs extended at enable.
    Attr("release", "bool", (6, 6), "0"),
    # 6.13 (commit 36de47bfd013): sends the driver dropped; never reset.
    Attr("transmit_errors", "counter", (6, 13), "0", writable=False, parameter=False),
)


@dataclass(frozen=True)
class Sysdata:
    """One sysdata toggle: ``<target>/userdata/<name>_enabled`` turns a field on in every
    extended message. Toggles may change while the target is enabled, and storing the
    current value succeeds (unlike ``enabled``)."""

    name: str  # the --sysdata and config name
    since: Version
    wire: str  # the key the kernel appends (`` cpu=3``)

    @property
    def file(self) -> str:
        return f"{self.name}_enabled"


#: In wire order (the kernel appends the fields in this order after the userdata lines).
SYSDATA: tuple[Sysdata, ...] = (
    Sysdata("cpu_nr", (6, 15), "cpu"),
    Sysdata("taskname", (6, 15), "taskname"),
    Sysdata("release", (6, 15), "release"),
    Sysdata("msgid", (6, 17), "msgid"),
)

#: The ``userdata/`` group (user keys, and the sysdata toggles' files from 6.15).
USERDATA_SINCE: Version = (6, 9)


def attr(name: str) -> Attr:
    """The row of attribute ``name`` (KeyError for an unknown one)."""
    for a in ATTRS:
        if a.name == name:
            return a
    raise KeyError(name)


def since(name: str) -> Version:
    """The version adding attribute or sysdata toggle ``name`` ((0, 0): always there)."""
    for a in ATTRS:
        if a.name == name:
            return a.since or (0, 0)
    for s in SYSDATA:
        if s.name == name:
            return s.since
    raise KeyError(name)


#: The writable configuration, in write order (``enabled`` apart).
PARAMETERS: tuple[str, ...] = tuple(a.name for a in ATTRS if a.parameter)
#: What the kernel reports but nobody writes.
READ_ONLY: tuple[str, ...] = tuple(a.name for a in ATTRS if not a.writable)
SYSDATA_NAMES: tuple[str, ...] = tuple(s.name for s in SYSDATA)
SYSDATA_SINCE: dict[str, Version] = {s.name: s.since for s in SYSDATA}


def sysdata_versions() -> str:
    """``6.15+, msgid 6.17+``: when the toggles arrived, for help texts."""
    first = min(s.since for s in SYSDATA)
    later = [f"{s.name} {s.since[0]}.{s.since[1]}+" for s in SYSDATA if s.since != first]
    return ", ".join([f"{first[0]}.{first[1]}+", *later])


def present(version: Version) -> frozenset[str]:
    """The attribute files a target has on a kernel of ``version``."""
    return frozenset(a.name for a in ATTRS if a.since is None or version >= a.since)


def sysdata_present(version: Version) -> frozenset[str]:
    """The sysdata toggles a kernel of ``version`` has files for."""
    return frozenset(s.name for s in SYSDATA if version >= s.since)

"""One configfs directory, one object: a netconsole target and its userdata entries.

Everything is read through the :class:`~netconsolectl.sender.configfs.ConfigFS` seam. Attributes a
running kernel does not have (``release`` before 6.6, ``userdata/`` before 6.9,
``transmit_errors`` before 6.13) read as ``None``.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Any

from netconsolectl.errors import InvalidInput, NoSuchTarget, Unavailable
from netconsolectl.sender import attrs
from netconsolectl.sender.configfs import ConfigFS
from netconsolectl.sender.kernel import (
    SYSDATA_NAMES,
    TargetStatus,
    for_release,
    release_sysdata_known,
    sysdata_file,
)

# From the attribute table (netconsolectl.sender.attrs): the parameters in the order the
# kernel's configfs lists them (drivers/net/netconsole.c netconsole_target_attrs), which is
# the order plan writes them; the read-only ones; and the keys of `show --json`, in the order
# `show` prints them.
PARAM_ATTRS = attrs.PARAMETERS
READONLY_ATTRS = attrs.READ_ONLY
JSON_KEYS = ("name", *(a.name for a in attrs.ATTRS), "userdata", "sysdata")


def _int(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _bool(value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    return value.strip() not in ("0", "n", "N", "off")


@dataclass(frozen=True)
class TargetState:
    """What the kernel reports for one target, typed."""

    name: str
    enabled: bool
    dev_name: str | None
    local_ip: str | None
    local_port: int | None
    remote_ip: str | None
    remote_port: int | None
    local_mac: str | None
    remote_mac: str | None
    extended: bool | None
    release: bool | None
    transmit_errors: int | None
    userdata: dict[str, str] = field(default_factory=dict)
    #: sysdata toggle -> on (6.15+; None for the whole on kernels without them, and for
    #: ``release`` where reading its file reports the taskname bit instead)
    sysdata: dict[str, bool | None] | None = None
    #: whether the kernel has ``userdata/`` at all (6.9+); ``show --json`` says null without
    has_userdata: bool = True
    #: enabled / disabled / deactivated (7.x: device gone, the kernel resumes it), when the
    #: caller could tell (:func:`netconsolectl.sender.kernel.target_status`); None: from
    #: ``enabled`` alone
    status: TargetStatus | None = None

    @property
    def ipv6(self) -> bool:
        """6.12 keeps one sticky IPv6 flag per target and prints both addresses with %pI6c."""
        return any(ip is not None and ":" in ip for ip in (self.local_ip, self.remote_ip))

    @property
    def is_boot_target(self) -> bool:
        return self.name.startswith("cmdline") and self.name[7:].isdigit()

    @property
    def state(self) -> TargetStatus:
        if self.status is not None:
            return self.status
        return "enabled" if self.enabled else "disabled"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "enabled": self.enabled,
                               "state": self.state}
        out.update({k: getattr(self, k) for k in JSON_KEYS[2:]})
        if not self.has_userdata:
            out["userdata"] = None  # no userdata/ directory before 6.9
        if self.sysdata is not None:
            out["sysdata"] = {k: self.sysdata.get(k) for k in SYSDATA_NAMES}
        return out

    @property
    def sysdata_on(self) -> frozenset[str]:
        return frozenset(k for k, v in (self.sysdata or {}).items() if v)


class Userdatum:
    """``<target>/userdata/<key>/``: a directory whose ``value`` file holds the value."""

    def __init__(self, target: Target, key: str) -> None:
        self.target = target
        self.key = key

    @property
    def rel(self) -> str:
        return f"{self.target.name}/userdata/{self.key}"

    @property
    def value(self) -> str:
        return self.target.fs.read(f"{self.rel}/value")


class Target:
    """``<root>/netconsole/<name>/``."""

    def __init__(self, fs: ConfigFS, name: str) -> None:
        self.fs = fs
        self.name = name

    def rel(self, attr: str = "") -> str:
        return f"{self.name}/{attr}" if attr else self.name

    def exists(self) -> bool:
        return self.fs.isdir(self.rel())

    def require(self) -> Target:
        if not self.exists():
            raise NoSuchTarget(
                f"no netconsole target named {self.name!r}",
                hint="see `netconsolectl list`",
            )
        return self

    def read(self, attr: str) -> str | None:
        """An attribute's value, or None when this kernel does not have the attribute."""
        try:
            return self.fs.read(self.rel(attr))
        except FileNotFoundError:
            if not self.exists():
                raise NoSuchTarget(f"target {self.name!r} vanished while being read") from None
            return None
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR):
                return None
            raise

    def userdata(self) -> list[Userdatum]:
        """User-created userdata entries (directories), in configfs order (sorted by name).

        The sysdata toggles of 6.15+ (``cpu_nr_enabled`` ...) are files, not entries.
        """
        if not self.fs.isdir(self.rel("userdata")):
            return []
        return [Userdatum(self, key) for key in self.fs.listdir(self.rel("userdata"))]

    def state(self) -> TargetState:
        self.require()
        raw = {attr: self.read(attr) for attr in (*PARAM_ATTRS, *READONLY_ATTRS, "enabled")}

        def addr(attr: str) -> str | None:
            v = raw[attr]
            return v if v else None  # newer kernels print an empty line while unset

        return TargetState(
            name=self.name,
            enabled=bool(_bool(raw["enabled"])),
            dev_name=raw["dev_name"],
            local_ip=addr("local_ip"),
            local_port=_int(raw["local_port"]),
            remote_ip=addr("remote_ip"),
            remote_port=_int(raw["remote_port"]),
            local_mac=raw["local_mac"],
            remote_mac=raw["remote_mac"],
            extended=_bool(raw["extended"]),
            release=_bool(raw["release"]),
            transmit_errors=_int(raw["transmit_errors"]),
            userdata={u.key: u.value for u in self.userdata()},
            sysdata=self._sysdata(),
            has_userdata=self.fs.isdir(self.rel("userdata")),
        )

    def _sysdata(self) -> dict[str, bool | None] | None:
        """The sysdata toggles present (6.15+), or None on kernels without them."""
        found: dict[str, bool | None] = {}
        for name in SYSDATA_NAMES:
            value = self.read(f"userdata/{sysdata_file(name)}")
            if value is not None:
                found[name] = _bool(value)
        if not found:
            return None
        kernel = for_release(self.fs.kernel_release())
        if "release" in found and not release_sysdata_known(
                kernel, found["release"], found.get("taskname")):
            found["release"] = None  # the file may report the taskname bit on this kernel
        return found


def require_netconsole(fs: ConfigFS) -> None:
    """Raise Unavailable (exit 69) when ``<root>/netconsole`` is missing."""
    if fs.available():
        return
    if not fs.is_default_root and not fs.root.is_dir():
        # A root the user chose: say what is wrong with the path rather than blame configfs.
        what = "does not exist" if not fs.root.exists() else "is not a directory"
        raise InvalidInput(
            f"configfs root {fs.root} {what}",
            hint="give the configfs mount point or a sandbox directory with --configfs-root",
        )
    if not fs.root.is_dir():
        raise Unavailable(
            f"configfs is not mounted at {fs.root}",
            hint="run `netconsolectl setup` as root (loads configfs and netconsole, mounts it)",
        )
    raise Unavailable(
        f"{fs.base} does not exist: the netconsole module is not loaded, or this kernel "
        "lacks CONFIG_NETCONSOLE_DYNAMIC",
        hint="run `netconsolectl setup` as root",
    )


def list_targets(fs: ConfigFS) -> list[Target]:
    require_netconsole(fs)
    return [Target(fs, name) for name in fs.listdir()]

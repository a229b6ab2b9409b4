"""netconsole's configfs, emulated on a plain directory: the sandbox root and the test fake.

Plain files cannot refuse writes, so the kernel's rules live here, in a subclass of the
:class:`~netconsolectl.sender.configfs.ConfigFS` seam: each operation is checked the way
drivers/net/netconsole.c and fs/configfs check it, for the kernel of the chosen
:data:`PROFILES` entry (one per kernel era: 6.1, 6.12, 6.18, 7.x), and then carried out on the
directory through the seam's own file code (so every value read back ends with ``\\n`` as
configfs prints it). What a profile has and refuses comes from
:mod:`netconsolectl.sender.kernel` (rules) and :mod:`netconsolectl.sender.attrs` (the attribute
table), the same places the product decides from, and tests/conformance.py asserts it against
the real kernels of each era.

Two users:

* ``--configfs-root DIR`` on a directory that is not a configfs mount: a sandbox where
  runbooks can be tried without root or a kernel module (:func:`sandbox`). Its state lives in
  the files only, so consecutive commands see each other's work; enabling looks up the
  machine's real network devices.
* the unit tests, which give it a made-up machine (:class:`Device`) and boot-parameter targets.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import shutil
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path

from netconsolectl.errors import ENOTSUPP
from netconsolectl.facts import (
    BROADCAST_MAC,
    IFNAMSIZ,
    MAX_USERDATA_NAME_LENGTH,
    MAX_USERDATA_VALUE_LENGTH,
    SYS_CLASS_NET,
)
from netconsolectl.sender import attrs
from netconsolectl.sender import kernel as kfeat
from netconsolectl.sender.configfs import ConfigFS

PARAMS = attrs.PARAMETERS

#: Profile name -> the release string the emulated kernel reports: one per kernel era, each
#: checked against the real kernel of that era (Debian's 6.1, 6.12, 6.18 and 7.3) by
#: tests/conformance.py. Everything else follows from the release through
#: :func:`netconsolectl.sender.kernel.for_release`.
PROFILES: dict[str, str] = {
    "6.1": "6.1.0-emulated",
    "6.12": "6.12.0-emulated",
    "6.18": "6.18.0-emulated",
    "7.3": "7.3.0-emulated",
}
#: Other names accepted for a profile (``NETCONSOLECTL_SANDBOX_KERNEL=newest``).
ALIASES = {"newest": "7.3", "7": "7.3", "7.x": "7.3", "6": "6.18"}
DEFAULT_PROFILE = "7.3"
PROFILE_ENV = "NETCONSOLECTL_SANDBOX_KERNEL"


@dataclass
class Device:
    """A network device as netpoll setup would find it in the writer's namespace."""

    name: str
    mac: str = "52:54:00:12:34:56"
    ipv4: list[str] = field(default_factory=list)
    ipv6: list[str] = field(default_factory=list)
    master: str | None = None
    netpoll: bool = True
    up: bool = True
    kind: str | None = None  # IFLA_INFO_KIND: "bridge", "bond", ...; None for a NIC


@dataclass
class _Target:
    enabled: bool = False
    deactivated: bool = False  # 7.x: device unregistered, resumed when it registers again
    ipv6: bool = False  # np.ipv6: sticky up to 6.12, set by every address write from 6.18
    local_ip: bytes = bytes(16)  # union inet_addr: IPv4 uses the first 4 bytes
    remote_ip: bytes = bytes(16)


def _strip_nl(value: str) -> str:
    return value[:-1] if value.endswith("\n") else value


def _kstrtobool(value: str, *, ed: bool = False) -> bool:
    """lib/kstrtox.c kstrtobool: the first character decides; 'on'/'off' need two. With
    ``ed`` (6.18+), 'e' is true and 'd' false as well (enable/disable)."""
    s = value
    if not s:
        raise OSError(errno.EINVAL, "Invalid argument")
    c = s[0]
    if c in "yYtT1" or (ed and c in "eE"):
        return True
    if c in "nNfF0" or (ed and c in "dD"):
        return False
    if c in "oO" and len(s) > 1:
        if s[1] in "nN":
            return True
        if s[1] in "fF":
            return False
    raise OSError(errno.EINVAL, "Invalid argument")


def _kstrtoint01(value: str) -> bool:
    """6.1's ``enabled_store``/``extended_store``: kstrtoint base 10, then 0 or 1 only."""
    s = _strip_nl(value)
    body = s[1:] if s[:1] in "+-" else s
    if not body or not body.isdigit():
        raise OSError(errno.EINVAL, "Invalid argument")
    n = int(s)
    if n not in (0, 1):
        raise OSError(errno.EINVAL, "Invalid argument")
    return n == 1


def _kstrtou16(value: str) -> int:
    """lib/kstrtox.c: decimal digits with one optional trailing newline; ERANGE above 65535."""
    s = _strip_nl(value)
    if s.startswith("+"):
        s = s[1:]
    if not s or not s.isdigit():
        raise OSError(errno.EINVAL, "Invalid argument")
    n = int(s)
    if n > 0xFFFF:
        raise OSError(errno.ERANGE, "Numerical result out of range")
    return n


def _in_aton(value: str) -> bytes:
    """net/core/utils.c in_aton: no validation at all.

    Four fields; each accumulates ``val * 10 + (c - '0')`` for any character up to '.', '\n'
    or the end, is ORed into a word shifted left by 8 per field, and the word is truncated to
    32 bits (so "abc" gives 75.0.0.0 and "300.1.1.1" gives 44.1.1.1).
    """
    word = 0
    i = 0
    for _ in range(4):
        word <<= 8
        if i < len(value):
            val = 0
            while i < len(value) and value[i] not in ".\n":
                val = val * 10 + (ord(value[i]) - ord("0"))
                i += 1
            word |= val
            if i < len(value):
                i += 1
    return (word & 0xFFFFFFFF).to_bytes(4, "big")


def _union(packed: bytes) -> bytes:
    """An address as union inet_addr holds it: IPv4 in the first 4 of 16 bytes."""
    return packed.ljust(16, b"\0")


def _strict_ip(text: str) -> tuple[bytes, bool] | None:
    """6.18+ netpoll_parse_ip_addr(): in4_pton, then in6_pton; (bytes, is IPv6) or None."""
    for cls in (ipaddress.IPv4Address, ipaddress.IPv6Address):
        try:
            return _union(cls(text).packed), cls is ipaddress.IPv6Address
        except ValueError:
            continue
    return None


def _in4_prefix(text: str) -> bytes | None:
    """What in4_pton() with no delimiter (-1) copies out before netpoll_parse_ip_addr()
    refuses the rest: a dotted quad ends at any character that is not a digit, a dot or a
    hex letter (lib/net_utils xdigit2bin answers IN6PTON_DELIM for it), and the address is
    stored although the write fails with EINVAL. Measured on 6.18.15 and 7.3.4:
    ``192.0.2.2 `` and ``192.0.2.9x`` are refused, and the address then reads 192.0.2.2 /
    192.0.2.9."""
    i = 0
    while i < len(text) and (text[i].isdigit() or text[i] == "."):
        i += 1
    if i == len(text) or text[i] in "abcdefABCDEF":
        return None
    try:
        return _union(ipaddress.IPv4Address(text[:i]).packed)
    except ValueError:
        return None


def _einval(path: Path | str) -> OSError:
    return OSError(errno.EINVAL, "Invalid argument", str(path))


class Emulation(ConfigFS):
    """netconsole's configfs tree of the kernel ``profile`` on a plain directory.

    ``devices`` is the machine's network devices; with ``host_devices`` the real ones of this
    machine are looked up when a target is enabled instead. ``boot`` holds the targets of the
    boot parameter (``cmdline<N>`` -> attribute values, ``enabled`` among them), invisible
    until a ``mkdir`` of that name attaches to them on kernels that allow it (6.7+).
    """

    def __init__(
        self,
        root: Path | str,
        devices: dict[str, Device] | None = None,
        *,
        profile: str = "6.12",
        boot: dict[str, dict[str, str]] | None = None,
        create: bool = True,
        host_devices: bool = False,
    ) -> None:
        super().__init__(root)
        profile = ALIASES.get(profile, profile)
        if profile not in PROFILES:
            raise ValueError(f"unknown kernel profile {profile!r}; choose from "
                             + ", ".join([*PROFILES, *ALIASES]))
        self.profile = profile
        self.kernel = kfeat.for_release(PROFILES[profile])
        self.host_devices = host_devices
        self.devices = devices if devices is not None else {}
        self.boot = dict(boot or {})
        self.targets: dict[str, _Target] = {}
        self.log: list[str] = []  # what the kernel would print (pr_err/pr_info)
        if create:
            self.base.mkdir(parents=True, exist_ok=True)

    def kernel_release(self) -> str:
        return PROFILES[self.profile]

    @property
    def emulated(self) -> bool:
        return True

    # -- helpers --------------------------------------------------------------------------
    def _set(self, rel: str, value: str) -> None:
        """Store what the kernel's show() would print, bypassing the rules."""
        with open(self.path(rel), "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(value + "\n")

    def _device(self, name: str) -> Device | None:
        if self.host_devices:
            return _host_device(name)
        return self.devices.get(name)

    def _state(self, name: str) -> _Target:
        """The target's hidden state; rebuilt from its files for a target made earlier (the
        sandbox keeps no other record between commands)."""
        t = self.targets.get(name)
        if t is not None:
            return t
        t = _Target()
        with contextlib.suppress(OSError):
            t.enabled = self.read(f"{name}/enabled").strip() == "1"
        for attr in ("local_ip", "remote_ip"):
            with contextlib.suppress(OSError, ValueError):
                addr = ipaddress.ip_address(self.read(f"{name}/{attr}").strip())
                t.ipv6 = addr.version == 6
                setattr(t, attr, _union(addr.packed))
        self.targets[name] = t
        return t

    def _render_ip(self, name: str) -> None:
        """local_ip_show/remote_ip_show: %pI6c of all 16 bytes with the IPv6 flag, else %pI4
        of the first 4 (so an unset address reads ``0.0.0.0`` or ``::``)."""
        t = self._state(name)
        for attr in ("local_ip", "remote_ip"):
            raw: bytes = getattr(t, attr)
            if t.ipv6:
                text = str(ipaddress.IPv6Address(raw))
            else:
                text = str(ipaddress.IPv4Address(raw[:4]))
            self._set(f"{name}/{attr}", text)

    @staticmethod
    def _split(rel: str) -> list[str]:
        return [p for p in rel.split("/") if p]

    def _is_target(self, name: str) -> bool:
        return os.path.isfile(self.path(f"{name}/enabled"))

    def _extradata(self, name: str) -> int:
        """userdata keys plus enabled sysdata toggles (6.15-6.18 count them together)."""
        n = len(self.listdir(f"{name}/userdata"))
        if self.kernel.sysdata_count_as_userdata:
            for s in self.kernel.sysdata:
                if self._sysdata_bit(name, s):
                    n += 1
        return n

    def _sysdata_bit(self, name: str, toggle: str) -> bool:
        """The stored bit (the file holds it; only the read of release_enabled is skewed)."""
        try:
            return super().read(f"{name}/userdata/{kfeat.sysdata_file(toggle)}") == "1"
        except OSError:
            return False

    # -- the seam -------------------------------------------------------------------------
    def available(self) -> bool:
        """A sandbox behaves as if the module were loaded: ``netconsole/`` appears with the
        first target."""
        return self.base.is_dir() or self.root.is_dir()

    def listdir(self, rel: str = "") -> list[str]:
        if not rel and not self.base.is_dir() and self.root.is_dir():
            return []
        return super().listdir(rel)

    def mkdir(self, rel: str) -> None:
        parts = self._split(rel)
        if len(parts) == 1:
            self._mkdir_target(parts[0], rel)
            return
        if len(parts) == 3 and parts[1] == "userdata" and self._is_target(parts[0]):
            if not self.kernel.userdata:
                raise OSError(errno.ENOENT, "No such file or directory", str(self.path(rel)))
            name, key = parts[0], parts[2]
            # netconsole's userdatum make_item: the name limit, then the count limit.
            if len(key.encode()) > MAX_USERDATA_NAME_LENGTH:
                raise OSError(errno.ENAMETOOLONG, "File name too long", str(self.path(rel)))
            if self.exists(rel):
                raise OSError(errno.EEXIST, "File exists", str(self.path(rel)))
            if self._extradata(name) >= self.kernel.max_userdata:
                raise OSError(errno.ENOSPC, "No space left on device", str(self.path(rel)))
            super().mkdir(rel)
            self._set(f"{rel}/value", "")
            return
        # Attribute directories and anything else: configfs has no make_item there.
        raise OSError(errno.EPERM, "Operation not permitted", str(self.path(rel)))

    def _mkdir_target(self, name: str, rel: str) -> None:
        if not self.base.is_dir():
            self.base.mkdir(parents=True, exist_ok=True)  # the module "loads" on first use
        super().mkdir(rel)  # EEXIST as configfs would say
        # make_netconsole_target() / alloc_and_init(): the attribute files of this kernel
        # with their defaults (netconsolectl.sender.attrs).
        k = self.kernel
        files = attrs.present(k.version)
        for a in attrs.ATTRS:
            if a.name in files:
                self._set(f"{name}/{a.name}", a.default)
        if k.userdata:
            os.mkdir(self.path(f"{name}/userdata"))
            for s in attrs.SYSDATA:
                if s.name in k.sysdata:
                    self._set(f"{name}/userdata/{s.file}", "0")
        t = _Target()
        self.targets[name] = t
        values = self.boot.get(name) if k.boot_targets_in_configfs else None
        if values is not None:  # attach to the boot target, with its current state
            self._attach(name, t, values)

    def _attach(self, name: str, t: _Target, values: dict[str, str]) -> None:
        for attr in ("local_ip", "remote_ip"):
            if attr in values:
                addr = ipaddress.ip_address(values[attr])
                t.ipv6 = t.ipv6 or addr.version == 6
                setattr(t, attr, _union(addr.packed))
        self._render_ip(name)
        for attr, value in values.items():
            if attr not in ("local_ip", "remote_ip"):
                self._set(f"{name}/{attr}", value)
        t.enabled = values.get("enabled") == "1"

    def rmdir(self, rel: str) -> None:
        parts = self._split(rel)
        if len(parts) == 1 and self._is_target(parts[0]):
            name = parts[0]
            if self.listdir(f"{name}/userdata") if self.isdir(f"{name}/userdata") else []:
                # fs/configfs/dir.c configfs_detach_prep: user-created children remain.
                raise OSError(errno.ENOTEMPTY, "Directory not empty", str(self.path(rel)))
            # Allowed while enabled: drop_netconsole_target() cleans netpoll up. A boot target
            # removed this way is gone for good; a later mkdir makes an ordinary one.
            shutil.rmtree(self.path(name))
            self.targets.pop(name, None)
            if self.kernel.boot_targets_in_configfs:
                self.boot.pop(name, None)
            return
        if len(parts) == 3 and parts[1] == "userdata" and self._is_target(parts[0]):
            if not self.isdir(rel):
                raise OSError(errno.ENOENT, "No such file or directory", str(self.path(rel)))
            shutil.rmtree(self.path(rel))
            return
        if len(parts) == 2 and parts[1] == "userdata":
            raise OSError(errno.EPERM, "Operation not permitted", str(self.path(rel)))
        super().rmdir(rel)

    def read(self, rel: str) -> str:
        parts = self._split(rel)
        if (len(parts) == 3 and parts[1] == "userdata" and parts[2].endswith("_enabled")
                and not self.kernel.release_enabled_readable
                and parts[2] == kfeat.sysdata_file("release")):
            # sysdata_release_enabled_show() tested the taskname bit until the 2026 fix.
            super().read(rel)  # ENOENT as usual when absent
            return "1" if self._sysdata_bit(parts[0], "taskname") else "0"
        return super().read(rel)

    def write(self, rel: str, value: str) -> None:
        parts = self._split(rel)
        if not value:
            # fs/configfs/file.c: a zero-length write(2) never reaches store() -> EFAULT.
            raise OSError(errno.EFAULT, "Bad address", str(self.path(rel)))
        if len(parts) == 4 and parts[1] == "userdata" and parts[3] == "value":
            self._store_userdatum(rel, value)
            return
        if len(parts) == 3 and parts[1] == "userdata" and self._is_target(parts[0]):
            toggle = parts[2].removesuffix("_enabled")
            if parts[2].endswith("_enabled") and toggle in self.kernel.sysdata:
                self._store_sysdata(parts[0], toggle, value)
                return
            raise OSError(errno.ENOENT, "No such file or directory", str(self.path(rel)))
        if len(parts) != 2 or not self._is_target(parts[0]):
            raise OSError(errno.ENOENT, "No such file or directory", str(self.path(rel)))
        name, attr = parts
        if not self.exists(rel) or not os.path.isfile(self.path(rel)):
            raise OSError(errno.ENOENT, "No such file or directory", str(self.path(rel)))
        if attr in ("local_mac", "transmit_errors"):
            # configfs_open_file(): no store method -> EACCES, even for root.
            raise OSError(errno.EACCES, "Permission denied", str(self.path(rel)))
        t = self._state(name)
        if attr == "enabled":
            self._store_enabled(name, t, value)
            return
        if attr not in PARAMS:
            raise OSError(errno.ENOENT, "No such file or directory", str(self.path(rel)))
        if t.enabled and not attrs.attr(attr).while_enabled:
            self.log.append(f"target ({name}) is enabled, disable to update parameters")
            raise _einval(self.path(rel))
        self._store_param(name, attr, rel, t, value)

    def _store_userdatum(self, rel: str, value: str) -> None:
        # userdatum_value_store(): count > MAX_USERDATA_VALUE_LENGTH -> EMSGSIZE. Up to 6.18
        # exactly 200 bytes leaves no room for the NUL in strscpy -> E2BIG after the first
        # 199 bytes are stored (it returns before update_userdata()); 7.x refuses >= 200
        # with EMSGSIZE up front. Embedded newlines are kept; one trailing one is stripped.
        if not self.isdir(rel.rsplit("/", 1)[0]):
            raise OSError(errno.ENOENT, "No such file or directory", str(self.path(rel)))
        size = len(value.encode("utf-8", "surrogateescape"))
        if size > MAX_USERDATA_VALUE_LENGTH or (
                size == MAX_USERDATA_VALUE_LENGTH
                and self.kernel.overlong_value_errno != errno.E2BIG):
            raise OSError(errno.EMSGSIZE, "Message too long", str(self.path(rel)))
        if size == MAX_USERDATA_VALUE_LENGTH:
            cut = value.encode("utf-8", "surrogateescape")[: MAX_USERDATA_VALUE_LENGTH - 1]
            self._set(rel, cut.decode("utf-8", "surrogateescape"))
            raise OSError(errno.E2BIG, "Argument list too long", str(self.path(rel)))
        self._set(rel, _strip_nl(value))

    def _store_sysdata(self, name: str, toggle: str, value: str) -> None:
        """``sysdata_<toggle>_enabled_store`` (6.15+): kstrtobool; allowed while enabled;
        storing the current value succeeds; turning one on when userdata keys plus enabled
        toggles already number 16 fails with ENOSPC on 6.15-6.18."""
        rel = f"{name}/userdata/{kfeat.sysdata_file(toggle)}"
        on = _kstrtobool(value, ed=self.kernel.enabled_accepts_e)
        if on == self._sysdata_bit(name, toggle):
            return
        if on and self.kernel.sysdata_count_as_userdata and (
                self._extradata(name) >= self.kernel.max_userdata):
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path(rel)))
        self._set(rel, "1" if on else "0")

    def _store_param(self, name: str, attr: str, rel: str, t: _Target, value: str) -> None:
        k = self.kernel
        if attr in ("extended", "release"):
            if attr == "extended" and not k.bool_words:
                on = _kstrtoint01(value)
            else:
                on = _kstrtobool(value, ed=k.enabled_accepts_e)
            self._set(rel, "1" if on else "0")
        elif attr == "dev_name":
            # dev_name_store() trims one trailing newline. IFNAMSIZ or more bytes: 6.12 and
            # 7.3 refuse them with ENAMETOOLONG, 6.18 keeps the first 15 (all measured).
            name_ = _strip_nl(value)
            if len(name_.encode()) >= IFNAMSIZ:
                if not k.dev_name_truncates:
                    raise OSError(errno.ENAMETOOLONG, "File name too long", str(self.path(rel)))
                name_ = name_.encode()[:IFNAMSIZ - 1].decode("utf-8", "ignore")
            self._set(rel, name_)
        elif attr in ("local_port", "remote_port"):
            self._set(rel, str(_kstrtou16(value)))
        elif attr == "remote_mac":
            # remote_mac_store(): mac_pton() and the 18th character must be NUL or '\n'.
            body = value[:17]
            if len(value) > 17 and value[17] != "\n":  # anything after the newline is ignored
                raise _einval(self.path(rel))
            groups = body.split(":")
            if len(body) != 17 or len(groups) != 6 or not all(
                len(g) == 2 and all(c in "0123456789abcdefABCDEF" for c in g) for g in groups
            ):
                raise _einval(self.path(rel))
            self._set(rel, body.lower())
        else:
            self._store_ip(name, attr, rel, t, value)

    def _store_ip(self, name: str, attr: str, rel: str, t: _Target, value: str) -> None:
        text = _strip_nl(value)
        if self.kernel.family_switch_in_place:
            # 6.18+ local_ip_store/remote_ip_store: netpoll_parse_ip_addr() (strict IPv4,
            # then IPv6; else EINVAL) and ``np.ipv6 = !!ipv6``: the last address written
            # sets the family of both, so the other one is read in that family.
            parsed = _strict_ip(text)
            if parsed is None:
                prefix = _in4_prefix(text)
                if prefix is not None:
                    setattr(t, attr, prefix)
                    self._render_ip(name)
                raise _einval(self.path(rel))
            packed, t.ipv6 = parsed
        elif ":" in text:
            # <= 6.12: ':' means IPv6 and sets the sticky flag for both addresses.
            try:
                packed = _union(ipaddress.IPv6Address(text).packed)
            except ValueError:
                raise _einval(self.path(rel)) from None
            t.ipv6 = True
        elif t.ipv6:
            raise _einval(self.path(rel))  # IPv4 after IPv6: only a recreate clears the flag
        else:
            packed = _union(_in_aton(text))  # in_aton() validates nothing
        setattr(t, attr, packed)
        self._render_ip(name)

    def _parse_enabled(self, value: str) -> bool:
        k = self.kernel
        if not k.bool_words:
            return _kstrtoint01(value)
        return _kstrtobool(value, ed=k.enabled_accepts_e)

    def _store_enabled(self, name: str, t: _Target, value: str) -> None:
        enabled = self._parse_enabled(value)
        # 7.x enabled_store(): any write to a deactivated target first makes it disabled,
        # which cancels the resume (so writing 0 then fails as "already stopped").
        t.deactivated = False
        if enabled == t.enabled:
            state = "started" if enabled else "stopped"
            self.log.append(f"network logging has already {state}")
            raise OSError(errno.EINVAL, "Invalid argument")
        if not enabled:
            self._stop(name, t)
            return
        if self.kernel.release_attr and self.read(f"{name}/release") == "1" and self.read(
                f"{name}/extended") == "0":
            self.log.append(
                "Not enabling netconsole. Release feature requires extended log message"
            )
            raise OSError(errno.EINVAL, "Invalid argument")
        dev = self._netpoll_device(name)
        self._autodetect_source(name, t, dev)
        t.enabled = True
        self._set(f"{name}/enabled", "1")
        self._set(f"{name}/local_mac", dev.mac)
        self.log.append("network logging started")

    def _stop(self, name: str, t: _Target) -> None:
        t.enabled = False
        self._set(f"{name}/enabled", "0")
        self._set(f"{name}/local_mac", BROADCAST_MAC)  # netpoll_cleanup() drops np->dev

    def _netpoll_device(self, name: str) -> Device:
        """netpoll_setup()'s device checks, in its order; the device to send through."""
        prefix = "netpoll: netconsole"
        dev_name = self.read(f"{name}/dev_name")
        dev = self._device(dev_name)
        if dev is None:
            self.log.append(f"{prefix}: {dev_name} doesn't exist, aborting")
            raise OSError(errno.ENODEV, "No such device")
        if dev.master is not None:
            self.log.append(f"{prefix}: {dev_name} is a slave device, aborting")
            raise OSError(errno.EBUSY, "Device or resource busy")
        if not dev.up and not self.host_devices:
            dev.up = True  # "device %s not up yet, forcing it"
        if not dev.netpoll:
            raise OSError(ENOTSUPP, "Unknown error 524")
        return dev

    def _autodetect_source(self, name: str, t: _Target, dev: Device) -> None:
        """An unset (all-zero) local_ip takes the device's first address of the target's
        family, and keeps it after a later disable; none -> EDESTADDRREQ."""
        if any(t.local_ip[:16 if t.ipv6 else 4]):
            return
        found = dev.ipv6 if t.ipv6 else dev.ipv4
        if not found:
            raise OSError(errno.EDESTADDRREQ, "Destination address required")
        t.local_ip = _union(ipaddress.ip_address(found[0]).packed)
        self._render_ip(name)

    # -- the netdev notifier (drivers/net/netconsole.c netconsole_netdev_event) -------------
    def unregister(self, dev_name: str) -> None:
        """NETDEV_UNREGISTER: the device goes away and its enabled targets stop.

        Up to 6.18 they are disabled for good ("network logging stopped on interface X as it
        unregistered"). 7.x keeps them *deactivated* (reading ``enabled`` 0) and resumes them
        when the device returns (:meth:`register`).
        """
        self.devices.pop(dev_name, None)
        keep = self.kernel.keeps_deactivated_targets
        self._drop(dev_name, f"network logging stopped on interface {dev_name} as it "
                   "unregistered", deactivate=keep)

    def register(self, device: Device) -> None:
        """NETDEV_REGISTER: ignored up to 6.18; 7.x resumes a deactivated target bound to the
        device ("network logging resumed on interface X"), forcing the link up; if that setup
        fails the target becomes disabled, with no retry."""
        self.devices[device.name] = device
        for name in self.listdir():
            t = self._state(name)
            if t.deactivated and self.read(f"{name}/dev_name") == device.name:
                with contextlib.suppress(OSError):
                    self._store_enabled(name, t, "1")
                    self.log.append(f"network logging resumed on interface {device.name}")

    def deactivated(self, name: str) -> bool:
        """Whether the kernel holds ``name`` deactivated (for tests: configfs cannot say)."""
        return self._state(name).deactivated

    def enslave(self, dev_name: str, master: str) -> None:
        """NETDEV_JOIN: the device joins a master; its targets are disabled, never resumed."""
        self.devices[dev_name].master = master
        self._drop(dev_name, f"network logging stopped on interface {dev_name} as it is "
                   "joining a master device", deactivate=False)

    def _drop(self, dev_name: str, message: str, *, deactivate: bool) -> None:
        for name in self.listdir():
            t = self._state(name)
            if t.enabled and self.read(f"{name}/dev_name") == dev_name:
                self._stop(name, t)
                t.deactivated = deactivate
                self.log.append(message)


def _host_device(name: str) -> Device | None:
    """A real network device of this machine, read from sysfs and procfs (no netlink)."""
    base = Path(SYS_CLASS_NET) / name
    if not name or "/" in name or not base.is_dir():
        return None
    try:
        mac = (base / "address").read_text().strip()
    except OSError:
        mac = BROADCAST_MAC
    master = base / "master"
    dev = Device(name, mac=mac, master=master.resolve().name if master.exists() else None)
    try:
        flags = int((base / "flags").read_text(), 16)
        dev.up = bool(flags & 0x1)
    except (OSError, ValueError):
        pass
    dev.ipv4 = [a for a in [_ipv4_of(name)] if a]
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 6 and fields[5] == name:
                    dev.ipv6.append(str(ipaddress.IPv6Address(bytes.fromhex(fields[0]))))
    except OSError:
        pass
    return dev


def _ipv4_of(name: str) -> str | None:
    """The primary IPv4 address of ``name`` (SIOCGIFADDR), or None."""
    import fcntl

    siocgifaddr = 0x8915
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            res = fcntl.ioctl(s.fileno(), siocgifaddr, struct.pack("256s", name.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(res[20:24])


def sandbox(root: Path | str, profile: str | None = None) -> Emulation:
    """The emulation for a ``--configfs-root`` that is a plain directory.

    The kernel profile is ``profile``, else ``$NETCONSOLECTL_SANDBOX_KERNEL``, else the newest.
    Nothing is created until a target is: a missing root stays missing.
    """
    chosen = profile or os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE
    return Emulation(root, profile=chosen, create=False, host_devices=True)

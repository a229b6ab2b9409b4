"""A configfs seam that behaves like Linux 6.12's netconsole, for the unit and CLI tiers.

Plain files cannot refuse writes, so the kernel's rules live here, in a subclass of the
product's :class:`~netconsolectl.sender.configfs.ConfigFS`: each operation is checked the way
drivers/net/netconsole.c (6.12) and fs/configfs check it, and then carried out on a real
directory through the product's own file code (so reads go through the real path and every
value read back ends with ``\\n`` as configfs prints it).

Every rule claimed here is asserted against the real kernel by tests/conformance.py, which
runs both on this fake (tests/unit/test_conformance.py) and inside the QEMU guest
(tests/kernel/).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from netconsolectl.sender.configfs import ConfigFS

ENOTSUPP = 524  # include/linux/errno.h, kernel-internal

BCAST = "ff:ff:ff:ff:ff:ff"
# drivers/net/netconsole.c (6.12): MAX_USERDATA_ITEMS 16, MAX_USERDATA_NAME_LENGTH 54 (with
# the NUL), MAX_USERDATA_VALUE_LENGTH 200 (with the NUL).
MAX_USERDATA_ITEMS = 16
MAX_USERDATA_NAME = 53
MAX_USERDATA_VALUE = 200

PARAMS = ("dev_name", "local_ip", "local_port", "remote_ip", "remote_port", "remote_mac",
          "extended", "release")


@dataclass
class FakeDevice:
    """A network device as netpoll_setup() would find it in the writer's namespace."""

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
    ipv6: bool = False  # 6.12's sticky np.ipv6 flag
    local_ip: bytes = bytes(16)  # union inet_addr: IPv4 in the first 4 bytes
    remote_ip: bytes = bytes(16)


def _kstrtobool(value: str) -> bool:
    """lib/kstrtox.c kstrtobool: the first character decides; 'on'/'off' need two."""
    s = value
    if not s:
        raise OSError(errno.EINVAL, "Invalid argument")
    c = s[0]
    if c in "yYtT1":
        return True
    if c in "nNfF0":
        return False
    if c in "oO" and len(s) > 1:
        if s[1] in "nN":
            return True
        if s[1] in "fF":
            return False
    raise OSError(errno.EINVAL, "Invalid argument")


def _kstrtou16(value: str) -> int:
    """lib/kstrtox.c: decimal digits with one optional trailing newline; ERANGE above 65535."""
    s = value[:-1] if value.endswith("\n") else value
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
    return (word & 0xFFFFFFFF).to_bytes(4, "big") + bytes(12)


class FakeKernel(ConfigFS):
    """The 6.12 netconsole configfs tree, with a configurable set of network devices."""

    def __init__(
        self,
        root: Path | str,
        devices: dict[str, FakeDevice] | None = None,
        *,
        transmit_errors: bool = False,
        boot: dict[str, dict[str, str]] | None = None,
    ) -> None:
        super().__init__(root)
        self.devices = devices if devices is not None else {}
        # Targets the boot parameter created (cmdlineN -> attribute values, "enabled" among
        # them): invisible until a mkdir of that name attaches to them; rmdir destroys them.
        self.boot = dict(boot or {})
        self.transmit_errors = transmit_errors  # the attribute arrived in 6.13
        self.targets: dict[str, _Target] = {}
        self.log: list[str] = []  # what the kernel would print (pr_err/pr_info)
        self.base.mkdir(parents=True, exist_ok=True)

    # -- helpers --------------------------------------------------------------------------
    def _set(self, rel: str, value: str) -> None:
        """Store what the kernel's show() would print, bypassing the rules."""
        with open(self.path(rel), "w") as f:
            f.write(value + "\n")

    def _render_ip(self, name: str) -> None:
        t = self.targets[name]
        for attr in ("local_ip", "remote_ip"):
            raw: bytes = getattr(t, attr)
            if t.ipv6:
                text = str(ipaddress.IPv6Address(raw))  # %pI6c: compressed
            else:
                text = str(ipaddress.IPv4Address(raw[:4]))
            self._set(f"{name}/{attr}", text)

    @staticmethod
    def _split(rel: str) -> list[str]:
        return [p for p in rel.split("/") if p]

    # -- the seam -------------------------------------------------------------------------
    def mkdir(self, rel: str) -> None:
        parts = self._split(rel)
        if len(parts) == 1:
            name = parts[0]
            super().mkdir(rel)  # EEXIST as configfs would say
            # make_netconsole_target() / alloc_and_init(): defaults of a new target.
            defaults = {
                "enabled": "0",
                "extended": "0",
                "release": "0",
                "dev_name": "eth0",
                "local_port": "6665",
                "remote_port": "6666",
                "local_mac": BCAST,
                "remote_mac": BCAST,
            }
            if self.transmit_errors:
                defaults["transmit_errors"] = "0"
            for attr, value in defaults.items():
                self._set(f"{name}/{attr}", value)
            os.mkdir(self.path(f"{name}/userdata"))
            self.targets[name] = _Target()
            self._render_ip(name)
            attrs = self.boot.get(name)
            if attrs is not None:  # attach to the boot target, with its current state
                t = self.targets[name]
                for attr in ("local_ip", "remote_ip"):
                    if attr in attrs:
                        addr = ipaddress.ip_address(attrs[attr])
                        t.ipv6 = t.ipv6 or addr.version == 6
                        setattr(t, attr, addr.packed.ljust(16, b"\0"))
                self._render_ip(name)
                for attr, value in attrs.items():
                    if attr not in ("local_ip", "remote_ip"):
                        self._set(f"{name}/{attr}", value)
                t.enabled = attrs.get("enabled") == "1"
            return
        if len(parts) == 3 and parts[1] == "userdata" and parts[0] in self.targets:
            key = parts[2]
            # configfs limits a name to NAME_MAX; netconsole's make_item checks the count.
            if len(key.encode()) > MAX_USERDATA_NAME:
                raise OSError(errno.ENAMETOOLONG, "File name too long", str(self.path(rel)))
            if len(self.listdir(f"{parts[0]}/userdata")) >= MAX_USERDATA_ITEMS:
                raise OSError(errno.ENOSPC, "No space left on device", str(self.path(rel)))
            super().mkdir(rel)
            self._set(f"{rel}/value", "")
            return
        # Attribute directories and anything else: configfs has no make_item there.
        raise OSError(errno.EPERM, "Operation not permitted", str(self.path(rel)))

    def rmdir(self, rel: str) -> None:
        parts = self._split(rel)
        if len(parts) == 1 and parts[0] in self.targets:
            name = parts[0]
            if self.listdir(f"{name}/userdata"):
                # fs/configfs/dir.c configfs_detach_prep: user-created children remain.
                raise OSError(errno.ENOTEMPTY, "Directory not empty", str(self.path(rel)))
            # Allowed while enabled: drop_netconsole_target() cleans netpoll up. A boot target
            # removed this way is gone for good; a later mkdir makes an ordinary one.
            shutil.rmtree(self.path(name))
            del self.targets[name]
            self.boot.pop(name, None)
            return
        if len(parts) == 3 and parts[1] == "userdata" and parts[0] in self.targets:
            shutil.rmtree(self.path(rel))
            return
        if len(parts) == 2 and parts[1] == "userdata":
            raise OSError(errno.EPERM, "Operation not permitted", str(self.path(rel)))
        super().rmdir(rel)

    def write(self, rel: str, value: str) -> None:
        parts = self._split(rel)
        if not value:
            # fs/configfs/file.c: a zero-length write(2) never reaches store() -> EFAULT.
            raise OSError(errno.EFAULT, "Bad address", str(self.path(rel)))
        if len(parts) == 4 and parts[1] == "userdata" and parts[3] == "value":
            # userdatum_value_store(): count > MAX_USERDATA_VALUE_LENGTH -> EMSGSIZE; exactly
            # 200 bytes leaves no room for the NUL in strscpy -> E2BIG. Embedded newlines are
            # kept; one trailing newline is stripped.
            size = len(value.encode())
            if size > MAX_USERDATA_VALUE:
                raise OSError(errno.EMSGSIZE, "Message too long", str(self.path(rel)))
            if size == MAX_USERDATA_VALUE:
                # strscpy() has already stored the first 199 bytes when it reports E2BIG
                # (userdatum_value_store returns before update_userdata()).
                self._set(rel, value.encode()[: MAX_USERDATA_VALUE - 1].decode(errors="ignore"))
                raise OSError(errno.E2BIG, "Argument list too long", str(self.path(rel)))
            self._set(rel, value[:-1] if value.endswith("\n") else value)
            return
        if len(parts) != 2 or parts[0] not in self.targets:
            raise OSError(errno.ENOENT, "No such file or directory", str(self.path(rel)))
        name, attr = parts
        t = self.targets[name]
        if attr not in ("enabled", *PARAMS) and not self.exists(rel):
            raise OSError(errno.ENOENT, "No such file or directory", str(self.path(rel)))
        if attr in ("local_mac", "transmit_errors"):
            # configfs_open_file(): no store method -> EACCES, even for root.
            raise OSError(errno.EACCES, "Permission denied", str(self.path(rel)))
        if attr == "enabled":
            self._store_enabled(name, t, value)
            return
        if attr not in PARAMS or not self.exists(rel):
            raise OSError(errno.ENOENT, "No such file or directory", str(self.path(rel)))
        if t.enabled:
            self.log.append(f"target ({name}) is enabled, disable to update parameters")
            raise OSError(errno.EINVAL, "Invalid argument", str(self.path(rel)))
        if attr in ("extended", "release"):
            self._set(rel, "1" if _kstrtobool(value) else "0")
        elif attr == "dev_name":
            # dev_name_store(): Debian's 6.12 rejects IFNAMSIZ or more bytes (not counting one
            # trailing newline) with ENAMETOOLONG instead of truncating; trims the newline.
            name_ = value[:-1] if value.endswith("\n") else value
            if len(name_.encode()) >= 16:
                raise OSError(errno.ENAMETOOLONG, "File name too long", str(self.path(rel)))
            self._set(rel, name_)
        elif attr in ("local_port", "remote_port"):
            self._set(rel, str(_kstrtou16(value)))
        elif attr == "remote_mac":
            # remote_mac_store(): mac_pton() and the 18th character must be NUL or '\n'.
            body = value[:17]
            if len(value) > 17 and value[17] != "\n":  # anything after the newline is ignored
                raise OSError(errno.EINVAL, "Invalid argument", str(self.path(rel)))
            groups = body.split(":")
            if len(body) != 17 or len(groups) != 6 or not all(
                len(g) == 2 and all(c in "0123456789abcdefABCDEF" for c in g) for g in groups
            ):
                raise OSError(errno.EINVAL, "Invalid argument", str(self.path(rel)))
            self._set(rel, body.lower())
        else:  # local_ip / remote_ip
            text = value[:-1] if value.endswith("\n") else value
            if ":" in text:
                try:
                    packed = ipaddress.IPv6Address(text).packed
                except ValueError:
                    raise OSError(errno.EINVAL, "Invalid argument", str(self.path(rel))) from None
                t.ipv6 = True
            elif t.ipv6:
                raise OSError(errno.EINVAL, "Invalid argument", str(self.path(rel)))
            else:
                packed = _in_aton(text)
            setattr(t, attr, packed)
            self._render_ip(name)

    def _store_enabled(self, name: str, t: _Target, value: str) -> None:
        enabled = _kstrtobool(value)
        if enabled == t.enabled:
            state = "started" if enabled else "stopped"
            self.log.append(f"network logging has already {state}")
            raise OSError(errno.EINVAL, "Invalid argument")
        if not enabled:
            t.enabled = False
            self._set(f"{name}/enabled", "0")
            self._set(f"{name}/local_mac", BCAST)  # netpoll_cleanup() drops np->dev
            return
        if self.read(f"{name}/release") == "1" and self.read(f"{name}/extended") == "0":
            self.log.append(
                "Not enabling netconsole. Release feature requires extended log message"
            )
            raise OSError(errno.EINVAL, "Invalid argument")
        dev_name = self.read(f"{name}/dev_name")
        dev = self.devices.get(dev_name)
        if dev is None:
            self.log.append(f"netpoll: netconsole: {dev_name} doesn't exist, aborting")
            raise OSError(errno.ENODEV, "No such device")
        if dev.master is not None:
            self.log.append(f"netpoll: netconsole: {dev_name} is a slave device, aborting")
            raise OSError(errno.EBUSY, "Device or resource busy")
        if not dev.up:
            dev.up = True  # "device %s not up yet, forcing it"
        if not dev.netpoll:
            raise OSError(ENOTSUPP, "Unknown error 524")
        if not any(t.local_ip):
            if t.ipv6:
                if not dev.ipv6:
                    raise OSError(errno.EDESTADDRREQ, "Destination address required")
                t.local_ip = ipaddress.IPv6Address(dev.ipv6[0]).packed
            else:
                if not dev.ipv4:
                    raise OSError(errno.EDESTADDRREQ, "Destination address required")
                t.local_ip = ipaddress.IPv4Address(dev.ipv4[0]).packed + bytes(12)
            self._render_ip(name)
        t.enabled = True
        self._set(f"{name}/enabled", "1")
        self._set(f"{name}/local_mac", dev.mac)
        self.log.append("network logging started")

    # -- the netdev notifier (drivers/net/netconsole.c netconsole_netdev_event, 6.12) --------
    def unregister(self, dev_name: str) -> None:
        """NETDEV_UNREGISTER: the device goes away; its enabled targets are disabled for good.

        6.12 logs "network logging stopped on interface X as it unregistered" and never
        resumes the target (the ~7.0 auto-resume is not modelled).
        """
        self.devices.pop(dev_name, None)
        self._drop(dev_name, f"network logging stopped on interface {dev_name} as it "
                   "unregistered")

    def register(self, device: FakeDevice) -> None:
        """NETDEV_REGISTER: 6.12 ignores it (no target is resumed)."""
        self.devices[device.name] = device

    def enslave(self, dev_name: str, master: str) -> None:
        """NETDEV_JOIN: the device joins a master; its targets are disabled, never resumed."""
        self.devices[dev_name].master = master
        self._drop(dev_name, f"network logging stopped on interface {dev_name} as it is "
                   "joining a master device")

    def _drop(self, dev_name: str, message: str) -> None:
        for name, t in self.targets.items():
            if t.enabled and self.read(f"{name}/dev_name") == dev_name:
                t.enabled = False
                self._set(f"{name}/enabled", "0")
                self._set(f"{name}/local_mac", BCAST)
                self.log.append(message)

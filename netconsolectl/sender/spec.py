"""Validated desired state of a target: every value is checked here before the first write.

The rules mirror what drivers/net/netconsole.c and configfs accept, tightened where the kernel
accepts garbage silently (``in_aton`` turns any string into some IPv4 address) or where the
value would break the wire format (a newline in a userdata value starts a new line on the
wire; ``=`` or a space in a key makes ``␠key=value`` ambiguous for receivers).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, replace
from typing import Any

from netconsolectl.errors import InvalidInput
from netconsolectl.facts import (
    DEFAULT_LOCAL_PORT,
    DEFAULT_REMOTE_PORT,
    IFNAMSIZ,
    MAX_USERDATA_NAME_LENGTH,
    MAX_USERDATA_VALUE_LENGTH,
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_TARGET_NAME = 64
# The longest userdata key and value the kernel stores whole (see netconsolectl.facts: the
# value's buffer of MAX_USERDATA_VALUE_LENGTH bytes holds its NUL too).
MAX_USERDATA_KEY = MAX_USERDATA_NAME_LENGTH
MAX_USERDATA_VALUE = MAX_USERDATA_VALUE_LENGTH - 1

_MAC_RE = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+-]*$")


def parse_ip(value: str, what: str = "IP address") -> IPAddress:
    """An IPv4 or IPv6 address, strictly parsed (no zone index, no prefix)."""
    text = value.strip()
    if "%" in text:
        raise InvalidInput(
            f"invalid {what} {value!r}: netconsole takes no zone index (%iface)",
            hint="use --dev to choose the interface",
        )
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidInput(f"invalid {what} {value!r}: not an IPv4 or IPv6 address") from None
    if addr.is_unspecified:
        raise InvalidInput(f"invalid {what} {value!r}: the unspecified address cannot be used")
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        raise InvalidInput(
            f"invalid {what} {value!r}: IPv4-mapped IPv6 addresses are not supported",
            hint=f"use the IPv4 address {addr.ipv4_mapped}",
        )
    return addr


def parse_remote_ip(value: str, what: str = "remote IP") -> IPAddress:
    """The collector's address: unicast only. netconsole sends each frame to one MAC
    (``remote_mac``), so a multicast or broadcast address would reach at most the one
    machine behind that MAC, or nobody."""
    addr = parse_ip(value, what)
    if addr.is_multicast:
        raise InvalidInput(f"invalid {what} {value!r}: a multicast address; netconsole sends "
                           "unicast frames to one collector",
                           hint="give the collector's own address")
    if addr == ipaddress.IPv4Address("255.255.255.255"):
        raise InvalidInput(f"invalid {what} {value!r}: the broadcast address; netconsole sends "
                           "unicast frames to one collector",
                           hint="give the collector's own address (--broadcast sends to the "
                                "broadcast MAC of an on-link collector)")
    return addr


def parse_mac(value: str) -> str:
    """``aa:bb:cc:dd:ee:ff`` (any case in, lowercase out), the only form ``mac_pton`` takes."""
    if not _MAC_RE.fullmatch(value.strip()):
        raise InvalidInput(
            f"invalid MAC address {value!r}: expected six hex pairs separated by ':' "
            "(aa:bb:cc:dd:ee:ff)"
        )
    return value.strip().lower()


def parse_port(value: int | str, what: str = "port") -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"invalid {what} {value!r}: not a number") from None
    if not 1 <= port <= 65535:
        raise InvalidInput(f"invalid {what} {value!r}: must be between 1 and 65535")
    return port


def validate_ifname(value: str) -> str:
    """Mirror of net/core/dev.c ``dev_valid_name``: 1-15 bytes, no '/', ':' or whitespace.

    Some kernels silently truncate longer names in ``dev_name_store`` (strscpy to IFNAMSIZ),
    which would bind the target to a different interface; others return ENAMETOOLONG.
    """
    raw = value.encode("utf-8", "surrogateescape")
    if not raw:
        raise InvalidInput("invalid interface name '': empty")
    if len(raw) >= IFNAMSIZ:
        raise InvalidInput(
            f"invalid interface name {value!r}: {len(raw)} bytes, at most {IFNAMSIZ - 1} allowed"
        )
    if value in (".", "..") or any(c in value for c in "/:") or any(c.isspace() for c in value):
        raise InvalidInput(
            f"invalid interface name {value!r}: no '/', ':', whitespace, '.' or '..'"
        )
    return value


def validate_target_name(value: str) -> str:
    """A configfs directory name we are willing to create: short, printable, unambiguous."""
    if not value:
        raise InvalidInput("invalid target name '': empty")
    if len(value) > MAX_TARGET_NAME:
        raise InvalidInput(
            f"invalid target name {value[:20]!r}...: {len(value)} characters, "
            f"at most {MAX_TARGET_NAME}"
        )
    if not _NAME_RE.fullmatch(value) or value in (".", ".."):
        raise InvalidInput(
            f"invalid target name {value!r}: use letters, digits and _ . @ + - "
            "(no '/', no whitespace, not starting with '.' or '-')"
        )
    return value


def validate_userdata_key(key: str) -> str:
    if not key:
        raise InvalidInput("invalid userdata key '': empty")
    if len(key) > MAX_USERDATA_KEY:
        raise InvalidInput(
            f"invalid userdata key {key[:20]!r}...: {len(key)} characters, "
            f"at most {MAX_USERDATA_KEY} (kernel limit)"
        )
    if key in (".", "..") or any(c in key for c in "/=") or any(
        c.isspace() or not c.isprintable() for c in key
    ):
        raise InvalidInput(
            f"invalid userdata key {key!r}: no '/', '=', whitespace or control characters"
        )
    return key


def validate_userdata_value(key: str, value: str) -> str:
    size = len(value.encode("utf-8", "surrogateescape"))
    if size > MAX_USERDATA_VALUE:
        raise InvalidInput(
            f"invalid userdata value for {key!r}: {size} bytes, at most {MAX_USERDATA_VALUE} "
            "(kernel limit)"
        )
    if "\n" in value or "\r" in value or "\0" in value:
        raise InvalidInput(f"invalid userdata value for {key!r}: no newline or NUL allowed")
    return value


def parse_sysdata(text: str) -> frozenset[str]:
    """``--sysdata cpu_nr,msgid`` -> the toggles to have on; ``none`` -> none of them."""
    from netconsolectl.sender.kernel import SYSDATA_NAMES

    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["none"]:
        return frozenset()
    bad = [n for n in names if n not in SYSDATA_NAMES]
    if bad or not names:
        raise InvalidInput(
            f"invalid --sysdata {text!r}: expected a comma-separated list of "
            f"{', '.join(SYSDATA_NAMES)}, or none"
        )
    return frozenset(names)


def _sysdata_list(value: Any, prefix: str) -> frozenset[str] | None:
    """A configuration's ``sysdata = ["msgid", ...]`` (an empty list turns all off)."""
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{prefix}sysdata must be a list of names, e.g. [\"msgid\"]")
    if not value:
        return frozenset()
    try:
        return parse_sysdata(",".join(value))
    except InvalidInput as e:
        raise InvalidInput(prefix + e.message.replace("--sysdata", "sysdata")) from None


def parse_userdata(item: str) -> tuple[str, str]:
    """``KEY=VALUE`` from the command line; ``KEY=`` (empty value) means remove the key."""
    if "=" not in item:
        raise InvalidInput(f"invalid userdata {item!r}: expected KEY=VALUE")
    key, value = item.split("=", 1)
    return validate_userdata_key(key), validate_userdata_value(key, value)


@dataclass(frozen=True)
class TargetSpec:
    """What the user wants for one target. ``None`` means "not specified".

    ``userdata`` maps keys to values; an empty value asks for the key to be removed.
    """

    dev_name: str | None = None
    local_ip: IPAddress | None = None
    local_port: int | None = None
    remote_ip: IPAddress | None = None
    remote_port: int | None = None
    remote_mac: str | None = None
    extended: bool | None = None
    release: bool | None = None
    userdata: dict[str, str] = field(default_factory=dict)
    enabled: bool | None = None
    #: sysdata toggles to have on (the complete set; None: leave them as they are)
    sysdata: frozenset[str] | None = None

    def check(self) -> TargetSpec:
        """Cross-field rules, raised as InvalidInput before anything is written."""
        if (
            self.local_ip is not None
            and self.remote_ip is not None
            and self.local_ip.version != self.remote_ip.version
        ):
            raise InvalidInput(
                f"local address {self.local_ip} and remote address {self.remote_ip} are of "
                "different families (IPv4 and IPv6)",
                hint="netconsole sends over one family; give both addresses of the same one",
            )
        return self

    def with_defaults(self) -> TargetSpec:
        """Fill what ``add`` leaves out with the kernel's defaults."""
        return replace(
            self,
            local_port=self.local_port if self.local_port is not None else DEFAULT_LOCAL_PORT,
            remote_port=self.remote_port if self.remote_port is not None else DEFAULT_REMOTE_PORT,
            extended=bool(self.extended),
            release=bool(self.release),
            enabled=True if self.enabled is None else self.enabled,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "") -> TargetSpec:
        """Build from config-file style keys (the configfs attribute names)."""
        prefix = f"{where}: " if where else ""
        known = {
            "dev_name", "local_ip", "local_port", "remote_ip", "remote_port", "remote_mac",
            "extended", "release", "userdata", "enabled", "sysdata",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInput(f"{prefix}unknown key(s) {', '.join(unknown)}")

        def opt_bool(key: str) -> bool | None:
            v = data.get(key)
            if v is None or isinstance(v, bool):
                return v
            raise InvalidInput(f"{prefix}{key} must be true or false, not {v!r}")

        try:
            userdata_raw = data.get("userdata") or {}
            if not isinstance(userdata_raw, dict):
                raise InvalidInput(f"{prefix}userdata must be a table of KEY = \"VALUE\"")
            userdata = {
                validate_userdata_key(str(k)): validate_userdata_value(str(k), str(v))
                for k, v in userdata_raw.items()
            }
            return cls(
                dev_name=validate_ifname(str(data["dev_name"])) if data.get("dev_name") else None,
                local_ip=parse_ip(str(data["local_ip"]), "local IP")
                if data.get("local_ip") else None,
                local_port=parse_port(data["local_port"], "local port")
                if data.get("local_port") is not None else None,
                remote_ip=parse_remote_ip(str(data["remote_ip"]))
                if data.get("remote_ip") else None,
                remote_port=parse_port(data["remote_port"], "remote port")
                if data.get("remote_port") is not None else None,
                remote_mac=parse_mac(str(data["remote_mac"])) if data.get("remote_mac") else None,
                extended=opt_bool("extended"),
                release=opt_bool("release"),
                userdata=userdata,
                enabled=opt_bool("enabled"),
                sysdata=_sysdata_list(data.get("sysdata"), prefix),
            ).check()
        except InvalidInput as e:
            if prefix and not e.message.startswith(prefix):
                raise InvalidInput(prefix + e.message, hint=e.hint) from None
            raise


def spec_from_options(
    *,
    remote_ip: str | None,
    remote_port: int | None,
    local_ip: str | None,
    local_port: int | None,
    dev: str | None,
    remote_mac: str | None,
    extended: bool | None,
    release: bool | None,
    userdata: list[str] | None,
    enabled: bool | None = None,
    sysdata: str | None = None,
) -> TargetSpec:
    """A spec from command-line strings, every value validated before anything is written."""
    pairs = [parse_userdata(u) for u in userdata or []]
    keys = [k for k, _ in pairs]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise InvalidInput(f"userdata key(s) given twice: {', '.join(dup)}")
    return TargetSpec(
        dev_name=validate_ifname(dev) if dev is not None else None,
        local_ip=parse_ip(local_ip, "local IP") if local_ip is not None else None,
        local_port=parse_port(local_port, "local port") if local_port is not None else None,
        remote_ip=parse_remote_ip(remote_ip) if remote_ip is not None else None,
        remote_port=parse_port(remote_port, "remote port") if remote_port is not None else None,
        remote_mac=parse_mac(remote_mac) if remote_mac is not None else None,
        extended=extended,
        release=release,
        userdata=dict(pairs),
        enabled=enabled,
        sysdata=parse_sysdata(sysdata) if sysdata is not None else None,
    ).check()

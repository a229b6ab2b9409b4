"""Facts about the kernel and the host that several layers need, each defined once.

Values come from the kernel's headers, from drivers/net/netconsole.c and from the host's
conventions (sysfs, systemd); everything that uses one of them imports it from here. Standard
library only, nothing imported at run time: the completion fast path loads this module on
every <TAB>.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: shell completion imports this module per <TAB>
if TYPE_CHECKING:
    from ipaddress import IPv4Address, IPv6Address
    from typing import TypeGuard

# remote_mac's default and the "no next hop" MAC: eth_broadcast_addr() in netconsole.c.
BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"

# The ports a target gets when none is written: alloc_and_init() in netconsole.c
# (np.local_port, np.remote_port); the receiver listens on the second by default.
DEFAULT_LOCAL_PORT = 6665
DEFAULT_REMOTE_PORT = 6666

# include/uapi/linux/if.h: an interface name is at most 15 bytes plus its NUL.
IFNAMSIZ = 16

# Userdata (6.9+, drivers/net/netconsole.c). MAX_USERDATA_VALUE_LENGTH is the value's buffer,
# its NUL included: userdatum_value_store() refuses a write over 200 bytes (EMSGSIZE), and
# strscpy() keeps at most 199 of exactly 200 (E2BIG), so 199 is the longest value stored whole.
# MAX_USERDATA_NAME_LENGTH = 256 - 200 - 3 (' ', '=', '\n' of an entry): longer names are
# refused by userdatum_make_item() (ENAMETOOLONG).
MAX_USERDATA_VALUE_LENGTH = 200
MAX_USERDATA_NAME_LENGTH = 53

# Where configfs is mounted (Documentation/filesystems/configfs.rst).
CONFIGFS_ROOT = "/sys/kernel/config"

# Network devices under sysfs: relative to its mount point (System.sysfs), and absolute.
SYSFS_NET = "class/net"
SYS_CLASS_NET = "/sys/" + SYSFS_NET

# systemd: where units are installed, and what exists only when systemd is the running init
# (sd_booted(3)).
SYSTEMD_UNIT_DIR = "/etc/systemd/system"
SYSTEMD_RUNNING = "/run/systemd/system"

# How 6.1-6.18 print an address that was never written (%pI4 / %pI6c of zeroes); newer
# kernels print an empty line. Any of these means "not set": the kernel then autodetects the
# source, and has no collector.
UNSET_ADDRESSES = frozenset({"", "0.0.0.0", "::"})

# Interface flags (include/uapi/linux/if.h).
IFF_UP = 0x1
IFF_BROADCAST = 0x2
IFF_LOOPBACK = 0x8
IFF_POINTOPOINT = 0x10
IFF_RUNNING = 0x40
IFF_NOARP = 0x80
IFF_LOWER_UP = 0x10000

# Link-layer types (include/uapi/linux/if_arp.h); only ARPHRD_ETHER carries the Ethernet
# header netconsole always pushes (drivers/net/netconsole.c builds the frame with push_eth).
ARPHRD_ETHER = 1


def is_set(address: str | None) -> TypeGuard[str]:
    """Whether a configfs address (as read; None when absent) holds an address."""
    return address is not None and address.strip() not in UNSET_ADDRESSES


def is_unset(address: str | None) -> bool:
    return not is_set(address)


def format_mac(raw: bytes) -> str:
    """Six bytes as the kernel prints a MAC (%pM): lowercase, colon-separated."""
    return ":".join(f"{b:02x}" for b in raw)


def multicast_mac(group: IPv4Address | IPv6Address) -> str:
    """The Ethernet address of an IP multicast group.

    RFC 1112: 01:00:5e and the group's low 23 bits; RFC 2464: 33:33 and its low 32 bits.
    """
    raw = group.packed
    if group.version == 4:
        return format_mac(bytes([0x01, 0x00, 0x5E, raw[1] & 0x7F, raw[2], raw[3]]))
    return format_mac(b"\x33\x33" + raw[12:])

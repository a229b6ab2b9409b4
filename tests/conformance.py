"""Kernel behaviours at the raw configfs level, asserted the same way on the fake and the kernel.

Each ``check_*`` function takes a :class:`~netconsolectl.sender.configfs.ConfigFS` (the real one at
``/sys/kernel/config`` inside the test VM, or ``netconsolectl.sender.emulation.Emulation`` with a
kernel profile) and the :class:`Devices` of that machine, and asserts one behaviour of the
netconsole of that kernel (drivers/net/netconsole.c, fs/configfs). What differs between kernels
is taken from :func:`netconsolectl.sender.kernel.for_release` of the tree's release string, so
the version table the product decides from is itself checked against the real 6.1 and 6.12
kernels. The expected values were measured on Debian's 6.1.192 and 6.12.117 kernels; where
they differ from what the source of other versions suggests, the comment says so. Every check
cleans up the targets it creates.

Run on the real kernels by tests/kernel/guest/test_conformance.py and on every profile of the
fake by the unit tier; :data:`CHECKS` lists them all, :data:`FAKE_DEVICES` names the fake's
default machine.
"""

from __future__ import annotations

import errno
import itertools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from netconsolectl.sender import kernel as kfeat
from netconsolectl.sender.configfs import ConfigFS

ENOTSUPP = 524  # kernel-internal errno, seen by userspace as "Unknown error 524"
BCAST = "ff:ff:ff:ff:ff:ff"

def features(fs: ConfigFS) -> kfeat.Kernel:
    """What the kernel of ``fs`` has, by its release string alone (never by its files)."""
    return kfeat.for_release(fs.kernel_release())


def params(fs: ConfigFS) -> tuple[str, ...]:
    """The writable parameters: ``release`` from 6.6."""
    base = ("dev_name", "local_ip", "local_port", "remote_ip", "remote_port", "remote_mac",
            "extended")
    return (*base, "release") if features(fs).release_attr else base


def attrs(fs: ConfigFS) -> set[str]:
    """The attribute files of a new target on this kernel."""
    k = features(fs)
    return {"enabled", *params(fs), "local_mac"} | (
        {"transmit_errors"} if k.transmit_errors else set())


def needs_userdata(fs: ConfigFS) -> bool:
    """False (the check has nothing to assert) on kernels before 6.9."""
    return features(fs).userdata


@dataclass(frozen=True)
class Devices:
    """Network devices of the machine under test, by role."""

    nic: str  # up, with an IPv4 address
    nic_mac: str
    nic_ipv4: str  # its primary IPv4 address (what autodetection picks)
    bridge: str  # a bridge, which itself accepts netconsole
    bridge_port: str  # a device enslaved to ``bridge``
    bond_slave: str  # a device enslaved to a bond
    no_address: str  # up, without any IPv4 address
    down: str  # administratively down, with an IPv4 address
    down_mac: str
    no_netpoll: str  # a device flagged IFF_DISABLE_NETPOLL
    missing: str = "nosuch0"  # no such device


# The fake's default machine (tests/conftest.py default_devices).
FAKE_DEVICES = Devices(
    nic="eth0", nic_mac="52:54:00:12:34:56", nic_ipv4="192.0.2.10", bridge="br0",
    bridge_port="eth1", bond_slave="eth2", no_address="noaddr0", down="down0",
    down_mac="52:54:00:00:00:d0", no_netpoll="nk0",
)

Check = Callable[[ConfigFS, Devices], None]

# -- helpers --------------------------------------------------------------------------------

_seq = itertools.count()


def _errname(code: int | None) -> str:
    if code is None:
        return "no errno"
    return errno.errorcode.get(code, "ENOTSUPP" if code == ENOTSUPP else str(code))


def fails(code: int, fn: Callable[..., object], *args: object) -> None:
    """Assert that ``fn(*args)`` raises OSError with errno ``code``."""
    try:
        fn(*args)
    except OSError as e:
        assert e.errno == code, f"expected {_errname(code)}, got {_errname(e.errno)} ({e})"
    else:
        raise AssertionError(f"expected {_errname(code)}, but the operation succeeded")


def raw(fs: ConfigFS, rel: str) -> bytes:
    """An attribute exactly as read(2) returns it (ConfigFS.read strips the newline)."""
    return fs.path(rel).read_bytes()


def _cleanup(fs: ConfigFS, name: str) -> None:
    if not fs.exists(name):
        return
    for key in fs.listdir(f"{name}/userdata") if fs.isdir(f"{name}/userdata") else []:
        fs.rmdir(f"{name}/userdata/{key}")
    fs.rmdir(name)  # allowed while enabled


@contextmanager
def target(fs: ConfigFS, **attrs: str) -> Iterator[str]:
    """A fresh target (``cf<pid>-<n>``) with ``attrs`` written in order; removed afterwards."""
    name = f"cf{os.getpid()}-{next(_seq)}"
    fs.mkdir(name)
    try:
        for attr, value in attrs.items():
            fs.write(f"{name}/{attr}", value)
        yield name
    finally:
        _cleanup(fs, name)


def _sendable(devs: Devices, dev: str | None = None, local_ip: str | None = None) -> dict[str, str]:
    """Attributes that let ``enabled=1`` succeed on ``dev`` (the NIC by default)."""
    attrs = {"dev_name": dev or devs.nic, "remote_ip": "192.0.2.200"}
    if local_ip is not None:
        attrs["local_ip"] = local_ip
    return attrs


# -- a new target ---------------------------------------------------------------------------


def check_mkdir_creates_attributes_and_userdata(fs: ConfigFS, devs: Devices) -> None:
    """mkdir fills the directory: this kernel's attribute files (release from 6.6,
    transmit_errors from 6.13) and, from 6.9, an empty userdata/ group whose only files are
    the sysdata toggles (6.15: cpu_nr, taskname, release; 6.17: msgid)."""
    k = features(fs)
    with target(fs) as t:
        entries = set(os.listdir(fs.path(t)))
        assert entries == attrs(fs) | ({"userdata"} if k.userdata else set()), sorted(entries)
        if k.userdata:
            assert fs.listdir(f"{t}/userdata") == []
            files = set(os.listdir(fs.path(f"{t}/userdata")))
            assert files == {kfeat.sysdata_file(n) for n in k.sysdata}, sorted(files)


def check_mkdir_defaults(fs: ConfigFS, devs: Devices) -> None:
    """Defaults of a new target (no CONFIG_NETCONSOLE_EXTENDED_LOG/PREPEND_RELEASE)."""
    with target(fs) as t:
        got = {a: fs.read(f"{t}/{a}") for a in sorted(attrs(fs))}
        unset = "0.0.0.0"  # %pI4 of zeroes on every era (the [NEW] empty line is in no release)
        want = {
            "dev_name": "eth0", "enabled": "0", "extended": "0", "release": "0",
            "local_ip": unset, "remote_ip": unset, "local_port": "6665",
            "remote_port": "6666", "local_mac": BCAST, "remote_mac": BCAST,
            "transmit_errors": "0",
        }
        assert got == {a: v for a, v in want.items() if a in attrs(fs)}, got


def check_reads_end_with_newline(fs: ConfigFS, devs: Devices) -> None:
    """Every attribute read ends with exactly one newline, as the show() methods print it."""
    with target(fs) as t:
        rels = [f"{t}/{a}" for a in attrs(fs)]
        if needs_userdata(fs):
            fs.mkdir(f"{t}/userdata/k")
            rels.append(f"{t}/userdata/k/value")
            assert raw(fs, f"{t}/userdata/k/value") == b"\n"
        for rel in rels:
            data = raw(fs, rel)
            assert data.endswith(b"\n") and not data.endswith(b"\n\n"), (rel, data)


def check_absent_attributes_enoent(fs: ConfigFS, devs: Devices) -> None:
    """Attributes a kernel does not have (transmit_errors before 6.13, release before 6.6,
    userdata/ before 6.9) give ENOENT on read and write."""
    k = features(fs)
    missing = [a for a, has in (("transmit_errors", k.transmit_errors),
                                ("release", k.release_attr)) if not has]
    with target(fs) as t:
        for attr in missing:
            assert not fs.exists(f"{t}/{attr}")
            fails(errno.ENOENT, fs.read, f"{t}/{attr}")
            fails(errno.ENOENT, fs.write, f"{t}/{attr}", "0")
        if not k.userdata:
            assert not fs.exists(f"{t}/userdata")
            fails(errno.ENOENT, fs.mkdir, f"{t}/userdata/k")


def check_mkdir_existing_target_eexist(fs: ConfigFS, devs: Devices) -> None:
    with target(fs) as t:
        fails(errno.EEXIST, fs.mkdir, t)


def check_rmdir_missing_target_enoent(fs: ConfigFS, devs: Devices) -> None:
    fails(errno.ENOENT, fs.rmdir, f"nosuch{os.getpid()}")


def check_target_name_length(fs: ConfigFS, devs: Devices) -> None:
    """Target names follow NAME_MAX: 255 bytes work, 256 give ENAMETOOLONG."""
    name = "n" * 255
    fs.mkdir(name)
    fs.rmdir(name)
    fails(errno.ENAMETOOLONG, fs.mkdir, "n" * 256)


def check_no_directories_inside_a_target(fs: ConfigFS, devs: Devices) -> None:
    """Only userdata/ takes new directories; a target and a key dir refuse mkdir with EPERM."""
    with target(fs) as t:
        fails(errno.EPERM, fs.mkdir, f"{t}/foo")
        if needs_userdata(fs):
            fs.mkdir(f"{t}/userdata/k")
            fails(errno.EPERM, fs.mkdir, f"{t}/userdata/k/sub")
            fails(errno.EPERM, fs.rmdir, f"{t}/userdata")


def check_missing_attribute_enoent(fs: ConfigFS, devs: Devices) -> None:
    with target(fs) as t:
        fails(errno.ENOENT, fs.write, f"{t}/nosuch", "1")


# -- enabled and the rules it enforces ------------------------------------------------------


def check_local_mac_read_only(fs: ConfigFS, devs: Devices) -> None:
    """local_mac has no store(): configfs refuses the open for writing with EACCES, even root."""
    with target(fs) as t:
        fails(errno.EACCES, fs.write, f"{t}/local_mac", "00:11:22:33:44:55")
        assert fs.read(f"{t}/local_mac") == BCAST


def check_local_mac_follows_netpoll(fs: ConfigFS, devs: Devices) -> None:
    """local_mac is broadcast until enabled, the device MAC while enabled, broadcast again after."""
    with target(fs, **_sendable(devs, local_ip=devs.nic_ipv4)) as t:
        assert fs.read(f"{t}/local_mac") == BCAST
        fs.write(f"{t}/enabled", "1")
        assert fs.read(f"{t}/local_mac") == devs.nic_mac
        fs.write(f"{t}/enabled", "0")
        assert fs.read(f"{t}/local_mac") == BCAST


def check_enabled_rejects_current_value(fs: ConfigFS, devs: Devices) -> None:
    """Writing the value enabled already has fails with EINVAL ("already started/stopped")."""
    with target(fs, **_sendable(devs, local_ip=devs.nic_ipv4)) as t:
        fails(errno.EINVAL, fs.write, f"{t}/enabled", "0")
        fails(errno.EINVAL, fs.write, f"{t}/enabled", "0\n")
        fs.write(f"{t}/enabled", "1")
        fails(errno.EINVAL, fs.write, f"{t}/enabled", "1")
        if features(fs).bool_words:
            fails(errno.EINVAL, fs.write, f"{t}/enabled", "on")  # parsed, but unchanged
        assert fs.read(f"{t}/enabled") == "1"
        fs.write(f"{t}/enabled", "0")
        fails(errno.EINVAL, fs.write, f"{t}/enabled", "0")
        assert fs.read(f"{t}/enabled") == "0"


def check_enabled_parsing(fs: ConfigFS, devs: Devices) -> None:
    """enabled takes kstrtobool from 6.3: 'yes', '1\\n', 'N' work; 6.12 rejects 'e' and 'x'
    (EINVAL), 6.18 and 7.x take 'e' as true. 6.1's enabled_store uses kstrtoint and accepts only 0
    and 1."""
    with target(fs, **_sendable(devs, local_ip=devs.nic_ipv4)) as t:
        if features(fs).enabled_accepts_e:
            fs.write(f"{t}/enabled", "e")
            assert fs.read(f"{t}/enabled") == "1"
            fs.write(f"{t}/enabled", "0")
        else:
            fails(errno.EINVAL, fs.write, f"{t}/enabled", "e")
        fails(errno.EINVAL, fs.write, f"{t}/enabled", "x")
        if not features(fs).bool_words:
            fails(errno.EINVAL, fs.write, f"{t}/enabled", "yes")
            fails(errno.EINVAL, fs.write, f"{t}/enabled", "2")
            fs.write(f"{t}/enabled", "1")
            assert fs.read(f"{t}/enabled") == "1"
            fs.write(f"{t}/enabled", "0\n")
            assert fs.read(f"{t}/enabled") == "0"
            return
        fs.write(f"{t}/enabled", "yes")
        assert fs.read(f"{t}/enabled") == "1"
        fs.write(f"{t}/enabled", "N")
        assert fs.read(f"{t}/enabled") == "0"
        fs.write(f"{t}/enabled", "1\n")
        assert fs.read(f"{t}/enabled") == "1"


def check_params_refused_while_enabled(fs: ConfigFS, devs: Devices) -> None:
    """Every parameter write to an enabled target fails with EINVAL, even an unchanged value."""
    with target(fs, **_sendable(devs, local_ip=devs.nic_ipv4)) as t:
        fs.write(f"{t}/enabled", "1")
        before = {a: fs.read(f"{t}/{a}") for a in params(fs)}
        for attr in params(fs):
            fails(errno.EINVAL, fs.write, f"{t}/{attr}", before[attr])
        fails(errno.EINVAL, fs.write, f"{t}/remote_port", "7777")
        assert {a: fs.read(f"{t}/{a}") for a in params(fs)} == before
        assert fs.read(f"{t}/enabled") == "1"


def check_userdata_writable_while_enabled(fs: ConfigFS, devs: Devices) -> None:
    """userdata keys can be added, changed and removed while the target is enabled."""
    if not needs_userdata(fs):
        return
    with target(fs, **_sendable(devs, local_ip=devs.nic_ipv4)) as t:
        fs.write(f"{t}/enabled", "1")
        fs.mkdir(f"{t}/userdata/k")
        fs.write(f"{t}/userdata/k/value", "v1")
        assert fs.read(f"{t}/userdata/k/value") == "v1"
        fs.rmdir(f"{t}/userdata/k")
        assert fs.read(f"{t}/enabled") == "1"


def check_release_requires_extended(fs: ConfigFS, devs: Devices) -> None:
    """release=1 with extended=0 is accepted when written and refused at enable (EINVAL)."""
    if not features(fs).release_attr:
        return
    with target(fs, **_sendable(devs, local_ip=devs.nic_ipv4)) as t:
        fs.write(f"{t}/release", "1")
        fails(errno.EINVAL, fs.write, f"{t}/enabled", "1")
        assert fs.read(f"{t}/enabled") == "0"
        fs.write(f"{t}/extended", "1")
        fs.write(f"{t}/enabled", "1")
        assert fs.read(f"{t}/enabled") == "1"


def check_failed_enable_leaves_disabled(fs: ConfigFS, devs: Devices) -> None:
    """After a refused enable the target reads disabled and writing 0 is EINVAL again."""
    with target(fs, **_sendable(devs, dev=devs.missing, local_ip=devs.nic_ipv4)) as t:
        fails(errno.ENODEV, fs.write, f"{t}/enabled", "1")
        assert fs.read(f"{t}/enabled") == "0"
        fails(errno.EINVAL, fs.write, f"{t}/enabled", "0")
        fs.write(f"{t}/dev_name", devs.nic)  # parameters stay writable
        fs.write(f"{t}/enabled", "1")


def check_missing_device_enodev(fs: ConfigFS, devs: Devices) -> None:
    with target(fs, **_sendable(devs, dev=devs.missing, local_ip=devs.nic_ipv4)) as t:
        fails(errno.ENODEV, fs.write, f"{t}/enabled", "1")


def check_bridge_port_ebusy(fs: ConfigFS, devs: Devices) -> None:
    """A bridge port is refused with EBUSY ("is a slave device"); the bridge itself works."""
    with target(fs, **_sendable(devs, dev=devs.bridge_port, local_ip=devs.nic_ipv4)) as t:
        fails(errno.EBUSY, fs.write, f"{t}/enabled", "1")
        fs.write(f"{t}/dev_name", devs.bridge)
        fs.write(f"{t}/enabled", "1")


def check_bond_slave_ebusy(fs: ConfigFS, devs: Devices) -> None:
    with target(fs, **_sendable(devs, dev=devs.bond_slave, local_ip=devs.nic_ipv4)) as t:
        fails(errno.EBUSY, fs.write, f"{t}/enabled", "1")


def check_no_address_edestaddrreq(fs: ConfigFS, devs: Devices) -> None:
    """local_ip unset on a device without IPv4 address: EDESTADDRREQ ("no IP address")."""
    with target(fs, **_sendable(devs, dev=devs.no_address)) as t:
        fails(errno.EDESTADDRREQ, fs.write, f"{t}/enabled", "1")
        assert fs.read(f"{t}/enabled") == "0"
        assert fs.read(f"{t}/local_ip") == "0.0.0.0"


def check_no_netpoll_enotsupp(fs: ConfigFS, devs: Devices) -> None:
    """IFF_DISABLE_NETPOLL devices (HSR, veth on 6.12) refuse with errno 524 (ENOTSUPP)."""
    with target(fs, **_sendable(devs, dev=devs.no_netpoll, local_ip=devs.nic_ipv4)) as t:
        fails(ENOTSUPP, fs.write, f"{t}/enabled", "1")


def check_down_device_is_forced_up(fs: ConfigFS, devs: Devices) -> None:
    """A down device does not stop enable: netpoll brings it up ("not up yet, forcing it")."""
    with target(fs, **_sendable(devs, dev=devs.down)) as t:
        fs.write(f"{t}/enabled", "1")
        assert fs.read(f"{t}/local_mac") == devs.down_mac


def check_local_ip_autodetected_and_kept(fs: ConfigFS, devs: Devices) -> None:
    """local_ip unset takes the device's primary address at enable and keeps it after disable."""
    with target(fs, **_sendable(devs)) as t:
        fs.write(f"{t}/enabled", "1")
        assert fs.read(f"{t}/local_ip") == devs.nic_ipv4
        fs.write(f"{t}/enabled", "0")
        assert fs.read(f"{t}/local_ip") == devs.nic_ipv4


def check_rmdir_while_enabled(fs: ConfigFS, devs: Devices) -> None:
    """rmdir needs no disable first: the target is dropped and netpoll cleaned up."""
    with target(fs, **_sendable(devs, local_ip=devs.nic_ipv4)) as t:
        fs.write(f"{t}/enabled", "1")
        fs.rmdir(t)
        assert not fs.exists(t)


# -- userdata -------------------------------------------------------------------------------


def check_rmdir_with_userdata_enotempty(fs: ConfigFS, devs: Devices) -> None:
    """configfs detaches only default groups: user-made keys make rmdir fail with ENOTEMPTY."""
    if not needs_userdata(fs):
        return
    with target(fs) as t:
        fs.mkdir(f"{t}/userdata/k")
        fails(errno.ENOTEMPTY, fs.rmdir, t)
        fs.rmdir(f"{t}/userdata/k")
        fs.rmdir(t)


def check_userdata_key_length(fs: ConfigFS, devs: Devices) -> None:
    """Keys are at most 53 bytes (MAX_USERDATA_NAME_LENGTH 54 with the NUL): ENAMETOOLONG."""
    if not needs_userdata(fs):
        return
    with target(fs) as t:
        fs.mkdir(f"{t}/userdata/{'k' * 53}")
        fails(errno.ENAMETOOLONG, fs.mkdir, f"{t}/userdata/{'k' * 54}")
        fails(errno.ENAMETOOLONG, fs.mkdir, f"{t}/userdata/{'k' * 255}")


def check_userdata_key_names_free_form(fs: ConfigFS, devs: Devices) -> None:
    """The kernel accepts '.', ' ' and '=' in key names (the product validates more strictly)."""
    if not needs_userdata(fs):
        return
    with target(fs) as t:
        for key in ("a.b", "x y", "a=b"):
            fs.mkdir(f"{t}/userdata/{key}")
        assert sorted(fs.listdir(f"{t}/userdata")) == ["a.b", "a=b", "x y"]


def check_userdata_key_holds_only_value(fs: ConfigFS, devs: Devices) -> None:
    if not needs_userdata(fs):
        return
    with target(fs) as t:
        fs.mkdir(f"{t}/userdata/k")
        assert os.listdir(fs.path(f"{t}/userdata/k")) == ["value"]
        assert fs.read(f"{t}/userdata/k/value") == ""


def check_userdata_value_size(fs: ConfigFS, devs: Devices) -> None:
    """Values: 199 bytes fit; more than 200 gives EMSGSIZE and changes nothing.

    Exactly 200 bytes (the newline counts) gives E2BIG *after* strscpy() has stored the first
    199 bytes: the refused write still changes what the attribute reads (userdatum_value_store
    returns before update_userdata(), so the packets keep the old value until the next change).
    """
    if not needs_userdata(fs):
        return
    with target(fs) as t:
        v = f"{t}/userdata/k/value"
        fs.mkdir(f"{t}/userdata/k")
        fs.write(v, "a" * 199)
        assert fs.read(v) == "a" * 199
        fails(errno.EMSGSIZE, fs.write, v, "b" * 201)
        fails(errno.EMSGSIZE, fs.write, v, "b" * 4096)
        assert fs.read(v) == "a" * 199, "EMSGSIZE must leave the value alone"
        if features(fs).value_200_emsgsize:  # 7.x: 200 bytes are refused up front
            fails(errno.EMSGSIZE, fs.write, v, "c" * 200)
            assert fs.read(v) == "a" * 199
            return
        fails(errno.E2BIG, fs.write, v, "c" * 200)
        assert fs.read(v) == "c" * 199, "E2BIG keeps the truncated copy"
        fails(errno.E2BIG, fs.write, v, "d" * 199 + "\n")
        assert raw(fs, v) == b"d" * 199 + b"\n"
        fs.write(v, "e" * 198 + "\n")
        assert raw(fs, v) == b"e" * 198 + b"\n"


def check_userdata_value_newlines(fs: ConfigFS, devs: Devices) -> None:
    """One trailing newline is stripped on store; embedded newlines are kept."""
    if not needs_userdata(fs):
        return
    with target(fs) as t:
        v = f"{t}/userdata/k/value"
        fs.mkdir(f"{t}/userdata/k")
        fs.write(v, "ab\ncd")
        assert raw(fs, v) == b"ab\ncd\n"
        fs.write(v, "x\n")
        assert raw(fs, v) == b"x\n"


def check_userdata_key_limit(fs: ConfigFS, devs: Devices) -> None:
    """6.9-6.18 allow 16 keys per target (MAX_USERDATA_ITEMS), the newest 256; one more
    mkdir gives ENOSPC."""
    limit = features(fs).max_userdata
    if not limit:
        return
    with target(fs) as t:
        for i in range(limit):
            fs.mkdir(f"{t}/userdata/k{i:03d}")
        fails(errno.ENOSPC, fs.mkdir, f"{t}/userdata/k{limit:03d}")
        fs.rmdir(f"{t}/userdata/k000")
        fs.mkdir(f"{t}/userdata/k{limit:03d}")


def check_zero_length_write_efault(fs: ConfigFS, devs: Devices) -> None:
    """A zero-length write(2) never reaches store(): configfs answers EFAULT."""
    with target(fs) as t:
        fails(errno.EFAULT, fs.write, f"{t}/dev_name", "")
        if needs_userdata(fs):
            fs.mkdir(f"{t}/userdata/k")
            fails(errno.EFAULT, fs.write, f"{t}/userdata/k/value", "")
        assert fs.read(f"{t}/dev_name") == "eth0"


# -- value formats --------------------------------------------------------------------------


def check_ipv6_sticky(fs: ConfigFS, devs: Devices) -> None:
    """Up to 6.12 one IPv6 write sets a sticky per-target flag for both addresses; IPv4 writes
    then fail (EINVAL). The flag survives enable and disable; only recreating the target
    clears it. 6.18 and 7.x switch in place: the last address written sets the one family
    flag, and the other address is read in that family."""
    if features(fs).family_switch_in_place:
        with target(fs, dev_name=devs.nic) as t:
            fs.write(f"{t}/local_ip", "fd00::1")
            assert fs.read(f"{t}/remote_ip") == "::"
            fs.write(f"{t}/remote_ip", "fd00::2")
            fs.write(f"{t}/local_ip", "192.0.2.1")
            assert fs.read(f"{t}/local_ip") == "192.0.2.1"
            assert fs.read(f"{t}/remote_ip") == "253.0.0.0"  # fd00::2's first 4 bytes
            fs.write(f"{t}/remote_ip", "192.0.2.2")
            fs.write(f"{t}/enabled", "1")
            assert fs.read(f"{t}/remote_ip") == "192.0.2.2"
        return
    with target(fs, dev_name=devs.nic) as t:
        fs.write(f"{t}/local_ip", "fd00::1")
        assert fs.read(f"{t}/remote_ip") == "::"
        fails(errno.EINVAL, fs.write, f"{t}/remote_ip", "192.0.2.1")
        fails(errno.EINVAL, fs.write, f"{t}/local_ip", "192.0.2.1")
        fs.write(f"{t}/remote_ip", "fd00::2")
        fs.write(f"{t}/enabled", "1")
        fs.write(f"{t}/enabled", "0")
        fails(errno.EINVAL, fs.write, f"{t}/remote_ip", "192.0.2.1")
        assert fs.read(f"{t}/remote_ip") == "fd00::2"


def check_ipv6_read_compressed(fs: ConfigFS, devs: Devices) -> None:
    """IPv6 addresses read back in compressed form (%pI6c); bad IPv6 text gives EINVAL."""
    with target(fs) as t:
        fs.write(f"{t}/remote_ip", "fd00:0:0::0002")
        assert fs.read(f"{t}/remote_ip") == "fd00::2"
        fails(errno.EINVAL, fs.write, f"{t}/remote_ip", "fd00::zz")


def check_ipv4_not_validated(fs: ConfigFS, devs: Devices) -> None:
    """IPv4 goes through in_aton(), which validates nothing (hence the product validates).

    Each dot-separated field accumulates ``val * 10 + (c - '0')`` for any character, is ORed
    into a 32-bit word shifted left by 8 per field, and the result is truncated. 6.18 and 7.x
    parse strictly (in4_pton, then in6_pton): garbage is EINVAL.
    """
    if features(fs).family_switch_in_place:
        with target(fs) as t:
            for bad in ("1.2.3", "abc", "300.1.1.1"):
                fails(errno.EINVAL, fs.write, f"{t}/remote_ip", bad)
            assert fs.read(f"{t}/remote_ip") == "0.0.0.0"
            fs.write(f"{t}/remote_ip", "192.0.2.2\n")
            assert fs.read(f"{t}/remote_ip") == "192.0.2.2"
            # in4_pton() stops at the blank (or any non-hex character) and copies the address
            # out before the rest is refused: EINVAL, yet the address was stored (measured
            # on 6.18.15 and 7.3.4).
            fails(errno.EINVAL, fs.write, f"{t}/remote_ip", "192.0.2.3 ")
            assert fs.read(f"{t}/remote_ip") == "192.0.2.3"
            fails(errno.EINVAL, fs.write, f"{t}/remote_ip", "192.0.2.9x")
            assert fs.read(f"{t}/remote_ip") == "192.0.2.9"
        return
    with target(fs) as t:
        for text, value in [("1.2.3", "1.2.3.0"), ("abc", "75.0.0.0"),
                            ("300.1.1.1", "44.1.1.1"), ("192.0.2.2 ", "192.0.2.4"),
                            ("\n", "0.0.0.0"), ("192.0.2.2\n", "192.0.2.2")]:
            fs.write(f"{t}/remote_ip", text)
            assert fs.read(f"{t}/remote_ip") == value, (text, fs.read(f"{t}/remote_ip"))


def check_dev_name_length(fs: ConfigFS, devs: Devices) -> None:
    """15 bytes fit (IFNAMSIZ 16); 16 or more give ENAMETOOLONG on Debian's 6.12 and 7.3 (no
    truncation); 6.18 cuts them to 15 in silence."""
    with target(fs) as t:
        fs.write(f"{t}/dev_name", "a" * 15)
        fs.write(f"{t}/dev_name", "b" * 15 + "\n")
        assert fs.read(f"{t}/dev_name") == "b" * 15
        if features(fs).dev_name_truncates:
            fs.write(f"{t}/dev_name", "c" * 16)
            assert fs.read(f"{t}/dev_name") == "c" * 15
            return
        fails(errno.ENAMETOOLONG, fs.write, f"{t}/dev_name", "c" * 16)
        fails(errno.ENAMETOOLONG, fs.write, f"{t}/dev_name", "c" * 20 + "\n")
        assert fs.read(f"{t}/dev_name") == "b" * 15


def check_dev_name_one_newline_stripped(fs: ConfigFS, devs: Devices) -> None:
    """Only one trailing newline is removed; '\\n' alone empties the name."""
    with target(fs) as t:
        fs.write(f"{t}/dev_name", "eth0\n\n")
        assert raw(fs, f"{t}/dev_name") == b"eth0\n\n"
        fs.write(f"{t}/dev_name", "\n")
        assert raw(fs, f"{t}/dev_name") == b"\n"


def check_port_parsing(fs: ConfigFS, devs: Devices) -> None:
    """Ports take kstrtou16 base 10: ERANGE above 65535, EINVAL for non-numbers; 0 is accepted."""
    with target(fs) as t:
        p = f"{t}/remote_port"
        fails(errno.ERANGE, fs.write, p, "70000")
        for bad in ("abc", "-1", " 6666", "0x10", "6666\n\n"):
            fails(errno.EINVAL, fs.write, p, bad)
        for good, value in (("0", "0"), ("+7000", "7000"), ("6666\n", "6666")):
            fs.write(p, good)
            assert fs.read(p) == value


def check_remote_mac_parsing(fs: ConfigFS, devs: Devices) -> None:
    """mac_pton with ':' only, any case (read back lowercase); only the 18th byte is checked."""
    with target(fs) as t:
        m = f"{t}/remote_mac"
        for bad in ("aa-bb-cc-dd-ee-ff", "aa:bb:cc", "aa:bb:cc:dd:ee:ffx"):
            fails(errno.EINVAL, fs.write, m, bad)
        fs.write(m, "AA:BB:CC:DD:EE:0F")
        assert fs.read(m) == "aa:bb:cc:dd:ee:0f"
        fs.write(m, "52:55:0a:00:02:02\n\n")  # what follows the newline is ignored
        assert fs.read(m) == "52:55:0a:00:02:02"


def check_bool_parsing(fs: ConfigFS, devs: Devices) -> None:
    """extended/release take kstrtobool: 'yes', 'off', 'Y', '1\\n' work; '2' and '\\n' do not.
    6.1's extended_store uses kstrtoint and takes only 0 and 1."""
    with target(fs) as t:
        e = f"{t}/extended"
        if not features(fs).bool_words:
            for text, value in (("1", "1"), ("0\n", "0"), ("+1", "1")):
                fs.write(e, text)
                assert fs.read(e) == value, text
            for bad in ("yes", "Y", "2", "\n"):
                fails(errno.EINVAL, fs.write, e, bad)
            return
        for text, value in (("yes", "1"), ("off", "0"), ("Y", "1"), ("0", "0"), ("1\n", "1")):
            fs.write(e, text)
            assert fs.read(e) == value, text
        if features(fs).enabled_accepts_e:  # 6.18+: e/d for enable/disable
            for text, value in (("e", "1"), ("d", "0")):
                fs.write(e, text)
                assert fs.read(e) == value, text
        else:
            fails(errno.EINVAL, fs.write, e, "e")
        fails(errno.EINVAL, fs.write, e, "2")
        fails(errno.EINVAL, fs.write, e, "\n")


# -- sysdata (6.15+) -------------------------------------------------------------------------


def check_sysdata_toggles(fs: ConfigFS, devs: Devices) -> None:
    """The sysdata toggles take kstrtobool, may change while the target is enabled, and
    storing the current value succeeds (unlike ``enabled``)."""
    k = features(fs)
    if not k.sysdata:
        return
    with target(fs, **_sendable(devs, local_ip=devs.nic_ipv4)) as t:
        fs.write(f"{t}/enabled", "1")
        for name in sorted(k.sysdata - {"release"}):
            f = f"{t}/userdata/{kfeat.sysdata_file(name)}"
            fs.write(f, "yes")
            assert fs.read(f) == "1"
            fs.write(f, "1")  # unchanged: no error
            fs.write(f, "off")
            assert fs.read(f) == "0"
            fails(errno.EINVAL, fs.write, f, "x")
        assert fs.read(f"{t}/enabled") == "1"


def check_sysdata_release_read(fs: ConfigFS, devs: Devices) -> None:
    """Reading release_enabled reports the taskname bit on 6.15 until the 2026 fix
    (sysdata_release_enabled_show tested SYSDATA_TASKNAME)."""
    k = features(fs)
    if "release" not in k.sysdata:
        return
    with target(fs) as t:
        fs.write(f"{t}/userdata/release_enabled", "1")
        seen = fs.read(f"{t}/userdata/release_enabled")
        assert seen == ("1" if k.release_enabled_readable else "0"), seen
        fs.write(f"{t}/userdata/taskname_enabled", "1")
        assert fs.read(f"{t}/userdata/release_enabled") == "1"


def check_sysdata_count_toward_16(fs: ConfigFS, devs: Devices) -> None:
    """6.15-6.18: userdata keys plus enabled toggles may not exceed 16; the toggle that would
    make 17 fails with ENOSPC, and so does a key mkdir once toggles fill the room."""
    k = features(fs)
    if not k.sysdata_count_as_userdata:
        return
    with target(fs) as t:
        for i in range(15):
            fs.mkdir(f"{t}/userdata/k{i:02d}")
        fs.write(f"{t}/userdata/cpu_nr_enabled", "1")
        fails(errno.ENOSPC, fs.write, f"{t}/userdata/taskname_enabled", "1")
        fails(errno.ENOSPC, fs.mkdir, f"{t}/userdata/k15")
        fs.write(f"{t}/userdata/cpu_nr_enabled", "1")  # already on: not counted twice
        fs.write(f"{t}/userdata/cpu_nr_enabled", "0")
        fs.mkdir(f"{t}/userdata/k15")


CHECKS: list[Check] = [
    obj for name, obj in sorted(globals().items())
    if name.startswith("check_") and callable(obj)
]

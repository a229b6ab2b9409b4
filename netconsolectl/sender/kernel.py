"""What the running kernel's netconsole can do, decided in one place.

netconsole changed a lot between Debian 12's 6.1 and the newest kernels
(drivers/net/netconsole.c). Every version-dependent decision in netconsolectl asks a
:class:`Kernel`, built by :func:`detect` from the attribute files of an existing target (the
kernel's own answer) and, where no file tells, from the release string (``uname -r``).
Nothing else compares version numbers.

The minimum versions are named constants below; those marked (≈) are inferred from the dates
of the patches, not from a tagged release.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from netconsolectl.sender.configfs import ConfigFS

Version = tuple[int, int]

#: ``enabled``/``extended``/``release`` parsed with kstrtobool (``yes``, ``on``); before that
#: ``enabled`` used kstrtoint and took only ``0``/``1`` (drivers/net/netconsole.c
#: ``enabled_store``, "netconsole: Use kstrtobool() instead of kstrtoint()").
BOOL_WORDS = (6, 3)
#: the ``release`` attribute and the ``r`` flag of the boot parameter.
RELEASE = (6, 6)
#: boot-parameter targets show up in configfs as ``cmdline<N>`` after a ``mkdir`` (commit
#: 5fbd6cdbe304, "netconsole: Attach cmdline target to dynamic target"). Before it they are
#: invisible, and ``mkdir cmdline0`` makes an ordinary second target beside the boot one.
BOOT_TARGETS_IN_CONFIGFS = (6, 7)
#: ``userdata/`` with user keys (``userdata/<key>/value``).
USERDATA = (6, 9)
#: one bad entry in the boot parameter no longer aborts the module; it is skipped.
BOOTPARAM_SKIPS_BAD_ENTRY = (6, 10)
#: a boot target whose netpoll setup fails is kept, disabled (commit 908ee298c8fb).
FAILED_BOOT_TARGET_KEPT = (6, 12)
#: the read-only ``transmit_errors`` counter (commit 36de47bfd013).
TRANSMIT_ERRORS = (6, 13)
#: ``userdata/cpu_nr_enabled``, ``taskname_enabled``, ``release_enabled``; and a boot-parameter
#: ``<dev>`` containing ``:`` is a MAC address (commit f8a10bed32f5).
SYSDATA = (6, 15)
BOOTPARAM_DEV_AS_MAC = (6, 15)
#: ``userdata/msgid_enabled``.
SYSDATA_MSGID = (6, 17)
#: (≈) each address keeps its own family, parsed strictly as IPv4 first; before it one sticky
#: per-target ``ipv6`` flag refuses IPv4 after the first IPv6 write until rmdir.
PER_ADDRESS_FAMILY = (6, 19)
#: (≈) 256 userdata keys, sysdata toggles counted apart ("netconsole: Increase
#: MAX_USERDATA_ITEMS"); 6.9-6.18 allow 16, and 6.15-6.18 count enabled toggles in them.
USERDATA_256 = (6, 19)
#: (≈) a target whose device unregisters is kept *deactivated* (reads ``enabled`` 0) and
#: resumed by the kernel when the device returns; any write to ``enabled`` cancels that.
DEACTIVATED = (7, 0)
#: (≈, seen only in the newest source) a userdata value of 200 bytes is refused up front with
#: EMSGSIZE; before, strscpy stored 199 of them and returned E2BIG.
VALUE_200_EMSGSIZE = (7, 0)
#: (≈) reading ``userdata/release_enabled`` returned the taskname bit from 6.15 until the
#: March 2026 fix ("netconsole: fix sysdata release_enabled show").
RELEASE_ENABLED_READ_FIXED = (7, 0)

#: The sysdata toggles in wire order, each with the version that added its file.
SYSDATA_SINCE: dict[str, Version] = {
    "cpu_nr": SYSDATA, "taskname": SYSDATA, "release": SYSDATA, "msgid": SYSDATA_MSGID,
}
SYSDATA_NAMES = tuple(SYSDATA_SINCE)

#: The newest behaviour this module knows; an unparsable release string is taken as this.
NEWEST: Version = (7, 0)


def sysdata_file(name: str) -> str:
    """``cpu_nr`` -> ``cpu_nr_enabled`` (the file under ``<target>/userdata/``)."""
    return f"{name}_enabled"


def parse_version(release: str) -> Version | None:
    """``6.1.0-57-amd64`` -> (6, 1); None when the string does not start with a version."""
    m = re.match(r"(\d+)\.(\d+)", release.strip())
    return (int(m.group(1)), int(m.group(2))) if m else None


def fmt_version(v: Version) -> str:
    return f"{v[0]}.{v[1]}"


@dataclass(frozen=True)
class Kernel:
    """The netconsole features of one kernel.

    Build it with :func:`detect` (a live configfs) or :func:`for_release` (a release string,
    e.g. for ``cmdline --kernel``); do not construct it field by field.
    """

    release: str  # the release string it was judged from ("6.1.0-57-amd64")
    version: Version  # (major, minor); NEWEST when the string had no version
    release_attr: bool
    userdata: bool
    transmit_errors: bool
    sysdata: frozenset[str]  # the sysdata toggles this kernel has files for
    from_files: bool = False  # attribute files of a live target confirmed the above
    notes: tuple[str, ...] = field(default=(), compare=False)

    # -- derived from the version only: no attribute file tells these ---------------------
    def at_least(self, v: Version) -> bool:
        return self.version >= v

    @property
    def bool_words(self) -> bool:
        """Whether ``enabled`` accepts kstrtobool words; older kernels take only 0/1."""
        return self.at_least(BOOL_WORDS)

    @property
    def boot_targets_in_configfs(self) -> bool:
        """Whether ``mkdir cmdline<N>`` attaches to the Nth boot-parameter target."""
        return self.at_least(BOOT_TARGETS_IN_CONFIGFS)

    @property
    def per_address_family(self) -> bool:
        """Whether IPv4 can be written after IPv6 without recreating the target."""
        return self.at_least(PER_ADDRESS_FAMILY)

    @property
    def keeps_deactivated_targets(self) -> bool:
        """Whether a target whose device disappeared is kept *deactivated* and resumed by the
        kernel when the device returns (it reads ``enabled`` 0 meanwhile, and any write to
        ``enabled`` cancels the resume). See :func:`awaiting_device`."""
        return self.at_least(DEACTIVATED)

    @property
    def max_userdata(self) -> int:
        """How many userdata keys one target may have (0 without userdata)."""
        if not self.userdata:
            return 0
        return 256 if self.at_least(USERDATA_256) else 16

    @property
    def sysdata_count_as_userdata(self) -> bool:
        """6.15-6.18: enabled sysdata toggles count toward the 16 userdata entries; turning one
        on beyond that fails with ENOSPC (drivers/net/netconsole.c ``sysdata_*_enabled_store``
        check ``count_extradata_entries``)."""
        return bool(self.sysdata) and not self.at_least(USERDATA_256)

    @property
    def release_enabled_readable(self) -> bool:
        """False where reading ``userdata/release_enabled`` reports the taskname bit."""
        return "release" not in self.sysdata or self.at_least(RELEASE_ENABLED_READ_FIXED)

    @property
    def value_200_emsgsize(self) -> bool:
        return self.at_least(VALUE_200_EMSGSIZE)

    @property
    def bootparam_dev_as_mac(self) -> bool:
        return self.at_least(BOOTPARAM_DEV_AS_MAC)

    @property
    def bootparam_skips_bad_entry(self) -> bool:
        return self.at_least(BOOTPARAM_SKIPS_BAD_ENTRY)

    @property
    def keeps_failed_boot_target(self) -> bool:
        return self.at_least(FAILED_BOOT_TARGET_KEPT)

    # -- messages ---------------------------------------------------------------------------
    def lacks(self, what: str, since: Version) -> str:
        """``"release needs Linux 6.6 or newer; this kernel is 6.1.0-57-amd64"``."""
        return f"{what} needs Linux {fmt_version(since)} or newer; this kernel is {self.release}"

    def to_json(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "version": fmt_version(self.version),
            "release_attr": self.release_attr,
            "userdata": self.userdata,
            "max_userdata": self.max_userdata,
            "transmit_errors": self.transmit_errors,
            "sysdata": [s for s in SYSDATA_NAMES if s in self.sysdata],
            "boot_targets_in_configfs": self.boot_targets_in_configfs,
            "per_address_family": self.per_address_family,
            "keeps_deactivated_targets": self.keeps_deactivated_targets,
        }


def for_release(release: str) -> Kernel:
    """The features a kernel of this release string has, by version alone."""
    parsed = parse_version(release)
    v = parsed if parsed is not None else NEWEST
    notes = () if parsed else (f"cannot read a version from {release!r}; assuming the newest",)
    return Kernel(
        release=release,
        version=v,
        release_attr=v >= RELEASE,
        userdata=v >= USERDATA,
        transmit_errors=v >= TRANSMIT_ERRORS,
        sysdata=frozenset(n for n, since in SYSDATA_SINCE.items() if v >= since),
        notes=notes,
    )


def detect(fs: ConfigFS) -> Kernel:
    """The running kernel: its release string, corrected by the files of an existing target.

    A distribution kernel may carry backports, so where a file answers (``release``,
    ``transmit_errors``, ``userdata/``, the sysdata toggles) the file wins. No target is
    created to look: with none, the release string decides.
    """
    k = for_release(fs.kernel_release())
    try:
        names = fs.listdir() if fs.available() else []
    except OSError:
        names = []
    for name in names:
        try:
            entries = set(os.listdir(fs.path(name)))
        except OSError:
            continue
        if "enabled" not in entries:
            continue  # not a target directory (a hand-made sandbox tree may have strays)
        sysdata: frozenset[str] = frozenset()
        if "userdata" in entries:
            try:
                inside = set(os.listdir(fs.path(f"{name}/userdata")))
            except OSError:
                inside = set()
            sysdata = frozenset(n for n in SYSDATA_NAMES if sysdata_file(n) in inside)
        return Kernel(
            release=k.release, version=k.version,
            release_attr="release" in entries,
            userdata="userdata" in entries,
            transmit_errors="transmit_errors" in entries,
            sysdata=sysdata, from_files=True, notes=k.notes,
        )
    return k


class _ReadBack(Protocol):
    # The two facts of a target read back that the rules below need; target.TargetState has
    # them (and imports this module, so it is not imported here).
    @property
    def enabled(self) -> bool: ...
    @property
    def dev_name(self) -> str | None: ...


def awaiting_device(kernel: Kernel, state: _ReadBack, device_present: bool) -> str | None:
    """The device a target waits for, when the kernel may resume it by itself.

    On kernels that keep deactivated targets (≈7.0, drivers/net/netconsole.c
    ``netconsole_netdev_event`` NETDEV_UNREGISTER -> STATE_DEACTIVATED, resumed on
    NETDEV_REGISTER), a target that reads disabled while its device is absent may be
    deactivated; writing ``enabled`` (either value) would cancel the resume. Returns the device
    name then, else None. The kernel does not expose the state itself, so a target disabled by
    hand whose device is gone looks the same; leaving it alone is harmless there too (enabling
    it would fail with ENODEV).
    """
    if not kernel.keeps_deactivated_targets or state.enabled or device_present:
        return None
    return state.dev_name or None

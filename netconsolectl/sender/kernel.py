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

import errno
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from netconsolectl.sender import attrs

if TYPE_CHECKING:
    from netconsolectl.sender.configfs import ConfigFS

Version = attrs.Version

#: ``enabled``/``extended``/``release`` parsed with kstrtobool (``yes``, ``on``); before that
#: ``enabled`` used kstrtoint and took only ``0``/``1`` (drivers/net/netconsole.c
#: ``enabled_store``, "netconsole: Use kstrtobool() instead of kstrtoint()").
BOOL_WORDS = (6, 3)
#: the ``release`` attribute and the ``r`` flag of the boot parameter.
RELEASE = attrs.since("release")
#: boot-parameter targets show up in configfs as ``cmdline<N>`` after a ``mkdir`` (commit
#: 5fbd6cdbe304, "netconsole: Attach cmdline target to dynamic target"). Before it they are
#: invisible, and ``mkdir cmdline0`` makes an ordinary second target beside the boot one.
BOOT_TARGETS_IN_CONFIGFS = (6, 7)
#: ``userdata/`` with user keys (``userdata/<key>/value``).
USERDATA = attrs.USERDATA_SINCE
#: one bad entry in the boot parameter no longer aborts the module; it is skipped.
BOOTPARAM_SKIPS_BAD_ENTRY = (6, 10)
#: a boot target whose netpoll setup fails is kept, disabled (commit 908ee298c8fb).
FAILED_BOOT_TARGET_KEPT = (6, 12)
#: the read-only ``transmit_errors`` counter (commit 36de47bfd013).
TRANSMIT_ERRORS = attrs.since("transmit_errors")
#: ``userdata/cpu_nr_enabled``, ``taskname_enabled``, ``release_enabled``; and a boot-parameter
#: ``<dev>`` containing ``:`` is a MAC address (commit f8a10bed32f5).
SYSDATA = attrs.since("cpu_nr")
BOOTPARAM_DEV_AS_MAC = (6, 15)
#: ``userdata/msgid_enabled``.
SYSDATA_MSGID = attrs.since("msgid")
#: Measured: 6.18.15 and 7.3.4 accept an IPv4 address written to a target that had IPv6, in
#: place. The target keeps one family flag, set by the last address written (strict
#: in4_pton, then in6_pton; garbage is EINVAL), and the other address is read in that family.
#: 6.1 and 6.12 keep a *sticky* ``ipv6`` flag instead: after the first IPv6 write every IPv4
#: store fails with EINVAL until the directory is recreated. (≈: the change lies between 6.12
#: and 6.18; the first release measured with it is taken.)
FAMILY_SWITCH_IN_PLACE = (6, 18)
#: 256 userdata keys, sysdata toggles counted apart ("netconsole: Increase
#: MAX_USERDATA_ITEMS"); measured: 6.18 allows 16 and counts enabled toggles in them, 7.3 256.
USERDATA_256 = (6, 19)
#: a target whose device unregisters is kept *deactivated* (reads ``enabled`` 0) and resumed
#: by the kernel when the device registers again, forcing the link up; writing ``enabled=0``
#: meanwhile fails with EINVAL and cancels the resume (measured on 7.3; 6.18 disables it for
#: good).
DEACTIVATED = (7, 0)
#: a userdata value of exactly 200 bytes is refused up front with EMSGSIZE (measured on 7.3);
#: up to 6.18 strscpy stored 199 of them and returned E2BIG (measured on 6.18).
VALUE_200_EMSGSIZE = (7, 0)
#: reading ``userdata/release_enabled`` returned the taskname bit from 6.15 until the March
#: 2026 fix ("netconsole: fix sysdata release_enabled show"); measured: 6.18.15 has the bug,
#: 7.3.4 the fix. A stable kernel may carry the fix: see :func:`release_sysdata_known`.
RELEASE_ENABLED_READ_FIXED = (7, 0)
#: kstrtobool takes ``e``/``d`` (enable/disable) for every boolean attribute (measured on
#: 6.18.15 and 7.3.4 for ``enabled`` and ``extended``; 6.12.117 refuses ``e`` with EINVAL).
#: (≈: the first release measured with it is taken.)
ENABLED_E = (6, 18)
#: A ``dev_name`` of IFNAMSIZ (16) bytes or more is cut to 15 in silence; 6.12.117 and 7.3.4
#: refuse it with ENAMETOOLONG (measured on 6.18.15; the range is that of the measurements).
DEV_NAME_TRUNCATES = ((6, 18), (7, 0))
#: netconsole registers as an *nbcon* console (/proc/consoles flag ``N``): measured on 7.3.4,
#: while 6.18.15 registers a legacy console. An nbcon netconsole writes a panic only in the
#: final unsafe flush at the end of kernel/panic.c vpanic(), which comes after the restart
#: that a non-zero ``kernel.panic`` triggers: with kernel.panic != 0 (virtme-ng and many
#: fleets use -1 or a timeout) no panic text leaves the machine; with 0 it does (measured).
#: The console flags answer where a target is enabled; the release decides otherwise.
NBCON_CONSOLE = (7, 0)

#: The sysdata toggles in wire order, each with the version that added its file.
SYSDATA_SINCE: dict[str, Version] = attrs.SYSDATA_SINCE
SYSDATA_NAMES = attrs.SYSDATA_NAMES

#: The newest behaviour this module knows; an unparsable release string is taken as this.
NEWEST: Version = (7, 3)


def sysdata_file(name: str) -> str:
    """``cpu_nr`` -> ``cpu_nr_enabled`` (the file under ``<target>/userdata/``)."""
    return attrs.Sysdata(name, (0, 0), name).file


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
    def family_switch_in_place(self) -> bool:
        """Whether an address of the other family can be written to an existing target (the
        last address written sets the target's one family flag); False where a sticky
        ``ipv6`` flag refuses IPv4 after IPv6 until the target is recreated."""
        return self.at_least(FAMILY_SWITCH_IN_PLACE)

    @property
    def enabled_accepts_e(self) -> bool:
        """Whether the boolean attributes take ``e``/``d`` (6.18+); older kernels refuse them."""
        return self.at_least(ENABLED_E)

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
    def dev_name_truncates(self) -> bool:
        """Whether a too long ``dev_name`` is cut to 15 bytes instead of refused."""
        low, high = DEV_NAME_TRUNCATES
        return low <= self.version < high

    @property
    def overlong_value_errno(self) -> int:
        """The errno a userdata value of exactly 200 bytes gets (more is EMSGSIZE everywhere):
        E2BIG up to 6.18, which also keeps the first 199 bytes; EMSGSIZE on 7.x."""
        return errno.EMSGSIZE if self.value_200_emsgsize else errno.E2BIG

    @property
    def nbcon_console(self) -> bool:
        """Whether netconsole is an nbcon console (by release; see :func:`panic_capture`)."""
        return self.at_least(NBCON_CONSOLE)

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
            "family_switch_in_place": self.family_switch_in_place,
            "keeps_deactivated_targets": self.keeps_deactivated_targets,
            "overlong_value_errno": errno.errorcode[self.overlong_value_errno],
            "release_sysdata_readable": self.release_enabled_readable,
            "nbcon_console": self.nbcon_console,
        }


def for_release(release: str) -> Kernel:
    """The features a kernel of this release string has, by version alone."""
    parsed = parse_version(release)
    v = parsed if parsed is not None else NEWEST
    notes = () if parsed else (f"cannot read a version from {release!r}; assuming the newest",)
    files = attrs.present(v)
    return Kernel(
        release=release,
        version=v,
        release_attr="release" in files,
        userdata=v >= USERDATA,
        transmit_errors="transmit_errors" in files,
        sysdata=attrs.sysdata_present(v),
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


TargetStatus = Literal["enabled", "disabled", "deactivated"]


def target_status(kernel: Kernel, state: _ReadBack, device_present: bool,
                  disabled_on_purpose: bool) -> TargetStatus:
    """``enabled``, ``disabled``, or ``deactivated``: the kernel stopped it because its device
    went away and will resume it when the device registers again (7.x).

    The kernel shows no state but ``enabled`` 0, so a deactivated target is one that reads
    disabled on a kernel that keeps such targets, whose device is absent, and that nobody
    disabled with ``netconsolectl disable`` (which cancels the resume).
    """
    if state.enabled:
        return "enabled"
    if disabled_on_purpose or awaiting_device(kernel, state, device_present) is None:
        return "disabled"
    return "deactivated"


def release_sysdata_known(kernel: Kernel, release_read: bool | None,
                          taskname_read: bool | None) -> bool:
    """Whether the read of ``userdata/release_enabled`` is the release bit.

    On kernels with the read bug (6.15 until the 2026 fix) the read is taskname's bit. A
    stable kernel may carry the fix, and the reads tell it then: a buggy kernel can never
    read the two differently, so two different answers prove the read is true.
    """
    if kernel.release_enabled_readable:
        return True
    return release_read is not None and taskname_read is not None and (
        release_read != taskname_read)


@dataclass(frozen=True)
class PanicCapture:
    """Whether a panic's text leaves this machine over netconsole, and the evidence."""

    delivered: bool
    evidence: str
    fix: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"delivered": self.delivered, "evidence": self.evidence, "fix": self.fix}


PANIC_FIX = ("sysctl kernel.panic=0 (and kernel.panic = 0 in /etc/sysctl.d/), so the kernel "
             "flushes the panic to netconsole before anything restarts it; the machine then "
             "stays down after a panic: let a hardware watchdog or the BMC reset it")


def netconsole_console_flags(consoles: str) -> str | None:
    """The flags of netconsole's console in /proc/consoles (``netcon0 -W- (E  N   )`` ->
    ``E  N``), or None when it is not registered (no target enabled)."""
    for line in consoles.splitlines():
        fields = line.split(None, 1)
        if fields and fields[0].startswith("netcon") and "(" in line and ")" in line:
            return line[line.index("(") + 1:line.index(")")].strip()
    return None


def panic_capture(kernel: Kernel, consoles: str | None, panic_timeout: int | None
                  ) -> PanicCapture:
    """Whether the panic text is sent, decided from what the running kernel shows: its
    console flags (/proc/consoles) and ``kernel.panic`` (/proc/sys/kernel/panic).

    A legacy netconsole (6.1-6.18) prints the panic as it happens. An nbcon one (7.x) is
    written only by the last flush of vpanic(), after the restart a non-zero kernel.panic
    asks for, so nothing arrives then (measured on 7.3.4 with kernel.panic -1; with 0 the
    panic text arrived, its tail cut off in one run).
    """
    flags = netconsole_console_flags(consoles) if consoles is not None else None
    nbcon = ("N" in flags.split()) if flags is not None else kernel.nbcon_console
    seen = (f"/proc/consoles shows netconsole with flags ({flags})" if flags is not None
            else f"Linux {fmt_version(kernel.version)} registers netconsole as "
            + ("an nbcon" if nbcon else "a legacy") + " console")
    if not nbcon:
        return PanicCapture(True, f"{seen}: a legacy console prints a panic as it happens")
    if panic_timeout is None:
        return PanicCapture(False, f"{seen}, an nbcon console, and kernel.panic cannot be "
                            "read: with kernel.panic other than 0 the machine restarts before "
                            "netconsole sends the panic", PANIC_FIX)
    if panic_timeout != 0:
        return PanicCapture(False, f"{seen}, an nbcon console, and kernel.panic is "
                            f"{panic_timeout}: the kernel restarts before its final flush, the "
                            "only one that writes the panic to netconsole (no panic text "
                            "arrived from Linux 7.3.4 in tests)", PANIC_FIX)
    return PanicCapture(True, f"{seen}, an nbcon console; kernel.panic is 0, so the final flush "
                        "sends the panic (its end may be cut off)")

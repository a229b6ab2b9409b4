"""What the booted kernel's netconsole really does, measured once at the raw configfs level.

The guest tests take their expectations of the *kernel* (attribute files, limits, errnos) from
here, never from a table of versions: a test checks that netconsolectl copes with what this
kernel does, and the product's own version table (netconsolectl.sender.kernel) is what the
conformance checks hold against the same kernel. Each probe uses a throwaway target that is
removed again, before any test runs (tests/kernel/guest/test_00_setup.py asks first).
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from functools import cache

from netconsolectl.sender.configfs import ConfigFS

PROBE = "kfacts-probe"
SLOT_CEILING = 1024  # stop counting userdata slots here (no kernel allows as many)
SYSDATA_ORDER = ("cpu_nr", "taskname", "release", "msgid")  # as the kernel appends them


@dataclass(frozen=True)
class KernelFacts:
    attrs: frozenset[str]  # attribute files of a new target (userdata/ not included)
    userdata: bool  # the target has a userdata/ group
    sysdata: frozenset[str]  # toggles under userdata/: cpu_nr, taskname, release, msgid
    max_userdata: int  # userdata keys one target takes (0 without userdata/)
    value_200_errno: int | None  # a 200-byte userdata value: E2BIG (6.9-6.18), EMSGSIZE (7.x)
    value_200_stored: bool  # the refused 200-byte write still changed what the value reads
    unset_ip: str  # what remote_ip reads on a new target
    release_read_lies: bool  # userdata/release_enabled reads the taskname bit (6.15-6.18)

    def sysdata_json(self, fs: ConfigFS, name: str) -> dict[str, bool | None] | None:
        """The ``sysdata`` of ``list/show --json`` for target ``name`` as its files say:
        None without toggles, and None for ``release`` where its read cannot be trusted."""
        if not self.sysdata:
            return None
        out: dict[str, bool | None] = {}
        for toggle in SYSDATA_ORDER:
            if toggle in self.sysdata:
                on = fs.read(f"{name}/userdata/{toggle}_enabled") == "1"
                out[toggle] = None if toggle == "release" and self.release_read_lies else on
        return out


def _errno_of(fs: ConfigFS, rel: str, value: str) -> int | None:
    try:
        fs.write(rel, value)
    except OSError as e:
        return e.errno
    return None


def _count_slots(fs: ConfigFS) -> int:
    made = 0
    try:
        while made < SLOT_CEILING:
            try:
                fs.mkdir(f"{PROBE}/userdata/s{made}")
            except OSError as e:
                if e.errno == errno.ENOSPC:
                    break
                raise
            made += 1
    finally:
        for i in range(made):
            fs.rmdir(f"{PROBE}/userdata/s{i}")
    return made


@cache
def measure() -> KernelFacts:
    """Probe the live configfs (netconsole must be loaded)."""
    fs = ConfigFS()
    if fs.exists(PROBE):
        for key in fs.listdir(f"{PROBE}/userdata") if fs.isdir(f"{PROBE}/userdata") else []:
            fs.rmdir(f"{PROBE}/userdata/{key}")
        fs.rmdir(PROBE)
    fs.mkdir(PROBE)
    try:
        entries = set(os.listdir(fs.path(PROBE)))
        userdata = "userdata" in entries
        toggles = set(os.listdir(fs.path(f"{PROBE}/userdata"))) if userdata else set()
        sysdata = frozenset(t.removesuffix("_enabled") for t in toggles
                            if t.endswith("_enabled"))
        err200, stored = None, False
        slots = 0
        if userdata:
            slots = _count_slots(fs)
            fs.mkdir(f"{PROBE}/userdata/k")
            fs.write(f"{PROBE}/userdata/k/value", "old")
            err200 = _errno_of(fs, f"{PROBE}/userdata/k/value", "n" * 200)
            stored = fs.read(f"{PROBE}/userdata/k/value") != "old"
            fs.rmdir(f"{PROBE}/userdata/k")
        lies = False
        if "release" in sysdata:
            fs.write(f"{PROBE}/userdata/release_enabled", "1")
            lies = fs.read(f"{PROBE}/userdata/release_enabled") != "1"
            fs.write(f"{PROBE}/userdata/release_enabled", "0")
        return KernelFacts(
            attrs=frozenset(entries - {"userdata"}), userdata=userdata, sysdata=sysdata,
            max_userdata=slots, value_200_errno=err200, value_200_stored=stored,
            unset_ip=fs.read(f"{PROBE}/remote_ip"), release_read_lies=lies,
        )
    finally:
        fs.rmdir(PROBE)

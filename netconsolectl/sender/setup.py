"""Make netconsole's configfs tree available: modules, mount, boot-time targets.

Nothing here runs on import or construction; ``setup`` is called explicitly by the ``setup``
command and by ``add`` when ``netconsole/`` is missing under the default root.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable

from netconsolectl.errors import DENIED, PermissionDenied, Unavailable
from netconsolectl.facts import is_unset
from netconsolectl.sender.kernel import Kernel
from netconsolectl.sender.machine import Machine
from netconsolectl.sender.target import Target, TargetState, list_targets, require_netconsole

_BUILTIN_RE = re.compile(r"(?:^|\s)(?:netconsole\.)?netconsole=(\"[^\"]*\"|\S+)")
_MODULE_RE = re.compile(r"(?:^|\s)netconsole\.netconsole=(\"[^\"]*\"|\S+)")
# The names the kernel gives boot-time targets in configfs (6.7+): cmdline0, cmdline1, ...
BOOT_NAME = re.compile(r"cmdline[0-9]+")


def boot_target_names(cmdline: str, *, modular: bool = False,
                      kernel: Kernel | None = None) -> list[str]:
    """Names the kernel gives the targets of the boot parameter on the command line.

    Since 6.7 the Nth target parsed from the parameter is ``cmdline<N>``
    (drivers/net/netconsole.c ``alloc_param_target``); it shows up in configfs only after a
    ``mkdir`` of that name, which attaches to the existing target. Targets are separated by
    ``;``. A built-in netconsole reads ``netconsole=`` (its __setup) and
    ``netconsole.netconsole=``; a module only gets ``netconsole.netconsole=`` (modprobe passes
    it from /proc/cmdline), a bare ``netconsole=`` goes to init instead.
    """
    from netconsolectl.sender import bootparam

    names: list[str] = []
    for m in (_MODULE_RE if modular else _BUILTIN_RE).finditer(cmdline):
        value = m.group(1).strip('"')
        # As a module parameter a value over 255 bytes is refused; __setup truncates it.
        as_param = m.group(0).strip().startswith("netconsole.")
        start = len(names)
        count = bootparam.count_parsed(value, module=as_param, kernel=kernel)
        names += [f"cmdline{i}" for i in range(start, start + count)]
    return names


def attach_boot_targets(system: Machine) -> list[str]:
    """``mkdir cmdlineN`` for each boot target not yet visible; returns the names attached.

    Nothing on kernels before 6.7: their boot targets cannot be shown in configfs, and a
    ``mkdir cmdline0`` there makes an ordinary target instead (see kernel.py).
    """
    from netconsolectl.sender.kernel import detect

    fs = system.configfs
    attached: list[str] = []
    kernel = detect(fs)
    if not kernel.boot_targets_in_configfs:
        return attached
    # /sys/module/<mod>/initstate exists only for loadable modules.
    modular = (system.sysfs / "module/netconsole/initstate").exists()
    for name in boot_target_names(system.cmdline(), modular=modular, kernel=kernel):
        if fs.exists(name):
            continue
        try:
            fs.mkdir(name)
        except OSError as e:
            if e.errno in DENIED:
                break  # not root: list still works, the boot targets stay hidden
            raise
        # A boot target always has a remote address (the parameter requires it). Without one,
        # the kernel no longer holds that boot target (it was removed, which destroys it for
        # good) and the mkdir made a blank ordinary target: take it back.
        remote = Target(fs, name).read("remote_ip")
        if is_unset(remote):
            fs.rmdir(name)
            continue
        attached.append(name)
    return attached


def setup(system: Machine) -> list[str]:
    """Load configfs and netconsole and mount configfs as needed; idempotent.

    Returns what was done, one phrase per action (empty when everything was in place).
    """
    fs = system.configfs
    done: list[str] = []
    if not fs.is_default_root:
        # A sandbox root: no modules to load and nothing to mount, only check it.
        require_netconsole(fs)
    else:
        if not system.configfs_mounted():
            system.modprobe("configfs")
            if not system.configfs_mounted():
                system.mount_configfs()
                done.append(f"mounted configfs on {fs.root}")
        if not fs.available():
            system.modprobe("netconsole")
            done.append("loaded the netconsole module")
        if not fs.available():
            raise Unavailable(
                f"{fs.base} does not exist although netconsole is loaded: this kernel lacks "
                "CONFIG_NETCONSOLE_DYNAMIC (netconsole can then only be configured at boot)",
                hint="use the netconsole= boot parameter (`netconsolectl cmdline`)",
            )
    try:
        names = attach_boot_targets(system)
    except OSError as e:
        raise PermissionDenied(f"cannot attach boot targets: {e.strerror}") from None
    done += [f"attached boot target {n}" for n in names]
    return done


def read_live(system: Machine, attach: Iterable[str] = ()) -> dict[str, TargetState]:
    """Every live target, boot targets attached first; empty when netconsole is missing.

    ``attach``: configured names of the ``cmdline<N>`` form to attach as well. The kernel
    command line does not list boot targets that came from module options (modprobe.d), but a
    ``mkdir cmdline<N>`` attaches to such a target just the same (and creates an ordinary,
    disabled one when there is none), so apply then changes it instead of creating it, which
    would fail: an attached boot target is usually enabled.
    """
    fs = system.configfs
    if not fs.available():
        return {}
    with contextlib.suppress(OSError):
        attach_boot_targets(system)
    from netconsolectl.sender.kernel import detect

    if not detect(fs).boot_targets_in_configfs:
        attach = ()  # before 6.7 the mkdir would make a second, ordinary target
    for name in attach:
        if BOOT_NAME.fullmatch(name) and not fs.exists(name):
            with contextlib.suppress(OSError):
                fs.mkdir(name)
    return {t.name: t.state() for t in list_targets(fs)}

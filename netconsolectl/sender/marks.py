"""A person's ``disable``, remembered under /run so that ``watch`` does not undo it.

The kernel disables a target by itself in two cases only (drivers/net/netconsole.c
``netconsole_netdev_event``): its device unregistered (up to about 6.19; later kernels
"deactivate" it and resume it on their own), or its device joined a master (bond, bridge,
team). Read back, a target the kernel disabled and one a person disabled look the same
(``enabled`` is 0). So ``netconsolectl disable`` leaves a mark, ``enable``, ``add``, ``remove``
and ``apply`` clear it, and ``watch`` never re-enables a marked target. The marks live under
``/run`` (a tmpfs), so they end with the boot, as the kernel's targets do. They sit with the
sender, below every user (the verbs, ``apply``, ``watch`` and the command line).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from netconsolectl.sender.configfs import DEFAULT_ROOT
from netconsolectl.sender.machine import Machine


def marks_dir(system: Machine) -> Path:
    """One directory per configfs root (a sandbox root gets its own, like the lock)."""
    root = system.configfs.root
    if root == DEFAULT_ROOT:
        return system.run_dir / "disabled"
    import hashlib

    digest = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]
    return system.run_dir / f"disabled-{digest}"


def mark_disabled(system: Machine, name: str) -> None:
    """Remember that a person disabled ``name`` (best effort: no /run, no mark)."""
    d = marks_dir(system)
    with contextlib.suppress(OSError):
        d.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(f"{os.getpid()}\n")


def clear_mark(system: Machine, name: str) -> None:
    with contextlib.suppress(OSError):
        (marks_dir(system) / name).unlink()


def disabled_by_person(system: Machine, name: str) -> bool:
    return (marks_dir(system) / name).exists()

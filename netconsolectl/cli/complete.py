"""Shell-completion callbacks: target names, interface names, userdata keys.

They run on every <TAB>, so they import nothing heavy, never need root and never fail: an
unreadable root or a missing directory completes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from netconsolectl.configfs import DEFAULT_ROOT


def _root(ctx: Any) -> Path:
    """The configfs root in effect: --configfs-root on the line, then the env var, then default."""
    root = ctx.find_root() if ctx is not None else None
    value = root.params.get("configfs_root") if root is not None else None
    return Path(value or os.environ.get("NETCONSOLECTL_CONFIGFS_ROOT") or DEFAULT_ROOT)


def _subdirs(path: Path) -> list[str]:
    try:
        return sorted(e.name for e in os.scandir(path) if e.is_dir(follow_symlinks=False))
    except OSError:
        return []


def target_names(ctx: Any, incomplete: str) -> list[str]:
    return [n for n in _subdirs(_root(ctx) / "netconsole") if n.startswith(incomplete)]


def interface_names(incomplete: str) -> list[str]:
    """Interfaces of this network namespace, from sysfs (readable without root)."""
    try:
        names = sorted(os.listdir("/sys/class/net"))
    except OSError:
        return []
    return [n for n in names if n.startswith(incomplete)]


def userdata_items(ctx: Any, incomplete: str) -> list[str]:
    """``KEY=`` for each userdata key of the target named on the line."""
    name = ctx.params.get("name") if ctx is not None else None
    if not name:
        return []
    keys = _subdirs(_root(ctx) / "netconsole" / str(name) / "userdata")
    return [f"{k}=" for k in keys if f"{k}=".startswith(incomplete)]

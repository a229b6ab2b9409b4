"""Which seam a ``--configfs-root`` gets: the kernel's configfs, or the sandbox emulation.

Kept apart from both so that the read-only fast path pays for the emulation module only when
the root really is a sandbox.
"""

from __future__ import annotations

from pathlib import Path

from netconsolectl.sender.configfs import DEFAULT_ROOT, ConfigFS, is_configfs_mount


def open_configfs(root: Path | str = DEFAULT_ROOT) -> ConfigFS:
    """The seam for ``root``: the kernel's configfs, or a sandbox emulating it.

    The default root and any configfs mount are the kernel's. Any other existing directory is
    a sandbox: netconsolectl.sender.emulation enforces the kernel's rules on plain files (the
    kernel profile comes from ``$NETCONSOLECTL_SANDBOX_KERNEL``, default the newest). A path
    that does not exist stays a plain ConfigFS, so the usual error explains it.
    """
    root = Path(root)
    if root == DEFAULT_ROOT or not root.is_dir() or is_configfs_mount(root):
        return ConfigFS(root)
    from netconsolectl.sender.emulation import sandbox

    return sandbox(root)

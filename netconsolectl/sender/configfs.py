"""The one seam for configfs I/O.

Everything that reads, writes, creates or removes something under the configfs root goes
through a :class:`ConfigFS`. The root is injected (``/sys/kernel/config`` by default), so the
same code runs against the real kernel, a sandbox directory, or the kernel-faithful fake used
by the tests (a subclass that enforces the kernel's rules before delegating here).

Paths given to the methods are relative to ``<root>/netconsole``. ``OSError`` is raised with
the kernel's errno untouched; callers translate it with context (see
``netconsolectl.sender.target``).
"""

from __future__ import annotations

import os
from pathlib import Path

from netconsolectl.facts import CONFIGFS_ROOT
from netconsolectl.hostutil import kernel_release

DEFAULT_ROOT = Path(CONFIGFS_ROOT)


class ConfigFS:
    """Reads and writes configfs attributes under ``<root>/netconsole``."""

    def __init__(self, root: Path | str = DEFAULT_ROOT) -> None:
        self.root = Path(root)

    @property
    def base(self) -> Path:
        """``<root>/netconsole``: exists only while the module is loaded with DYNAMIC on."""
        return self.root / "netconsole"

    @property
    def is_default_root(self) -> bool:
        # As strings: a Path class other than the one DEFAULT_ROOT was made with (pyfakefs
        # swaps pathlib's) must still compare equal for the same path.
        return os.fspath(self.root) == os.fspath(DEFAULT_ROOT)

    @property
    def emulated(self) -> bool:
        """True for the sandbox emulation (netconsolectl.sender.emulation)."""
        return False

    def kernel_release(self) -> str:
        """The release string of the kernel behind this tree (``uname -r``).

        Read as the host seam reads it (/proc, which tests may lay out); uname(2) where /proc
        is not mounted."""
        return kernel_release() or os.uname().release

    def path(self, rel: str) -> Path:
        return self.base / rel if rel else self.base

    def available(self) -> bool:
        return self.base.is_dir()

    def read(self, rel: str) -> str:
        """Read an attribute; configfs ends every value with one ``\\n``, which is removed."""
        with open(self.path(rel), "rb") as f:
            data = f.read()
        text = data.decode("utf-8", "surrogateescape")
        return text[:-1] if text.endswith("\n") else text

    def write(self, rel: str, value: str) -> None:
        """Store ``value`` with a single ``write(2)``.

        configfs calls the attribute's ``store`` once per write; a buffered writer could split
        or merge writes. No newline is appended: the kernel strips one if present, but the
        userdata value limit counts it (drivers/net/netconsole.c ``userdatum_value_store``).
        """
        data = value.encode("utf-8", "surrogateescape")
        # O_TRUNC as the shell's `>` does (configfs ignores it; a sandbox file needs it);
        # never O_CREAT: a missing attribute must fail with ENOENT, not become a stray file.
        fd = os.open(self.path(rel), os.O_WRONLY | os.O_TRUNC)
        try:
            written = os.write(fd, data)
        finally:
            os.close(fd)
        if written != len(data):  # pragma: no cover - configfs consumes whole stores
            raise OSError(5, f"short write to {rel}")

    def mkdir(self, rel: str) -> None:
        os.mkdir(self.path(rel))

    def rmdir(self, rel: str) -> None:
        os.rmdir(self.path(rel))

    def listdir(self, rel: str = "") -> list[str]:
        """Names of the subdirectories of ``rel``, sorted."""
        p = self.path(rel)
        return sorted(e.name for e in os.scandir(p) if e.is_dir(follow_symlinks=False))

    def exists(self, rel: str) -> bool:
        return os.path.lexists(self.path(rel))

    def isdir(self, rel: str) -> bool:
        return self.path(rel).is_dir()


CONFIGFS_TYPE = "configfs"


def is_configfs_mount(root: Path, mounts: Path = Path("/proc/mounts")) -> bool:
    """Whether ``root`` is where a configfs is mounted (per ``/proc/mounts``)."""
    try:
        text = mounts.read_text()
    except OSError:
        return False
    want = os.path.realpath(root)
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == CONFIGFS_TYPE:
            point = fields[1].replace("\\040", " ")
            if os.path.realpath(point) == want:
                return True
    return False

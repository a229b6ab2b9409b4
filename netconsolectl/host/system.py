"""The host seam for everything that is not configfs: /proc, /dev/kmsg, modules, mounts, the lock.

Like :class:`~netconsolectl.sender.configfs.ConfigFS`, every path is injected so tests and sandboxes
can point it at a directory they own.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netconsolectl.errors import KernelRefused, Unavailable
from netconsolectl.facts import SYSFS_NET
from netconsolectl.hostutil import kernel_release, run_command
from netconsolectl.sender.configfs import ConfigFS

if TYPE_CHECKING:
    from netconsolectl.sender.spec import TargetSpec


@dataclass
class System:
    """One machine as netconsolectl sees it."""

    configfs: ConfigFS = field(default_factory=ConfigFS)
    proc: Path = Path("/proc")
    sysfs: Path = Path("/sys")
    dev_kmsg: Path = Path("/dev/kmsg")
    lock_dir: Path = Path("/run/lock")
    run_dir: Path = Path("/run/netconsolectl")  # state that ends with the boot (disable marks)
    lock_timeout: float = 30.0
    # Opens the network that discovery and doctor ask (a discovery ``NetworkView``; typed loosely
    # because discovery sits above this seam). None: the kernel's, over rtnetlink (pyroute2).
    # The unit tier injects the fake kernel's devices here.
    network: Callable[[], AbstractContextManager[Any]] | None = None
    # A sandbox root (``--configfs-root`` on a plain directory): the product never writes the
    # host's /proc or /dev/kmsg then; what it writes goes under this directory instead.
    sandbox: Path | None = None

    # -- console loglevel -------------------------------------------------------------------
    @property
    def printk_path(self) -> Path:
        """Where the console loglevel is read: a sandbox's own copy once it set one, else
        the host's (read only, as a starting value)."""
        if self.sandbox is not None and self.printk_write_path.exists():
            return self.printk_write_path
        return self.proc / "sys/kernel/printk"

    @property
    def printk_write_path(self) -> Path:
        """Where the console loglevel is written: under the sandbox root for a sandbox."""
        if self.sandbox is not None:
            return self.sandbox / "proc/sys/kernel/printk"
        return self.proc / "sys/kernel/printk"

    @property
    def kmsg_path(self) -> Path:
        """Where a line for the kernel log is written: a plain file in a sandbox."""
        return self.sandbox / "dev/kmsg" if self.sandbox is not None else self.dev_kmsg

    def console_loglevel(self) -> int | None:
        """First field of /proc/sys/kernel/printk; None when it cannot be read."""
        try:
            return int(self.printk_path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def loglevel_warning(self) -> str | None:
        """Say so when the console loglevel filters what netconsole would send.

        netconsole is an ordinary console: a record reaches it only if its level is below
        console_loglevel (kernel/printk/printk.c suppress_message_printing). At 4 (Debian's
        default) warnings are dropped; at 3 or less errors are dropped too.
        """
        level = self.console_loglevel()
        if level is None or level > 4:
            return None
        lost = "errors, warnings" if level <= 3 else "warnings"
        return (
            f"console loglevel is {level}: kernel {lost} and less severe messages never reach "
            "netconsole; raise it with `dmesg -n 8` (or `netconsolectl loglevel 8`)"
        )

    def kernel_release(self) -> str | None:
        """The running kernel's release (``uname -r``); None when unreadable."""
        return kernel_release(self.proc)

    def complete_spec(self, spec: TargetSpec, broadcast: bool) -> TargetSpec:
        """``spec`` completed by discovery over this machine's network, quietly."""
        from netconsolectl.discover.fill import fill_spec

        return fill_spec(spec, broadcast=broadcast, network=self.network).spec

    def cmdline(self) -> str:
        """The kernel command line ('' when unreadable)."""
        try:
            return (self.proc / "cmdline").read_text().strip()
        except OSError:
            return ""

    # -- network devices ----------------------------------------------------------------------
    def master_of(self, dev: str) -> str | None:
        """The bond, team or bridge ``dev`` is a port of (sysfs ``master`` link), else None.

        netconsole refuses such a port with EBUSY ("is a slave device"); the master is the
        device to use.
        """
        try:
            return (self.sysfs / SYSFS_NET / dev / "master").resolve(strict=True).name
        except OSError:
            return None

    # -- modules and mounts -----------------------------------------------------------------
    def configfs_mounted(self) -> bool:
        try:
            mounts = (self.proc / "mounts").read_text()
        except OSError:
            return self.configfs.root.is_dir()
        root = str(self.configfs.root)
        return any(
            len(parts) >= 3 and parts[1] == root and parts[2] == "configfs"
            for parts in (line.split() for line in mounts.splitlines())
        )

    def modprobe(self, module: str) -> None:
        """Load a module; built-in modules succeed too (modprobe knows modules.builtin)."""
        run_command(
            ["modprobe", module], f"cannot load module {module}",
            missing_hint="install kmod, or load the module some other way", refused=Unavailable,
            hint=f"this kernel has no {module} module (CONFIG_NETCONSOLE, CONFIG_CONFIGFS_FS)",
        )

    def mount_configfs(self) -> None:
        root = self.configfs.root
        run_command(["mount", "-t", "configfs", "none", str(root)],
                    f"cannot mount configfs on {root}",
                    hint="check that CONFIG_CONFIGFS_FS is enabled")

    # -- serialisation ----------------------------------------------------------------------
    def lock_path(self) -> Path:
        root = self.configfs.root
        if self.configfs.is_default_root:
            return self.lock_dir / "netconsolectl.lock"
        import hashlib

        digest = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]
        return self.lock_dir / f"netconsolectl-{digest}.lock"

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Serialise configuration changes: two runbooks must not interleave their writes."""
        path = self.lock_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            # No writable lock directory (unprivileged sandbox): fall back to a per-user one.
            alt = Path(os.environ.get("XDG_RUNTIME_DIR") or "/tmp") / path.name
            fd = os.open(alt, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + self.lock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as e:
                    if e.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() >= deadline:
                        raise KernelRefused(
                            f"another netconsolectl is changing the configuration ({path})",
                            hint="wait for it to finish and run again",
                        ) from e
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)

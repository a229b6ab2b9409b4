"""What the sender needs from the machine beyond configfs, as a Protocol.

The sender sits below the host seam (:class:`netconsolectl.host.system.System` provides all of
this), so it names what it reads here instead of importing the host: a plan, its apply, the
module setup and the disable marks depend on these few calls only, and the type checker holds
``System`` to them.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from netconsolectl.sender.configfs import ConfigFS
from netconsolectl.sender.spec import TargetSpec


class Machine(Protocol):
    """The calls the sender makes on the running machine."""

    @property
    def configfs(self) -> ConfigFS: ...

    @property
    def sysfs(self) -> Path: ...

    @property
    def run_dir(self) -> Path:
        """State that ends with the boot (the marks of a person's ``disable``)."""
        ...

    def lock(self) -> AbstractContextManager[None]:
        """Serialise configuration changes with other netconsolectl processes."""
        ...

    def cmdline(self) -> str:
        """The kernel command line ('' when unreadable)."""
        ...

    def master_of(self, dev: str) -> str | None:
        """The bond, team or bridge ``dev`` is a port of, else None."""
        ...

    def configfs_mounted(self) -> bool: ...

    def modprobe(self, module: str) -> None: ...

    def mount_configfs(self) -> None: ...

    def complete_spec(self, spec: TargetSpec, broadcast: bool) -> TargetSpec:
        """``spec`` with what discovery finds on the network (interface, source, next-hop
        MAC) filled in and what it gives checked, quietly."""
        ...

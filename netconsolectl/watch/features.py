"""Which kernels put a target back by themselves (the one decision watch leaves to the kernel).

Up to about 6.19, a target whose device unregisters is disabled for good ("network logging
stopped on interface X as it unregistered", drivers/net/netconsole.c
``netconsole_netdev_event``). The auto-resume series (net-next, January 2026, expected in 7.0)
makes it *deactivated* instead and resumes it from a workqueue when a device of that name (or
MAC) registers again; writing ``enabled`` to a deactivated target cancels that resume. So on
those kernels watch must not touch a target that is only waiting for its device. Enslaving
(NETDEV_JOIN) still disables a target for good on every kernel.

There is no feature file to ask, so the kernel release decides, through
netconsolectl.sender.kernel (``Kernel.keeps_deactivated_targets``), where every version rule
lives.
"""

from __future__ import annotations

from netconsolectl.host.system import System
from netconsolectl.sender.kernel import DEACTIVATED, for_release, parse_version

RESUME_SINCE = DEACTIVATED


def resumes_unregistered_targets(system: System) -> bool:
    """True when the running kernel resumes a target whose device registers again."""
    release = system.kernel_release()
    if release is None or parse_version(release) is None:
        return False  # unknown: watch acts as on the kernels that disable for good
    return for_release(release).keeps_deactivated_targets

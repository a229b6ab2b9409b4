"""``netconsolectl watch``: keep netconsole delivering while the network changes.

:class:`Watcher` applies a configuration file and then follows rtnetlink events, re-planning
only the targets a change concerns (see :mod:`netconsolectl.watch.core`). pyroute2 is imported
when a watcher starts, not with this package.
"""

from __future__ import annotations

from netconsolectl.sender.marks import clear_mark, disabled_by_person, mark_disabled
from netconsolectl.watch.core import HEARTBEAT_PREFIX, Action, Watcher, WatchOptions

__all__ = [
    "HEARTBEAT_PREFIX",
    "Action",
    "WatchOptions",
    "Watcher",
    "clear_mark",
    "disabled_by_person",
    "mark_disabled",
]

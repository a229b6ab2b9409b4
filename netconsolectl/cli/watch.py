"""CLI watch: apply the configuration, then keep it delivering while the network changes.

A thin layer over :class:`netconsolectl.watch.Watcher`: options in, one line per action on
stderr (or, with --json, one JSON object per action on stdout, apart from the messages),
signals mapped to stop and reload.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from netconsolectl.cli.apply import ConfigArg
from netconsolectl.cli.base import command, info, state
from netconsolectl.cli.resolve import ConfigArpRetriesOpt, ConfigArpTimeoutOpt
from netconsolectl.declarative.config import DEFAULT_PATH

if TYPE_CHECKING:
    from netconsolectl.watch import Action


@command("watch")
def watch_cmd(
    ctx: typer.Context,
    file: ConfigArg = DEFAULT_PATH,
    json_: Annotated[bool, typer.Option(
        "--json", help="One JSON object per action on stdout (time, target, action, changes, "
        "why, error); messages stay on stderr.",
    )] = False,
    heartbeat: Annotated[float, typer.Option(
        "--heartbeat", metavar="SECONDS", min=0.0,
        help="Write `netconsolectl: heartbeat N` to /dev/kmsg this often, at a level that "
        "passes the console loglevel (0: off).",
    )] = 0.0,
    revalidate: Annotated[float, typer.Option(
        "--revalidate", metavar="SECONDS", min=0.0,
        help="Probe each target's next hop this often even without events, to catch a "
        "replaced gateway (0: off).",
    )] = 300.0,
    arp_timeout: ConfigArpTimeoutOpt = None,
    arp_retries: ConfigArpRetriesOpt = None,
) -> None:
    """Apply FILE, then keep its targets delivering while the network changes.

    Follows rtnetlink link, address, route and neighbour events and re-plans only the targets
    a change concerns (new gateway MAC, new source address, route moved, device gone and back,
    device enslaved: the target moves to the master). A target that could not be created or
    changed (at boot the NIC or its address may come later) is tried again after 1 s, 2 s,
    4 s, ... then every minute. A target disabled with `disable` stays disabled. SIGHUP
    re-reads FILE; SIGTERM or SIGINT stop. An invalid FILE fails as `apply`
    does, with nothing changed.
    """
    from netconsolectl.watch import Watcher, WatchOptions

    def report(action: Action) -> None:
        if json_:
            sys.stdout.write(json.dumps(action.to_json(), separators=(",", ":")) + "\n")
            sys.stdout.flush()  # one event as it happens, to a pipe too
        else:
            info(action.line())

    st = state(ctx)
    watcher = Watcher(st.system, file, WatchOptions(heartbeat=heartbeat, revalidate=revalidate),
                      report, arp_timeout=arp_timeout, arp_retries=arp_retries)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT,
                                                       signal.SIGHUP)}
    signal.signal(signal.SIGTERM, lambda *_: watcher.request_stop())
    signal.signal(signal.SIGINT, lambda *_: watcher.request_stop())
    signal.signal(signal.SIGHUP, lambda *_: watcher.request_reload())
    try:
        count = watcher.start()
        info(f"watching {count} target{'s' if count != 1 else ''} (pid {os.getpid()})")
        watcher.run()
    finally:
        watcher.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    info("stopped watching")



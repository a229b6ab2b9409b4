"""``list`` and ``show``: the read-only commands, and a fast path that serves them without typer.

Admins and monitoring run ``list`` often; importing typer and building the command tree costs
more than the work itself. :func:`fast_main` recognises the plain forms
``[--configfs-root PATH] [--debug] list [--json]`` and ``... show NAME [--json]`` and runs the
same functions the typer commands call; anything else (help, completion, unknown options)
returns None and goes through typer. tests/unit/test_readonly.py checks both paths agree.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import TYPE_CHECKING

from netconsolectl.sender.configfs import DEFAULT_ROOT
from netconsolectl.sender.root import open_configfs

if TYPE_CHECKING:
    from netconsolectl.host.system import System
    from netconsolectl.sender.target import TargetState

#: Printed with the evidence (sender/kernel.py panic_capture) where it applies.
PANIC_NOTE = "crash capture cannot be relied on: a panic's text never leaves this machine"


def _attach_boot_targets(system: System) -> None:
    """As root, make the cmdlineN boot targets visible; unprivileged, list what is there."""
    from netconsolectl.sender.setup import attach_boot_targets

    if system.configfs.available():
        with contextlib.suppress(OSError):
            attach_boot_targets(system)


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    sys.stdout.flush()


def with_status(system: System, found: list[TargetState]) -> list[TargetState]:
    """The states with enabled / disabled / deactivated (7.x: device gone, the kernel
    resumes it) told apart; `disable` on a deactivated target cancels the resume."""
    if not found:
        return found
    from netconsolectl.sender.kernel import detect
    from netconsolectl.sender.marks import disabled_by_person
    from netconsolectl.sender.plan import with_status as status_of

    kernel = detect(system.configfs)
    return [status_of(system, kernel, s, disabled_on_purpose=disabled_by_person(system, s.name))
            for s in found]


def states(system: System) -> list[TargetState]:
    from netconsolectl.sender.target import list_targets, require_netconsole

    require_netconsole(system.configfs)
    _attach_boot_targets(system)
    return with_status(system, [t.state() for t in list_targets(system.configfs)])


def do_list(system: System, as_json: bool) -> None:
    from netconsolectl.cli.output import info
    from netconsolectl.cli.render import print_list

    found = states(system)
    if as_json:
        _print_json([s.to_json() for s in found])
    elif not found:
        info("no netconsole targets; create one with `netconsolectl add NAME --remote-ip IP`")
    else:
        print_list(found)


def do_show(system: System, name: str, as_json: bool) -> None:
    from netconsolectl.cli.render import print_table, show_rows
    from netconsolectl.sender.spec import validate_target_name
    from netconsolectl.sender.target import Target, require_netconsole

    require_netconsole(system.configfs)
    _attach_boot_targets(system)
    s = with_status(system, [Target(system.configfs, validate_target_name(name)).state()])[0]
    from netconsolectl.host.doctor import panic_capture
    from netconsolectl.sender.kernel import detect

    kernel = detect(system.configfs)
    capture = panic_capture(system, kernel)
    if as_json:
        # What the kernel behind this target supports (release, userdata limit, sysdata...),
        # and whether a panic's text leaves the machine.
        _print_json({**s.to_json(), "kernel": kernel.to_json(),
                     "panic_capture": capture.to_json()})
    else:
        print_table(show_rows(s))
    if not capture.delivered:
        from netconsolectl.cli.output import info

        # Never let a target look like crash capture where the panic text is not sent.
        info(f"warning: {s.name}: {PANIC_NOTE}: {capture.evidence}"
             + (f" (fix: {capture.fix})" if capture.fix else ""))


def fast_main(argv: list[str]) -> int | None:
    """Run ``list``/``show`` without typer; None when the arguments need the full CLI.

    The command line is parsed with the generated table of the typer app
    (:func:`netconsolectl.cli.argv.parse_argv`), so both paths accept the same options.
    """
    from netconsolectl.cli.argv import hoist_global_options, parse_argv

    parsed = parse_argv(hoist_global_options(argv))
    if parsed is None or parsed.command not in ("list", "show"):
        return None
    if set(parsed.global_options) - {"configfs_root", "debug"} or set(parsed.options) - {"json_"}:
        return None  # help, version, completion: typer's
    if len(parsed.arguments) != (1 if parsed.command == "show" else 0):
        return None  # typer says what is wrong
    as_json = bool(parsed.options.get("json_"))
    root = parsed.global_options.get("configfs_root")
    if root == "":
        return None  # typer refuses it, with the message
    if not isinstance(root, str):
        root = os.environ.get("NETCONSOLECTL_CONFIGFS_ROOT") or str(DEFAULT_ROOT)
    debug = bool(parsed.global_options.get("debug") or os.environ.get("NETCONSOLECTL_DEBUG"))

    from netconsolectl.cli.output import info, run_reporting, sandbox_note
    from netconsolectl.host.system import System

    system = System(configfs=open_configfs(root))
    note = sandbox_note(system.configfs)
    if note:
        info(note)
    if parsed.command == "list":
        return run_reporting(lambda: do_list(system, as_json), debug=debug)
    return run_reporting(lambda: do_show(system, parsed.arguments[0], as_json), debug=debug)

"""Command-line interface. ``main`` is the console script entry point.

``app`` (the typer application with every command registered) is loaded on first access, so
the fast read-only path in :mod:`netconsolectl.cli.readonly` never imports typer.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer


def _load_app() -> typer.Typer:
    # Each module registers its commands on ``app`` when imported. Keep them light: heavy
    # imports (pyroute2, scapy, the receiver) happen inside the command functions.
    from netconsolectl.cli import apply, boot, diagnose, listen, resolve, targets, watch  # noqa: F401
    from netconsolectl.cli.base import app

    globals()["app"] = app
    return app


def __getattr__(name: str) -> typer.Typer:
    if name == "app":
        return _load_app()
    raise AttributeError(name)


def main() -> None:
    """The console script. Errors writing standard output end here, whatever the command:
    after a change, the status stays the command's own (the change happened)."""
    status: str | int | None = 0
    try:
        try:
            _main()
        except SystemExit as e:
            status = e.code
            raise
        finally:
            sys.stdout.flush()
    except OSError as e:
        from netconsolectl.cli.output import made_changes, output_failed

        code = output_failed(e)
        if code is None:
            raise
        sys.exit(status if made_changes() else code)
    except KeyboardInterrupt:
        # Ctrl-C before a command handles it itself (while Python imports the command line,
        # say): one line and the shell's status for SIGINT, not a traceback.
        sys.stderr.write("netconsolectl: interrupted\n")
        sys.exit(130)


def _main() -> None:
    if "_NETCONSOLECTL_COMPLETE" in os.environ:
        # A shell's <TAB>: answered from the generated table without importing typer; returns
        # when typer must answer (printing a script, or a word the table does not know).
        from netconsolectl.cli.complete import fast_complete

        fast_complete()
    from netconsolectl.cli.readonly import fast_main

    code = fast_main(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    _load_app()(prog_name="netconsolectl")


__all__ = ["app", "main"]

"""Messages on stderr, shared by the typer commands and the fast read-only path (no typer)."""

from __future__ import annotations

import sys

from netconsolectl.errors import NetconsoleError


def err(message: str) -> None:
    """One line to stderr, never interpreted as markup."""
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.stderr.flush()


def info(message: str) -> None:
    err(f"netconsolectl: {message}")


def warn(message: str) -> None:
    err(f"netconsolectl: warning: {message}")


def report(e: NetconsoleError) -> int:
    """Print an error as one line (the hint rides on it); return its exit code."""
    err(f"netconsolectl: error: {e}" + (f" (hint: {e.hint})" if e.hint else ""))
    return e.exit_code


def report_permission(e: PermissionError) -> int:
    from netconsolectl.errors import EXIT_NOPERM

    where = f": {e.filename}" if e.filename else ""
    err(f"netconsolectl: error: permission denied{where} (hint: run as root)")
    return EXIT_NOPERM

"""Global options (``--configfs-root``, ``--debug``) are accepted after the command name too.

``netconsolectl list --configfs-root /tmp/sandbox`` is how people type it; click only knows
them before the command. :func:`hoist_global_options` moves them there, for the typer
application and for the fast read-only path alike. Nothing after ``--`` is touched.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Global options that take a value, and flags.
WITH_VALUE = ("--configfs-root",)
FLAGS = ("--debug",)


def hoist_global_options(argv: Sequence[str]) -> list[str]:
    """``argv`` with the global options found after the command name moved before it."""
    args = list(argv)
    i = 0
    while i < len(args) and args[i].startswith("-"):  # global options already in front
        i += 2 if args[i] in WITH_VALUE else 1
    if i >= len(args):
        return args
    head, cmd, rest = args[:i], args[i], args[i + 1 :]
    moved: list[str] = []
    kept: list[str] = []
    j = 0
    while j < len(rest):
        a = rest[j]
        if a == "--":
            kept += rest[j:]
            break
        if a in FLAGS or (a.split("=", 1)[0] in WITH_VALUE and "=" in a):
            moved.append(a)
        elif a in WITH_VALUE and j + 1 < len(rest):
            moved += rest[j : j + 2]
            j += 1
        else:
            kept.append(a)
        j += 1
    return [*head, *moved, cmd, *kept]

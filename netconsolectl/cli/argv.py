"""The command line before typer: global options after the command, and a parser from the table.

Global options (``--configfs-root``, ``--debug``) are accepted after the command name too.

``netconsolectl list --configfs-root /tmp/sandbox`` is how people type it; click only knows
them before the command. :func:`hoist_global_options` moves them there, for the typer
application and for the fast read-only path alike. Nothing after ``--`` is touched.
:func:`parse_argv` reads a whole command line with the generated table of the typer app
(:mod:`netconsolectl.cli.tree`), for the paths that answer without importing typer.
"""

from __future__ import annotations

from netconsolectl.cli.tree import TREE

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: shell completion imports this per <TAB>
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from typing import Any

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


def find_option(node: Mapping[str, Any], word: str) -> dict[str, Any] | None:
    """The option of ``node`` (a :data:`TREE` node) that ``word`` names, else None."""
    for opt in node["options"]:
        if word in opt["opts"]:
            return opt  # type: ignore[no-any-return]
    return None


class ParsedArgv:
    """A whole command line as :data:`TREE` reads it: option values by parameter name."""

    def __init__(self) -> None:
        self.global_options: dict[str, str | bool] = {}
        self.command = ""
        self.options: dict[str, str | bool] = {}
        self.arguments: list[str] = []


def parse_argv(argv: list[str]) -> ParsedArgv | None:
    """Parse ``argv`` (after the program name) with :data:`TREE`; None for anything it cannot.

    Only commands without sub-commands and options taking at most one value are parsed; an
    unknown word, a missing value or a second command returns None (typer then decides).
    """
    parsed = ParsedArgv()
    node: Mapping[str, Any] = TREE
    values = parsed.global_options
    words = iter(argv)
    dashdash = False
    for word in words:
        if word.startswith("-") and word != "-" and not dashdash:
            if word == "--":
                dashdash = True
            elif not _take_option(node, word, words, values):
                return None
            continue
        if node is TREE and not parsed.command:
            sub = TREE["commands"].get(word)
            if sub is None or "commands" in sub:
                return None
            node, parsed.command, values = sub, word, parsed.options
            continue
        parsed.arguments.append(word)
    return parsed if parsed.command else None


def _take_option(node: Mapping[str, Any], word: str, words: Iterator[str],
                 values: dict[str, str | bool]) -> bool:
    """Record the option ``word`` (its value from ``words`` when not ``--opt=VALUE``);
    False when the table does not know it, it takes several values, or its value is missing."""
    name, eq, value = word.partition("=") if word.startswith("--") else (word, "", "")
    opt = find_option(node, name)
    if opt is None or opt.get("nargs", 1) > 1:
        return False
    if opt.get("nargs", 1) == 0:
        if eq:
            return False
        values[opt["name"]] = True
        return True
    if not eq:
        given = next(words, None)
        if given is None:
            return False
        value = given
    values[opt["name"]] = value
    return True

"""The console loglevel: the kernel's filter in front of every console, netconsole included.

A record reaches a console only if its level is below ``console_loglevel``, the first field of
``/proc/sys/kernel/printk`` (kernel/printk/printk.c ``suppress_message_printing``), unless the
``ignore_loglevel`` parameter is set. ``dmesg -n N`` sets it through syslog(2); writing one
number to the proc file sets only the first field, which is what :func:`set_console_loglevel`
does.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from netconsolectl.errors import DENIED, InvalidInput, Unavailable, from_oserror
from netconsolectl.host.system import System

LEVEL_NAMES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")


@dataclass(frozen=True)
class Printk:
    """The four fields of /proc/sys/kernel/printk."""

    console: int
    default_message: int
    minimum_console: int
    default_console: int


def read_printk(system: System) -> Printk | None:
    try:
        fields = [int(x) for x in system.printk_path.read_text().split()]
    except (OSError, ValueError):
        return None
    if len(fields) < 4:
        return None
    return Printk(*fields[:4])


def ignore_loglevel(system: System) -> bool:
    """``ignore_loglevel`` boot/module parameter: every level reaches every console."""
    p = system.sysfs / "module/printk/parameters/ignore_loglevel"
    try:
        return p.read_text().strip() in ("Y", "1")
    except OSError:
        return False


def passing_levels(console_loglevel: int) -> list[str]:
    """The level names that reach the consoles at this console loglevel."""
    return [name for i, name in enumerate(LEVEL_NAMES) if i < console_loglevel]


def describe(level: int) -> str:
    passing = passing_levels(level)
    if not passing:
        return "no message reaches the consoles"
    if len(passing) == len(LEVEL_NAMES):
        return "every level reaches netconsole (emerg to debug)"
    filtered = LEVEL_NAMES[len(passing):]

    def span(names: tuple[str, ...] | list[str]) -> str:
        return names[0] if len(names) == 1 else f"{names[0]} to {names[-1]}"

    verb = "is" if len(filtered) == 1 else "are"
    if len(passing) == 1:
        return f"only {passing[0]} reaches netconsole; {span(filtered)} {verb} filtered"
    return f"{span(passing)} reach netconsole; {span(filtered)} {verb} filtered"


def validate_level(value: int) -> int:
    if not 1 <= value <= 8:
        raise InvalidInput(
            f"invalid console loglevel {value}: must be 1 to 8",
            hint="8 lets every message through; 5 keeps info and debug off the consoles",
        )
    return value


def set_console_loglevel(system: System, level: int) -> None:
    """Change the first field of /proc/sys/kernel/printk (what `dmesg -n` changes).

    The other three fields are written back as read, so the store is the same whether the
    file is the kernel's (which would also take the first field alone) or a plain file.
    """
    validate_level(level)
    path = system.printk_write_path
    current = read_printk(system)
    fields = [level]
    if current is not None:
        fields += [current.default_message, current.minimum_console, current.default_console]
    flags = os.O_WRONLY | os.O_TRUNC
    if system.sandbox is not None:  # a plain file of the sandbox's, never the host's
        path.parent.mkdir(parents=True, exist_ok=True)
        flags |= os.O_CREAT | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags, 0o644)
        try:
            os.write(fd, ("\t".join(str(f) for f in fields) + "\n").encode())
        finally:
            os.close(fd)
    except OSError as e:
        if e.errno == errno.ENOENT:
            raise Unavailable(f"{path} does not exist (is /proc mounted?)",
                              errno=e.errno) from None
        msg = (f"cannot set the console loglevel: {path} needs root" if e.errno in DENIED
               else f"cannot write {path}: {e.strerror}")
        raise from_oserror(e, msg) from None


def change(system: System, level: int | None) -> tuple[int | None, int]:
    """Set the console loglevel when ``level`` is given; return it before and now."""
    before = system.console_loglevel()
    if level is not None:
        set_console_loglevel(system, level)
    current = system.console_loglevel()
    if current is None:
        raise Unavailable(f"cannot read the console loglevel from {system.printk_path}")
    return before, current


def report(system: System, current: int) -> dict[str, object]:
    """The printk levels as ``loglevel --json`` shows them."""
    p = read_printk(system)
    ignore = ignore_loglevel(system)
    return {
        "console_loglevel": current,
        "default_message_loglevel": p.default_message if p else None,
        "minimum_console_loglevel": p.minimum_console if p else None,
        "default_console_loglevel": p.default_console if p else None,
        "ignore_loglevel": ignore,
        "passing": list(LEVEL_NAMES) if ignore else passing_levels(current),
    }

"""Human output of ``list`` and ``show``: a rich table on a terminal, the same text when piped.

Piped output skips importing rich (a third of ``list``'s start-up) and prints the layout rich
would print for a borderless table: each cell padded by one space on both sides, columns
left-aligned. tests/unit/test_render.py checks that both renderings are the same text.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from netconsolectl.endpoint import endpoint

if TYPE_CHECKING:
    from netconsolectl.sender.target import TargetState

LIST_COLUMNS = ("NAME", "STATE", "DEV", "LOCAL", "REMOTE", "REMOTE MAC", "FORMAT", "USERDATA")


def list_rows(states: Sequence[TargetState]) -> list[tuple[str, ...]]:
    def fmt(s: TargetState) -> str:
        if not s.extended:
            return "basic"
        return "extended+release" if s.release else "extended"

    return [
        (
            s.name,
            s.state,
            s.dev_name or "-",
            endpoint(s.local_ip or "-", s.local_port),
            endpoint(s.remote_ip or "-", s.remote_port),
            s.remote_mac or "-",
            fmt(s),
            str(len(s.userdata)),
        )
        for s in states
    ]


def list_blocks(states: Sequence[TargetState]) -> str:
    """``list`` for a narrow terminal: one block per target, one address per line, so no
    address is ever cut (an IPv6 address with its port and the MAC fit in 80 columns)::

        collector  enabled, extended, 1 userdata
          dev     eth0
          local   192.0.2.10:6665
          remote  192.0.2.50:6666 (52:54:00:aa:bb:cc)
    """
    out = []
    for (name, state, dev, local, remote, mac, fmt, userdata) in list_rows(states):
        out.append(f"{name}  {state}, {fmt}, {userdata} userdata\n"
                   f"  dev     {dev}\n"
                   f"  local   {local}\n"
                   f"  remote  {remote} ({mac})\n")
    return "".join(out)


def print_list(states: Sequence[TargetState]) -> None:
    """``list``: the table, or :func:`list_blocks` on a terminal too narrow for the table."""
    rows = list_rows(states)
    if sys.stdout.isatty():
        import shutil

        width = shutil.get_terminal_size().columns
        if max(map(len, plain_table(rows, LIST_COLUMNS).splitlines())) > width:
            sys.stdout.write(list_blocks(states))
            sys.stdout.flush()
            return
    print_table(rows, LIST_COLUMNS)


#: Human output fits this many columns when piped (a terminal's own width when it is one).
WIDTH = 80


def _human(value: object) -> str:
    """A value in words, never a Python repr: yes/no, the sysdata toggles that are on."""
    if value is None:
        return "n/a (not in this kernel)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):  # sysdata: {"cpu_nr": true, "release": null, ...}
        on = [k for k, v in value.items() if v]
        unknown = [k for k, v in value.items() if v is None]
        text = ", ".join(on) if on else "none"
        return text + (f" ({', '.join(unknown)} unreadable)" if unknown else "")
    return str(value)


def _wrapped(key: str, value: str, width: int) -> list[tuple[str, str]]:
    """One row, or several when the value is longer than ``width`` (continuations keyless)."""
    if len(value) <= width:
        return [(key, value)]
    chunks = [value[i:i + width] for i in range(0, len(value), width)]
    return [(key, chunks[0]), *(("", c) for c in chunks[1:])]


def show_rows(s: TargetState) -> list[tuple[str, str]]:
    items = [(k, _human(v)) for k, v in s.to_json().items() if k != "userdata"]
    items += [(f"userdata.{k}", v) for k, v in s.userdata.items()]
    keys = max(len(k) for k, _ in items)
    room = max(20, WIDTH - keys - 4)  # two cells, each padded by a space on both sides
    return [row for k, v in items for row in _wrapped(k, v, room)]


def plain_table(rows: Sequence[Sequence[str]], header: Sequence[str] | None = None) -> str:
    """The text of a rich ``Table(box=None)`` without styles."""
    all_rows = [tuple(header), *rows] if header else [tuple(r) for r in rows]
    if not all_rows:
        return ""
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(all_rows[0]))]
    return "".join(
        "".join(f" {cell.ljust(w)} " for cell, w in zip(r, widths, strict=True)).rstrip()
        + "\n" for r in all_rows
    )


def rich_table(rows: Sequence[Sequence[str]], header: Sequence[str] | None = None,
               width: int | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, show_header=header is not None, header_style="bold")
    for i, col in enumerate(header or [""] * len(rows[0])):
        table.add_column(col, style="bold" if header is None and i == 0 else None,
                         no_wrap=width is not None)
    for r in rows:
        table.add_row(*r)
    Console(markup=False, highlight=False, width=width).print(table)


def print_table(rows: Sequence[Sequence[str]], header: Sequence[str] | None = None) -> None:
    if sys.stdout.isatty():
        rich_table(rows, header)
    else:
        sys.stdout.write(plain_table(rows, header))
        sys.stdout.flush()

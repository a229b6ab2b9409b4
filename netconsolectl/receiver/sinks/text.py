"""Human-readable lines: ``--output-dir`` files and (coloured) standard output.

Network text is never interpreted: control characters, DEL, C1 controls, bidirectional-override
characters and backslashes are shown escaped (``\\x1b``, ``\\u202e``, ``\\\\``), so a message can
neither move the cursor nor pretend to be another line. A byte that is not part of valid UTF-8 is
shown as ``\\xHH`` too; since a backslash in the text is doubled, ``\\xff`` is always the byte
0xff and ``\\\\xff`` the four characters, so the line is unambiguous and loses nothing. Colour
comes from fixed styles wrapped around the escaped text, never from parsing it, so ``[bold]`` in
a message prints as ``[bold]``.
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable
from typing import Any

from netconsolectl.endpoint import endpoint
from netconsolectl.receiver.model import Event, Message
from netconsolectl.receiver.output import (
    DISK_ERRORS,
    DiskTrouble,
    FdWriter,
    IsoTime,
    LocalTime,
    local_iso,
)
from netconsolectl.receiver.sinks import SinkBase

LEVEL_NAMES = ("emerg", "alert", "crit", "err", "warn", "notice", "info", "debug")
FACILITY_NAMES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3",
    "local4", "local5", "local6", "local7",
)  # fmt: skip


def _escape_table() -> dict[int, str]:
    table = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
    table[ord("\\")] = "\\\\"
    for c in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)):
        table[c] = f"\\u{c:04x}"
    # Bytes that were not UTF-8, as Python's "surrogateescape" decoding carries them.
    for b in range(0x80, 0x100):
        table[0xDC00 + b] = f"\\x{b:02x}"
    return table


_ESCAPES = _escape_table()


def escape(text: str) -> str:
    """Text from the network made inert for a terminal or a log file."""
    return text.translate(_ESCAPES)


def message_text(m: Message) -> str:
    """The message text escaped for a terminal or a file, invalid UTF-8 bytes as ``\\xHH``."""
    if m.raw is None:
        return escape(m.text)
    return escape(m.raw.decode("utf-8", "surrogateescape"))


def priority_name(facility: int | None, level: int | None) -> str:
    if level is None or facility is None:
        return "-"
    fac = FACILITY_NAMES[facility] if facility < len(FACILITY_NAMES) else str(facility)
    return f"{fac}.{LEVEL_NAMES[level]}"


def format_message(m: Message, *, with_host: bool = True) -> tuple[str, str, str]:
    """(head, text, tail) of a message line; only ``text`` comes from the network.

    The head is the source (``192.0.2.7:6665``, ``[2001:db8::1]:6665``; the port tells the
    kernel targets of one host apart) and, for the extended format, the kernel timestamp,
    ``facility.level``, release, ``#seq``; a basic-format message, which carries none of them,
    reads ``SOURCE kernel: text``. A sender's ``hostname`` userdata follows the source as
    ``(name)``.
    """
    host = f"{endpoint(m.host, m.port)} " if with_host else ""
    name = m.fields.get("hostname") if m.fields else None
    if name is not None:
        host += f"({escape(name)}) "
    if m.seq is None:
        head = f"{host}kernel"
    else:
        sec, usec = divmod(m.ts_usec or 0, 1_000_000)
        rel = f" {escape(m.release)}" if m.release else ""
        head = f"{host}[{sec:5d}.{usec:06d}] {priority_name(m.facility, m.level)}{rel} #{m.seq}"
        if m.cont:
            head += " (cont)"
    tail = ""
    if m.fields:
        tail = " " + " ".join(f"{escape(k)}={escape(v)}" for k, v in m.fields.items())
    if m.incomplete:
        tail += " (incomplete)"
    return head + ": ", message_text(m), tail


def format_event(e: Event, *, with_host: bool = True, dates: Callable[[str], str] = str) -> str:
    """The text of an event line; ``dates`` renders the times events carry (UTC ISO 8601 as
    in JSON; the terminal's lines show them local with :func:`local_iso`)."""
    host = ""
    if with_host:
        # silent/resumed are about an address, whatever port it sends from
        host = f"{e.host} " if e.type in ("silent", "resumed") else f"{endpoint(e.host, e.port)} "
    d = e.data
    if e.type == "lost":
        what = f"lost {d['count']} message(s), seq {d['first_seq']}..{d['last_seq']}"
        if "first_msgid" in d:
            what += f" (msgid {d['first_msgid']}..{d['last_msgid']})"
    elif e.type == "reset":
        what = f"sequence reset to {d['seq']} (was {d['previous_seq']}): sender restarted"
    elif e.type == "reorder":
        what = f"seq {d['seq']} arrived out of order"
    elif e.type == "duplicate":
        what = f"seq {d['seq']} arrived again or too late"
    elif e.type == "malformed":
        what = f"malformed datagram ({d['reason']}, {d['size']} bytes)"
    elif e.type == "crash":
        state = "" if d["complete"] else ", incomplete"
        what = f"kernel crash report ({d['kind']}{state}): {escape(d['title'])}"
    elif e.type == "silent":
        last = d["last_received"]
        what = "silent" + (f" since {dates(last)}" if last else ": never heard")
    elif e.type == "resumed":
        what = f"heard again (silent since {dates(d['last_received'])})"
    else:
        what = e.type
    return f"{host}-- {what} --"


def crash_block(e: Event) -> str:
    """The lines of a crash report, each prefixed ``| `` so the block stands out."""
    return "".join(f"  | {escape(line)}\n" for line in e.data["text"].split("\n"))


def _render(style: Any, system: Any, text: str) -> str:
    return str(style.render(text, color_system=system))


#: Bytes collected for one file before they are written without waiting for the flush.
WRITE_AT = 1 << 16


class FileSink(SinkBase):
    """``--output-dir``: one append-only file per sending host, flushed after every burst.

    The file name is derived from the source address only (``192.0.2.1.log``,
    ``2001_db8__1.log``, ``fe80__1_eth0.log``), never from packet content. At most
    ``max_open`` files stay open.

    A full disk or an I/O error does not stop the receiver: the lines that could not be written
    are counted (``output_dropped``), said once on ``err``, and writing resumes (said once too)
    as soon as the disk takes them again.
    """

    def __init__(self, directory: str, *, max_open: int = 128,
                 err: Callable[[str], None] | None = None, reverse: Any = None) -> None:
        from netconsolectl.receiver.names import NameLinks

        self.dir = directory
        #: ``by-name/NAME.log`` links (receiver/names.py).
        self.links = NameLinks(directory, self.filename, reverse)
        self.max_open = max_open
        self.files: dict[str, FdWriter] = {}
        self.iso = IsoTime()
        self.trouble = DiskTrouble(f"--output-dir {directory}", err)
        if os.path.lexists(directory) and not os.path.isdir(directory):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), directory)
        os.makedirs(directory, exist_ok=True)

    @staticmethod
    def filename(host: str) -> str:
        safe = "".join(c if c.isascii() and (c.isalnum() or c == ".") else "_" for c in host)
        return f"{safe.strip('.') or 'unknown'}.log"

    def _file(self, host: str) -> FdWriter:
        f = self.files.get(host)
        if f is None:
            if len(self.files) >= self.max_open:
                old_host, old = next(iter(self.files.items()))
                old.flush()
                os.close(old.fd)
                del self.files[old_host]
            path = os.path.join(self.dir, self.filename(host))
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            f = FdWriter(fd, limit=WRITE_AT, trouble=self.trouble)
            self.files[host] = f
        return f

    def _add(self, host: str, line: str) -> None:
        try:
            f = self._file(host)
        except OSError as e:  # no room for a new file
            if e.errno not in DISK_ERRORS:
                raise
            self.trouble(line.count("\n"), e)
            return
        f.write(line.encode())

    def message(self, m: Message) -> None:
        self.links.see(m.host, m.fields)
        head, text, tail = format_message(m)
        self._add(m.host, f"{self.iso(m.received)} {head}{text}{tail}\n")

    def event(self, e: Event) -> None:
        line = f"{self.iso(e.received)} {format_event(e)}\n"
        if e.type == "crash":
            line += crash_block(e)
        self._add(e.host, line)

    def counts(self) -> dict[str, int]:
        return {"output_dropped": self.trouble.dropped}

    def reopen(self) -> None:
        """SIGHUP: close every file; the next line for a host opens its file by name again
        (after logrotate moved it away, a new one is created)."""
        self.close()

    def flush(self) -> None:
        for f in self.files.values():
            f.flush()

    def close(self) -> None:
        for f in self.files.values():
            f.flush()
            os.close(f.fd)
        self.files.clear()


def want_color(choice: str, fd: int) -> bool:
    """``--color auto|always|never``: auto means colour on a terminal unless ``NO_COLOR`` is
    set to anything but the empty string (https://no-color.org); ``FORCE_COLOR`` turns it on
    off a terminal too."""
    import os

    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return os.isatty(fd)


class HumanSink(SinkBase):
    """Standard output, one line per message, coloured by level when asked to (see
    :func:`want_color`). Each line starts with the local receive time, ``HH:MM:SS.mmm``."""

    def __init__(self, out: FdWriter, *, color: bool | None = None) -> None:
        self.out = out
        if color is None:
            color = want_color("auto", out.fd)
        self.paint = self._painters(color)
        self.clock = LocalTime()

    def counts(self) -> dict[str, int]:
        return {"output_dropped": self.out.dropped}

    @staticmethod
    def _painters(color: bool) -> list[Callable[[str], str]]:
        """One function per level (and one for events) wrapping text in its colour. rich
        renders the SGR codes for the terminal's colour system; the text itself is never parsed
        for markup."""
        import sys

        plain: list[Callable[[str], str]] = [str] * 9
        if not color:
            return plain
        from rich.color import ColorSystem
        from rich.console import Console
        from rich.style import Style

        console = Console(file=sys.stdout, force_terminal=color)
        systems = {
            "standard": ColorSystem.STANDARD,
            "256": ColorSystem.EIGHT_BIT,
            "truecolor": ColorSystem.TRUECOLOR,
            "windows": ColorSystem.WINDOWS,
        }
        system = systems.get(console.color_system or "")
        if system is None:
            return plain
        specs = (
            "bold white on red", "bold red", "bold red", "red", "yellow", "bold", "", "dim",
            "cyan",
        )  # fmt: skip
        out: list[Callable[[str], str]] = []
        for spec in specs:
            style = Style.parse(spec) if spec else None
            if style is None:
                out.append(str)
            else:
                out.append(functools.partial(_render, style, system))
        return out

    def message(self, m: Message) -> None:
        head, text, tail = format_message(m)
        level = 6 if m.level is None else m.level
        line = f"{self.clock(m.received)} {head}{text}{tail}"
        self.out.write(self.paint[level](line).encode() + b"\n")

    def event(self, e: Event) -> None:
        line = f"{self.clock(e.received)} {format_event(e, dates=local_iso)}"
        if e.type == "crash":
            # the whole report again, as one highlighted block
            block = line + "\n" + crash_block(e)
            self.out.write(
                "".join(self.paint[0](x) + "\n" for x in block.splitlines()).encode()
            )
            return
        self.out.write(self.paint[8](line).encode() + b"\n")

    def flush(self) -> None:
        self.out.flush()

    @property
    def broken(self) -> bool:
        return self.out.broken

    def close(self) -> None:
        self.out.flush()

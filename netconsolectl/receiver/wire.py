"""The netconsole wire format: one UDP payload in, a parsed record or fragment out.

Two formats reach a receiver (``drivers/net/netconsole.c``):

* **basic**: the console text of a printk record, at most 1000 bytes per datagram, no metadata;
  a longer record arrives as consecutive 1000-byte pieces with no header.
* **extended** (``/dev/kmsg`` format, ``info_print_ext_header``/``msg_print_ext_body`` in
  ``kernel/printk/printk.c``): ``[release,]prio,seq,ts_usec,flag[,k=v...][,ncfrag=off/total];``
  then the text (bytes < 0x20, >= 0x7f and ``\\`` escaped as ``\\xHH``) ending with a newline,
  then ``" KEY=VALUE\\n"`` lines: the printk dictionary (SUBSYSTEM, DEVICE), netconsole userdata
  and sysdata (cpu, taskname, release, msgid).

A message whose extended form does not fit in 1000 bytes is split: every piece repeats the header
and adds ``ncfrag=<offset>/<total>``, where both count bytes of the body only (text plus key/value
lines), never the header or the release prefix.

Nothing here raises on any input: :func:`parse_datagram` returns :class:`Malformed` instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Largest ncfrag total accepted. The kernel's formatted record is at most 8 KiB (2 KiB since
#: about 6.2) plus up to 256 userdata entries of 256 bytes and the sysdata lines, so 1 MiB leaves
#: a wide margin while keeping one hostile header from reserving unbounded memory.
MAX_FRAGMENTED_TOTAL = 1 << 20
#: seq and ts_usec are u64 in the kernel (``struct printk_info``); a fragment's are taken up to
#: this value only (a message of one datagram with a larger number is kept as text).
MAX_U64 = (1 << 64) - 1
#: Why a fragment header is unusable (counted as ``fragment_errors`` on top of ``malformed``).
FRAGMENT_HEADER_ERRORS = frozenset(
    ("bad ncfrag", "ncfrag offset outside total", "ncfrag total too large", "empty fragment",
     "fragment number out of range")
)  # fmt: skip
#: A fragment whose body goes past the total it announces (``fragment_overruns``).
FRAGMENT_OVERRUN = "fragment past ncfrag total"
#: Longest header accepted (release <= 64 bytes, a handful of numbers and k=v items).
MAX_HEADER = 512
#: ``struct new_utsname.release`` is 65 bytes including the NUL.
MAX_RELEASE = 64

_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})")
_DIGITS = frozenset(b"0123456789")
#: What a kernel release string may contain here: printable ASCII except space, ',' and ';'.
_RELEASE_CHARS = bytes(c for c in range(0x21, 0x7F) if c not in b",;")


def unescape(raw: bytes) -> bytes:
    """Decode the kernel's ``\\xHH`` escapes; anything else is kept as it is."""
    if b"\\" not in raw:
        return raw
    return _ESCAPE.sub(lambda m: bytes((int(m[1], 16),)), raw)


def decode_text(raw: bytes) -> str:
    """Bytes from the network to text: UTF-8, an invalid byte becomes U+FFFD."""
    return raw.decode("utf-8", "replace")


def decode_raw(raw: bytes) -> tuple[str, bytes | None]:
    """Message text: ``(text, None)`` for valid UTF-8, else the text with U+FFFD for each
    invalid byte and the bytes themselves, so outputs can stay lossless and unambiguous (a
    replacement character, or a literal ``\\xff`` in the text, is then never taken for a
    byte that was not UTF-8)."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace"), raw


@dataclass(slots=True)
class Header:
    """The extended header of one datagram."""

    release: str | None
    prio: int
    seq: int
    ts_usec: int
    cont: bool
    #: ``(offset, total)`` for a fragment, else None.
    frag: tuple[int, int] | None = None
    #: Other ``k=v`` items of the header (``caller=T123`` with CONFIG_PRINTK_CALLER), or None.
    extra: dict[str, str] | None = None

    @property
    def facility(self) -> int:
        return self.prio >> 3

    @property
    def level(self) -> int:
        return self.prio & 7


@dataclass(slots=True)
class Extended:
    """An extended datagram: header plus body bytes (the whole body unless ``header.frag``)."""

    header: Header
    body: bytes


@dataclass(slots=True)
class Plain:
    """A basic-format datagram: console text without metadata."""

    data: bytes


@dataclass(slots=True)
class Malformed:
    """A datagram that cannot be used; ``reason`` says why."""

    reason: str
    data: bytes


Parsed = Extended | Plain | Malformed


def _is_uint(b: bytes) -> bool:
    # bytes.isdigit() is ASCII-only, which is what we want; bound the length so int() stays cheap.
    return 0 < len(b) <= 20 and b.isdigit()


def parse_header(raw: bytes) -> Header | str | None:
    """Parse what precedes the first ``;``.

    Returns the header, None when this is not an extended header at all (so the datagram is
    basic-format text), or a reason string when it is an extended header with invalid items.
    """
    parts = raw.split(b",")
    n = len(parts)
    if n >= 4 and _is_uint(parts[0]) and len(parts[3]) == 1 and parts[3][0] not in _DIGITS:
        release = None
        i = 0
    elif (
        n >= 5
        and 0 < len(parts[0]) <= MAX_RELEASE
        and _is_uint(parts[1])
        and len(parts[4]) == 1
        and parts[4][0] not in _DIGITS
        and not parts[0].translate(None, _RELEASE_CHARS)
    ):
        release = parts[0].decode("ascii")
        i = 1
    else:
        return None
    if not (_is_uint(parts[i + 1]) and _is_uint(parts[i + 2])):
        return None
    prio = int(parts[i])
    flag = parts[i + 3]
    header = Header(release, prio, int(parts[i + 1]), int(parts[i + 2]), flag == b"c")
    for item in parts[i + 4 :]:
        key, eq, value = item.partition(b"=")
        if key == b"ncfrag":
            off, slash, total = value.partition(b"/")
            if not (slash and _is_uint(off) and _is_uint(total)):
                return "bad ncfrag"
            o, t = int(off), int(total)
            if t == 0 or o >= t:
                return "ncfrag offset outside total"
            if t > MAX_FRAGMENTED_TOTAL:
                return "ncfrag total too large"
            header.frag = (o, t)
        elif eq and key:
            if header.extra is None:
                header.extra = {}
            header.extra[decode_text(key)] = decode_text(value)
    return header


# The two shapes the fast paths take without the general parser, in the terms of the grammar
# above (the C loop, _fastjson.c, is the compiled form of the same two; the differential test
# of tests/unit/test_receiver_output.py holds them to parse_datagram).
_NUM = rb"(0|[1-9][0-9]{0,19})"
#: A release copied as it is: _RELEASE_CHARS less '"' and backslash (JSON would escape them).
_FAST_RELEASE = rb'(?:([!#-+\--:<-\[\]-~]{1,%d}),)?' % MAX_RELEASE
#: [release,]prio,seq,ts_usec,flag;text\n with text of printable ASCII minus '"' and '\'.
COMMON = re.compile(
    _FAST_RELEASE + rb"([0-9]{1,3})," + _NUM + b"," + _NUM + rb",([-c]);([ !#-\[\]-~]*)\n"
)
#: prio,seq,ts_usec,flag,ncfrag=off/total; (numbers as parse_header accepts them)
FRAGMENT = re.compile(
    rb"([0-9]{1,20}),([0-9]{1,20}),([0-9]{1,20}),([-c]),ncfrag=([0-9]{1,20})/([0-9]{1,20});"
)


def parse_datagram(data: bytes) -> Parsed:
    """Classify and parse one UDP payload. Never raises."""
    if not data:
        return Malformed("empty datagram", data)
    semi = data.find(b";", 0, MAX_HEADER + 1)
    if semi > 0:
        header = parse_header(data[:semi])
        if isinstance(header, Header):
            body = data[semi + 1 :]
            if header.frag is not None:
                off, total = header.frag
                if not body:
                    return Malformed("empty fragment", data)
                if off + len(body) > total:
                    return Malformed(FRAGMENT_OVERRUN, data)
                if header.seq > MAX_U64 or header.ts_usec > MAX_U64:
                    return Malformed("fragment number out of range", data)
            return Extended(header, body)
        if isinstance(header, str):
            return Malformed(header, data)
    return Plain(data)


def parse_body(body: bytes) -> tuple[str, dict[str, str], bytes | None]:
    """Split an extended body into the message text and its ``KEY=VALUE`` lines.

    The text is unescaped and decoded (see :func:`decode_raw`: the third item is the text's
    bytes when they are not valid UTF-8, else None); keys and values are decoded with U+FFFD.
    Dictionary, userdata and sysdata lines start with one space; a later line without it (which
    the kernel never sends) is kept in the text so nothing received is silently dropped. When a
    user key has a sysdata name (``msgid`` ...), the kernel's value keeps the name and the
    user's becomes ``userdata.<name>``.
    """
    nl = body.find(b"\n")
    if nl < 0:
        decoded, raw = decode_raw(unescape(body))
        return decoded, {}, raw
    text = body[:nl]
    rest = body[nl + 1 :]
    fields: dict[str, str] = {}
    if rest:
        extra_text: list[bytes] = []
        for line in rest.split(b"\n"):
            if not line:
                continue
            if line[0] == 0x20:
                key, eq, value = line[1:].partition(b"=")
                if eq and key:
                    k = decode_text(unescape(key))
                    if k in fields:
                        # A key seen twice: the kernel writes userdata lines first and its
                        # sysdata lines (cpu, taskname, release, msgid) last, so a user key of
                        # a sysdata name comes first. Both are kept: the kernel's under the
                        # plain name (loss is counted on its msgid), the user's renamed.
                        fields[f"userdata.{k}"] = fields.pop(k)
                    fields[k] = decode_text(unescape(value))
                    continue
            extra_text.append(line)
        if extra_text:
            text = b"\n".join([text, *extra_text])
    decoded, raw = decode_raw(unescape(text))
    return decoded, fields, raw


def parse_plain(data: bytes) -> tuple[str, bytes | None]:
    """Basic-format text, one trailing newline removed: ``(text, raw)`` as :func:`decode_raw`."""
    if data.endswith(b"\n"):
        data = data[:-1]
    return decode_raw(data)

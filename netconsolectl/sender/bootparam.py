"""The ``netconsole=`` boot/module parameter: parse it as the kernel does, and produce it.

Format (Documentation/networking/netconsole.rst)::

    netconsole=[+][r][src-port]@[src-ip]/[<dev>],[tgt-port]@<tgt-ip>/[tgt-macaddr][;...]

The parser reproduces the kernel's own rules rather than a tidier grammar, so that what it
accepts, rejects and counts is what a booting kernel would:

* drivers/net/netconsole.c ``init_netconsole``: the value is split with ``strsep(";")``; every
  piece, even an empty one, is parsed; with CONFIG_NETCONSOLE_DYNAMIC a piece that fails is
  skipped and the next one that parses gets the next ``cmdline<N>`` index (6.10+), while a
  target that parses but whose netpoll setup fails keeps its index, disabled (6.12+).
* ``alloc_param_target``: a leading ``+`` selects the extended format; an ``r`` right after it
  prepends the release and is refused without ``+`` ("Release feature requires extended log
  message").
* net/core/netpoll.c ``netpoll_parse_options``: the fields are cut at the *first* ``@``, ``/``,
  ``,``, ``@`` and ``/`` in turn; ports go through ``kstrtou16`` (decimal, an optional ``+``);
  addresses through ``in4_pton``/``in6_pton`` (see :func:`kernel_ip`); a local and remote
  address of different families fail; a space or tab before the remote port is warned about
  and then fails; the MAC goes through ``mac_pton``, which reads 17 characters and ignores the
  rest. On failure the kernel logs ``couldn't parse config at '<rest>'!`` where ``<rest>`` is
  the field being parsed (cut at its delimiter) or, when the delimiter is missing, everything
  left.
* Per kernel (:class:`~netconsolectl.sender.kernel.Kernel`, ``kernel=`` below): before 6.6
  there is no ``r`` flag, so ``+r...`` fails as a bad source port; before 6.10 one piece that
  fails to parse makes ``init_netconsole`` give up and the module load fails (errno EPERM from
  ``netpoll_parse_options``' ``return -1``, as Debian's 6.1 shows: "could not insert
  'netconsole': Operation not permitted"), so no target at all is created; a ``<dev>`` with
  ``:`` is a MAC address only from 6.15, before it is an interface name that cannot exist.
* The value lives in ``static char config[MAX_PARAM_LENGTH]`` (256 bytes with the NUL): built
  in, ``netconsole=`` is copied with ``strscpy`` and silently truncated to 255 bytes; as a
  module parameter a longer value is refused (``param_set_copystring``: "string doesn't fit").
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from netconsolectl.errors import InvalidInput
from netconsolectl.facts import (
    BROADCAST_MAC,
    DEFAULT_LOCAL_PORT,
    DEFAULT_REMOTE_PORT,
    IFNAMSIZ,
    is_set,
)

if TYPE_CHECKING:
    from netconsolectl.sender.kernel import Kernel
    from netconsolectl.sender.spec import IPAddress, TargetSpec
    from netconsolectl.sender.target import TargetState

MAX_PARAM_LENGTH = 256  # drivers/net/netconsole.c, including the terminating NUL
MAX_VALUE_BYTES = MAX_PARAM_LENGTH - 1
DEFAULT_DEV = "eth0"  # alloc_and_init()

_DIGITS = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")

RELEASE_ERROR = "Netconsole configuration error. Release feature requires extended log message"
WHITESPACE_WARNING = "warning: whitespace is not allowed"


# -- the kernel's primitive parsers -----------------------------------------------------------


def kstrtou16(text: str) -> int | None:
    """lib/kstrtox.c with base 10: ``[+]digits[\\n]``, at most 65535; None when refused."""
    s = text[1:] if text.startswith("+") else text
    if s.endswith("\n"):
        s = s[:-1]
    if not s or any(c not in _DIGITS for c in s):
        return None
    value = int(s)
    return value if value <= 0xFFFF else None


def _ipv4(text: str) -> ipaddress.IPv4Address | None:
    """``in4_pton`` over a whole string: four dot-separated decimal numbers up to 255.

    Leading zeros are allowed (``010`` is ten), unlike Python's ``ipaddress``.
    """
    parts = text.split(".")
    if len(parts) != 4:
        return None
    octets = []
    for p in parts:
        if not p or any(c not in _DIGITS for c in p):
            return None
        n = int(p)
        if n > 255:
            return None
        octets.append(n)
    return ipaddress.IPv4Address(bytes(octets))


def _hextets(part: str, *, v4_tail: bool) -> list[int] | None:
    if not part:
        return []
    items = part.split(":")
    words: list[int] = []
    for i, item in enumerate(items):
        if v4_tail and i == len(items) - 1 and "." in item:
            v4 = _ipv4(item)
            if v4 is None:
                return None
            b = v4.packed
            words += [b[0] << 8 | b[1], b[2] << 8 | b[3]]
            continue
        if not item or any(c not in _HEX for c in item):
            return None
        value = int(item, 16)
        if value > 0xFFFF:
            return None
        words.append(value)
    return words


def _ipv6(text: str) -> ipaddress.IPv6Address | None:
    """``in6_pton`` over a whole string.

    The RFC 4291 text forms: eight groups, or fewer with one ``::`` standing for at least one
    zero group, the last two groups optionally written as a dotted IPv4 address. Where the
    kernel is looser than Python's ``ipaddress``: a group may have any number of leading
    zeros as long as its value fits 16 bits, and the dotted tail takes leading zeros. No zone
    index (``%eth0``): any other character ends the address and fails the parse.
    """
    head, sep, tail = text.partition("::")
    if sep:
        if "::" in tail:
            return None
        left = _hextets(head, v4_tail=False)
        right = _hextets(tail, v4_tail=True)
        if left is None or right is None or len(left) + len(right) > 7:
            return None
        words = left + [0] * (8 - len(left) - len(right)) + right
    else:
        parsed = _hextets(text, v4_tail=True)
        if parsed is None or len(parsed) != 8:
            return None
        words = parsed
    return ipaddress.IPv6Address(b"".join(w.to_bytes(2, "big") for w in words))


def kernel_ip(text: str) -> IPAddress | None:
    """net/core/netpoll.c ``netpoll_parse_ip_addr``: IPv4 unless the text has a ``:``."""
    if ":" not in text:
        v4 = _ipv4(text)
        if v4 is not None:
            return v4
    return _ipv6(text)


def mac_pton(text: str) -> str | None:
    """lib/net_utils.c ``mac_pton``: six hex pairs joined by ``:`` in the first 17 characters.

    What follows the 17th character is not looked at. Returns the MAC in lowercase.
    """
    if len(text) < 17:
        return None
    body = text[:17]
    for i in range(6):
        pair = body[3 * i: 3 * i + 2]
        if len(pair) != 2 or any(c not in _HEX for c in pair):
            return None
        if i < 5 and body[3 * i + 2] != ":":
            return None
    return body.lower()


# -- one target -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BootTarget:
    """One target of the parameter, with the values the kernel ends up with."""

    remote_ip: IPAddress
    local_ip: IPAddress | None = None  # None: detected from the device at setup
    local_port: int = DEFAULT_LOCAL_PORT
    remote_port: int = DEFAULT_REMOTE_PORT
    dev_name: str = DEFAULT_DEV  # "" when the device is chosen by MAC
    dev_mac: str | None = None  # 6.15+: <dev> written as a MAC address
    remote_mac: str = BROADCAST_MAC
    extended: bool = False
    release: bool = False

    @property
    def ipv6(self) -> bool:
        return self.remote_ip.version == 6

    def to_json(self) -> dict[str, object]:
        return {
            "extended": self.extended, "release": self.release, "local_port": self.local_port,
            "local_ip": None if self.local_ip is None else str(self.local_ip),
            "dev_name": self.dev_name or None, "dev_mac": self.dev_mac,
            "remote_port": self.remote_port, "remote_ip": str(self.remote_ip),
            "remote_mac": self.remote_mac,
        }


class ParseError(InvalidInput):
    """A piece of the parameter the kernel would refuse, with the kernel's own message."""

    def __init__(self, message: str, *, rest: str | None = None, hint: str | None = None
                 ) -> None:
        super().__init__(message, hint=hint)
        self.rest = rest


@dataclass(frozen=True)
class Field:
    """One field as written, and what the kernel makes of it."""

    name: str
    text: str
    meaning: str


@dataclass
class Entry:
    """One ``;``-separated piece: its target (or the kernel's error) and the fields seen."""

    text: str
    target: BootTarget | None = None
    error: str | None = None
    index: int | None = None  # N of cmdline<N> when it parsed
    fields: list[Field] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what the kernel logs; our cautions

    @property
    def name(self) -> str | None:
        return None if self.index is None else f"cmdline{self.index}"


def _fail(rest: str) -> ParseError:
    return ParseError(f"couldn't parse config at '{rest}'!", rest=rest)


def parse_target(text: str, *, dev_mac: bool = True, release: bool = True) -> Entry:
    """Parse one piece the way ``alloc_param_target`` + ``netpoll_parse_options`` do.

    ``dev_mac``: treat a ``<dev>`` containing ``:`` as a MAC address (Linux 6.15+); older
    kernels copy it as an interface name, which then cannot exist.
    """
    entry = Entry(text=text)
    try:
        entry.target = _parse(text, entry, dev_mac=dev_mac, release_flag=release)
    except ParseError as e:
        entry.error = e.message
        entry.target = None
    return entry


def _parse(text: str, entry: Entry, *, dev_mac: bool, release_flag: bool = True) -> BootTarget:
    # [+][r][src-port]@[src-ip]/[<dev>],[tgt-port]@<tgt-ip>/[tgt-macaddr], field by field in
    # the kernel's order (alloc_param_target, then netpoll_parse_options).
    cur = _Cursor(text)
    extended, release = _flags(cur, entry, release_flag)
    local_port = _port(cur.field("@"), entry, "src-port", "local", DEFAULT_LOCAL_PORT)
    local_ip = _src_ip(cur.field("/"), entry)
    dev_name, mac_of_dev = _dev(cur.field(","), entry, dev_mac)
    tgt_port = cur.field("@")
    if tgt_port is not None and tgt_port[:1] in (" ", "\t"):
        entry.warnings.append(WHITESPACE_WARNING)
    remote_port = _port(tgt_port, entry, "tgt-port", "collector", DEFAULT_REMOTE_PORT)
    remote_ip = _tgt_ip(cur, entry, local_ip)
    return BootTarget(
        remote_ip=remote_ip, local_ip=local_ip, local_port=local_port, remote_port=remote_port,
        dev_name=dev_name, dev_mac=mac_of_dev, remote_mac=_tgt_mac(cur.rest, entry),
        extended=extended, release=release,
    )


@dataclass
class _Cursor:
    """What is left of one target's text while its fields are taken off the front."""

    rest: str

    def field(self, sep: str) -> str | None:
        """The text up to ``sep`` (None when empty), taken with its separator.

        The kernel finds each separator with strchr and fails on the rest when it is missing.
        """
        if self.rest.startswith(sep):
            self.rest = self.rest[1:]
            return None
        at = self.rest.find(sep)
        if at < 0:
            raise _fail(self.rest)
        text, self.rest = self.rest[:at], self.rest[at + 1:]
        return text


def _flags(cur: _Cursor, entry: Entry, release_flag: bool) -> tuple[bool, bool]:
    extended = release = False
    if cur.rest.startswith("+"):
        extended = True
        cur.rest = cur.rest[1:]
        entry.fields.append(Field("+", "+", "extended format"))
    if release_flag and cur.rest.startswith("r"):  # alloc_param_target, 6.6+
        if not extended:
            raise ParseError(RELEASE_ERROR, hint="write '+r', not 'r' alone or 'r+'")
        release = True
        cur.rest = cur.rest[1:]
        entry.fields.append(Field("r", "r", "kernel release prepended to each message"))
    return extended, release


def _port(text: str | None, entry: Entry, name: str, side: str, default: int) -> int:
    if text is None:
        entry.fields.append(Field(name, "", f"{side} UDP port {default} (default)"))
        return default
    port = kstrtou16(text)
    if port is None:
        raise _fail(text)
    entry.fields.append(Field(name, text, f"{side} UDP port {port}"))
    return port


def _src_ip(text: str | None, entry: Entry) -> IPAddress | None:
    if text is None:
        entry.fields.append(Field("src-ip", "", "source address: the device's, found at setup"))
        return None
    local_ip = kernel_ip(text)
    if local_ip is None:
        raise _fail(text)
    entry.fields.append(Field("src-ip", text, f"source address {local_ip} "
                              f"(IPv{local_ip.version})"))
    return local_ip


def _dev(text: str | None, entry: Entry, dev_mac: bool) -> tuple[str, str | None]:
    """The device name (or "" with its MAC, 6.15+) of the ``<dev>`` field."""
    if text is None:
        entry.fields.append(Field("dev", "", f"device {DEFAULT_DEV} (default)"))
        return DEFAULT_DEV, None
    if dev_mac and ":" in text:
        mac = mac_pton(text)
        if mac is None:
            raise _fail(text)
        entry.fields.append(Field("dev", text, f"the Ethernet device with MAC {mac} "
                                  "(Linux 6.15+)"))
        return "", mac
    dev_name = text
    raw = text.encode("utf-8", "surrogateescape")
    if len(raw) >= IFNAMSIZ:
        dev_name = raw[: IFNAMSIZ - 1].decode("utf-8", "ignore")
        entry.warnings.append(
            f"device name {text!r} is {len(raw)} bytes; the kernel keeps the first "
            f"{IFNAMSIZ - 1}: {dev_name!r}"
        )
    entry.fields.append(Field("dev", text, f"device {dev_name}"))
    return dev_name, None


def _tgt_ip(cur: _Cursor, entry: Entry, local_ip: IPAddress | None) -> IPAddress:
    slash = cur.rest.find("/")
    if slash < 0:
        raise ParseError(
            f"couldn't parse config at '{cur.rest}'!", rest=cur.rest,
            hint="the collector address is required and must end with '/'",
        )
    text = cur.rest[:slash]
    remote_ip = kernel_ip(text)
    if remote_ip is None:
        raise _fail(text)
    if local_ip is not None and local_ip.version != remote_ip.version:
        raise ParseError(
            f"couldn't parse config at '{text}'!", rest=text,
            hint=f"the source {local_ip} and the collector {remote_ip} are of different "
            "address families",
        )
    entry.fields.append(Field("tgt-ip", text, f"collector {remote_ip} (IPv{remote_ip.version})"))
    cur.rest = cur.rest[slash + 1:]
    return remote_ip


def _tgt_mac(text: str, entry: Entry) -> str:
    if not text:
        entry.fields.append(Field("tgt-macaddr", "", f"broadcast {BROADCAST_MAC} (default)"))
        return BROADCAST_MAC
    mac = mac_pton(text)
    if mac is None:
        raise _fail(text)
    if len(text) > 17:
        entry.warnings.append(f"the kernel ignores what follows the MAC address: {text[17:]!r}")
    entry.fields.append(Field("tgt-macaddr", text, f"next-hop MAC {mac}"))
    return mac


# -- the whole parameter ----------------------------------------------------------------------


@dataclass
class ParamReport:
    """A whole value: its pieces, and whether it fits the kernel's buffer."""

    value: str
    entries: list[Entry]
    truncated: str | None = None  # what a built-in kernel keeps when the value is too long
    #: before 6.10 one piece that fails makes the whole module fail: nothing is created
    all_or_nothing: bool = False
    kernel: str | None = None  # the release the rules were taken from (None: the newest)

    @property
    def aborted(self) -> bool:
        return self.all_or_nothing and any(e.target is None for e in self.entries)

    @property
    def size(self) -> int:
        return len(self.value.encode("utf-8", "surrogateescape"))

    @property
    def too_long(self) -> bool:
        return self.size > MAX_VALUE_BYTES

    @property
    def ok(self) -> bool:
        return not self.too_long and all(e.target is not None for e in self.entries)

    @property
    def targets(self) -> list[BootTarget]:
        if self.aborted:
            return []
        return [e.target for e in self.entries if e.target is not None]


def strip_param(text: str) -> str:
    """Accept ``netconsole=V``, ``netconsole.netconsole=V`` or ``V``, quoted or not."""
    s = text.strip()
    for prefix in ("netconsole.netconsole=", "netconsole="):
        if s.startswith(prefix):
            s = s[len(prefix):]
            break
    if len(s) >= 2 and s[0] == s[-1] == '"':
        s = s[1:-1]
    return s


def parse_param(value: str, *, dev_mac: bool = True, kernel: Kernel | None = None
                ) -> ParamReport:
    """Parse a whole value as a built-in kernel would (too-long values are cut at 255 bytes).

    ``kernel``: follow that kernel's rules (see the module docstring); None: the newest's.
    """
    release_flag = True
    all_or_nothing = False
    if kernel is not None:
        dev_mac = kernel.bootparam_dev_as_mac
        release_flag = kernel.release_attr
        all_or_nothing = not kernel.bootparam_skips_bad_entry
    raw = value.encode("utf-8", "surrogateescape")
    truncated = None
    text = value
    if len(raw) > MAX_VALUE_BYTES:
        text = raw[:MAX_VALUE_BYTES].decode("utf-8", "surrogateescape")
        truncated = text
    entries: list[Entry] = []
    if text:  # init_netconsole: nothing at all when strnlen(config) == 0
        count = 0
        for piece in text.split(";"):
            entry = parse_target(piece, dev_mac=dev_mac, release=release_flag)
            if entry.target is not None:
                entry.index = count
                count += 1
            entries.append(entry)
    report = ParamReport(value=value, entries=entries, truncated=truncated,
                         all_or_nothing=all_or_nothing,
                         kernel=kernel.release if kernel is not None else None)
    if report.aborted:
        for e in entries:
            e.index = None
    return report


def count_parsed(value: str, *, module: bool = False, dev_mac: bool = True,
                 kernel: Kernel | None = None) -> int:
    """How many ``cmdline<N>`` targets the kernel creates from a ``netconsole=`` value.

    Only pieces that parse take an index. Built in, a value over 255 bytes is truncated
    first; as a module parameter (``module=True``) it is refused and nothing is created.
    """
    if module and len(value.encode("utf-8", "surrogateescape")) > MAX_VALUE_BYTES:
        return 0
    return len(parse_param(value, dev_mac=dev_mac, kernel=kernel).targets)


# -- producing the parameter ------------------------------------------------------------------

# ',' ends the device field and ';' the target; '/' and ':' cannot be in interface names;
# blanks and quotes do not survive the kernel command line.
_FORBIDDEN_IN_DEV = frozenset(',;/" \t')


def format_target(t: BootTarget, *, compact: bool = False, kernel: Kernel | None = None
                  ) -> str:
    """One target as the kernel parses it back; ``compact`` leaves out the kernel defaults.

    ``kernel``: refuse what that kernel's parser does not know (``r`` before 6.6, a device
    MAC before 6.15), naming the version.
    """
    if t.release and not t.extended:
        raise InvalidInput("release needs the extended format ('+r')")
    if kernel is not None:
        from netconsolectl.sender import kernel as kfeat

        if t.release and not kernel.release_attr:
            raise InvalidInput(kernel.lacks("the release flag 'r'", kfeat.RELEASE),
                               hint="drop release from the boot target")
        if t.dev_mac and not kernel.bootparam_dev_as_mac:
            raise InvalidInput(kernel.lacks("a device given by MAC", kfeat.BOOTPARAM_DEV_AS_MAC),
                               hint="give the interface name")
    if t.local_ip is not None and t.local_ip.version != t.remote_ip.version:
        raise InvalidInput(
            f"local address {t.local_ip} and remote address {t.remote_ip} are of different "
            "families"
        )
    dev = t.dev_mac if t.dev_mac else t.dev_name
    if not dev:
        raise InvalidInput("a boot target needs a device name or a device MAC")
    if t.dev_mac is None and (any(c in _FORBIDDEN_IN_DEV for c in dev) or ":" in dev):
        raise InvalidInput(
            f"interface name {dev!r} cannot be written in netconsole= (it contains one of "
            "the separators , ; / : or a quote or blank)",
            hint="rename the interface, or bind the boot target to its MAC address (6.15+)",
        )
    prefix = ("+" if t.extended else "") + ("r" if t.release else "")
    lport = "" if compact and t.local_port == DEFAULT_LOCAL_PORT else str(t.local_port)
    rport = "" if compact and t.remote_port == DEFAULT_REMOTE_PORT else str(t.remote_port)
    lip = "" if t.local_ip is None else str(t.local_ip)
    if compact and t.dev_mac is None and dev == DEFAULT_DEV:
        dev = ""
    mac = "" if t.remote_mac == BROADCAST_MAC else t.remote_mac
    return f"{prefix}{lport}@{lip}/{dev},{rport}@{t.remote_ip}/{mac}"


def format_param(targets: list[BootTarget], *, compact: bool | None = None,
                 kernel: Kernel | None = None) -> str:
    """Join targets with ``;``. ``compact=None``: explicit form if it fits, else compact.

    Raises InvalidInput when even the compact form exceeds the kernel's 255 bytes.
    """
    if not targets:
        raise InvalidInput("no targets to put in netconsole=")
    forms = [False, True] if compact is None else [compact]
    value = ""
    for c in forms:
        value = ";".join(format_target(t, compact=c, kernel=kernel) for t in targets)
        if len(value.encode()) <= MAX_VALUE_BYTES:
            return value
    raise InvalidInput(
        f"netconsole= would be {len(value.encode())} bytes; the kernel keeps at most "
        f"{MAX_VALUE_BYTES} (MAX_PARAM_LENGTH {MAX_PARAM_LENGTH} with the NUL)",
        hint="put fewer targets in the boot parameter; the rest can be added at runtime "
        "by `netconsolectl apply`",
    )


def _addr(text: str | None) -> IPAddress | None:
    if not is_set(text):
        return None
    found = kernel_ip(text)
    if found is None:
        raise InvalidInput(f"address {text!r} cannot be written in netconsole=")
    return found


def from_state(s: TargetState) -> BootTarget:
    """The boot target equivalent to a live target (userdata cannot be expressed)."""
    remote = _addr(s.remote_ip)
    if remote is None:
        raise InvalidInput(f"{s.name} has no remote IP; it cannot become a boot target")
    if not s.dev_name:
        raise InvalidInput(f"{s.name} has no device name; it cannot become a boot target")
    return BootTarget(
        remote_ip=remote,
        local_ip=_addr(s.local_ip),
        local_port=s.local_port if s.local_port is not None else DEFAULT_LOCAL_PORT,
        remote_port=s.remote_port if s.remote_port is not None else DEFAULT_REMOTE_PORT,
        dev_name=s.dev_name,
        remote_mac=(s.remote_mac or BROADCAST_MAC).lower(),
        extended=bool(s.extended),
        release=bool(s.release),
    )


def from_spec(name: str, spec: TargetSpec) -> BootTarget:
    """The boot target for a configured target (all of remote_ip and dev_name needed)."""
    if spec.remote_ip is None:
        raise InvalidInput(f"{name} has no remote_ip; it cannot become a boot target")
    if not spec.dev_name:
        raise InvalidInput(
            f"{name} has no dev_name; it cannot become a boot target",
            hint="give dev_name in the configuration (discovery happens at runtime only)",
        )
    t = BootTarget(
        remote_ip=spec.remote_ip,
        local_ip=spec.local_ip,
        local_port=spec.local_port if spec.local_port is not None else DEFAULT_LOCAL_PORT,
        remote_port=spec.remote_port if spec.remote_port is not None else DEFAULT_REMOTE_PORT,
        dev_name=spec.dev_name,
        remote_mac=spec.remote_mac or BROADCAST_MAC,
        extended=bool(spec.extended),
        release=bool(spec.release),
    )
    if t.release and not t.extended:
        t = replace(t, extended=True)
    return t

"""The configuration file: desired targets and options, read with the standard library.

TOML (the default, ``/etc/netconsolectl.toml``) or JSON (``export --format json``)::

    [options]
    console_loglevel = 8          # set /proc/sys/kernel/printk's first field on apply
    prune = false                 # remove live targets that are not listed (as --prune)
    absent = ["old-collector"]    # targets that must not exist (the only way to drop cmdlineN)
    arp_timeout = 0.8             # discovery, for targets that leave dev_name/local_ip/
    arp_retries = 3               # remote_mac out

    [targets.collector]           # the target's name under netconsole/ in configfs
    remote_ip = "192.0.2.1"       # the only required key
    remote_port = 6666
    dev_name = "eth0"
    local_ip = "192.0.2.10"
    local_port = 6665
    remote_mac = "52:54:00:12:34:56"
    extended = true
    release = false
    enabled = true
    sysdata = ["msgid"]  # kernel-added fields (6.15+, msgid 6.17+); the complete set

    [targets.collector.userdata]  # the complete set: live keys not listed are removed
    host = "web1"

Keys are the configfs attribute names, as in ``list --json``. The whole file is validated
before anything is written; messages name the file, the line (TOML) and the target.
"""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netconsolectl.discover.model import (
    DEFAULT_ARP_RETRIES,
    DEFAULT_ARP_TIMEOUT,
    MAX_ARP_RETRIES,
    MAX_ARP_TIMEOUT,
    MIN_ARP_TIMEOUT,
)
from netconsolectl.discover.names import is_host_name
from netconsolectl.errors import InvalidInput, NetconsoleError
from netconsolectl.facts import is_unset
from netconsolectl.sender.kernel import SYSDATA_NAMES
from netconsolectl.sender.spec import TargetSpec, validate_target_name

if TYPE_CHECKING:
    from netconsolectl.sender.target import TargetState

DEFAULT_PATH = Path("/etc/netconsolectl.toml")

EXPORT_HEADER = (
    "netconsolectl configuration: the live netconsole targets.\n"
    "Apply it with `netconsolectl apply FILE`; keys are the configfs attribute names."
)

TARGET_KEYS = (
    "remote_ip", "remote_port", "dev_name", "local_ip", "local_port", "remote_mac",
    "extended", "release", "enabled", "sysdata", "userdata",
)
OPTION_KEYS = ("console_loglevel", "prune", "absent", "arp_timeout", "arp_retries")


@dataclass(frozen=True)
class ConfigOptions:
    console_loglevel: int | None = None
    prune: bool = False
    absent: tuple[str, ...] = ()
    arp_timeout: float = DEFAULT_ARP_TIMEOUT
    arp_retries: int = DEFAULT_ARP_RETRIES


@dataclass(frozen=True)
class ConfigTarget:
    """One ``[targets.NAME]`` table: ``spec`` holds what the file says (None = not said)."""

    name: str
    spec: TargetSpec
    line: int | None = None
    # remote_ip given as a host name: spec.remote_ip is then None until resolve_targets looks
    # the name up (at every apply, IPv4 first), so a lookup failure stays with this target.
    remote_name: str | None = None


@dataclass(frozen=True)
class Config:
    targets: tuple[ConfigTarget, ...] = ()
    options: ConfigOptions = field(default_factory=ConfigOptions)
    source: str = "<config>"

    def names(self) -> list[str]:
        return [t.name for t in self.targets]

    def target(self, name: str) -> ConfigTarget | None:
        return next((t for t in self.targets if t.name == name), None)


# -- locating things in a TOML file for messages ----------------------------------------------

_HEADER_RE = re.compile(r"""^\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$""")


def _split_key(dotted: str) -> list[str]:
    """``targets."a.b".userdata`` -> ['targets', 'a.b', 'userdata'] (enough for headers)."""
    parts: list[str] = []
    for m in re.finditer(r'\s*(?:"((?:[^"\\]|\\.)*)"|\'([^\']*)\'|([A-Za-z0-9_-]+))\s*(?:\.|$)',
                         dotted):
        parts.append(next(g for g in m.groups() if g is not None))
    return parts


#: Targets one configuration may hold. The kernel sets no limit, but it sends every message
#: once per enabled target, synchronously from the console path (under the console lock), so
#: thousands of targets stall every printk; a file with more is a mistake (a generated list).
MAX_TARGETS = 1024


class _Lines:
    """Line numbers of table headers and keys, found by a light scan of the text.

    Indexed once, so that finding the line of each of many targets stays linear in the file
    (a scan per target made a 200,000-target file take minutes).
    """

    def __init__(self, text: str | None) -> None:
        self._tables: dict[tuple[str, ...], int] = {}  # header path, or key path prefix
        self._keys: dict[tuple[tuple[str, ...], str], int] = {}  # (section, key)
        self._headers: dict[tuple[str, ...], int] = {}
        if text is None:
            return
        section: list[str] = []
        for n, line in enumerate(text.splitlines(), 1):
            m = _HEADER_RE.match(line)
            if m and not line.lstrip().startswith("[["):
                section = _split_key(m.group(1))
                self._headers.setdefault(tuple(section), n)
                continue
            k = re.match(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.-]+)\s*=""", line)
            if k:
                path = _split_key(k.group(1))
                sec = tuple(section + path[:-1])
                self._keys.setdefault((sec, path[-1] if path else ""), n)
                full = (*sec, path[-1] if path else "")
                for i in range(1, len(full) + 1):  # a dotted key or inline table defines it
                    self._tables.setdefault(full[:i], n)

    def of_table(self, *path: str) -> int | None:
        return self._headers.get(path, self._tables.get(path))

    def of_key(self, table: tuple[str, ...], key: str) -> int | None:
        found = self._keys.get((table, key))
        return found if found is not None else self.of_table(*table)


# -- reading ----------------------------------------------------------------------------------


def _where(source: str, line: int | None) -> str:
    return f"{source}:{line}" if line else source


def _bad(source: str, line: int | None, msg: str, hint: str | None = None) -> InvalidInput:
    return InvalidInput(f"{_where(source, line)}: {msg}", hint=hint)


def _target(source: str, lines: _Lines, name: str, data: object) -> ConfigTarget:
    line = lines.of_table("targets", name)
    label = f"target {name!r}"
    try:
        validate_target_name(name)
    except InvalidInput as e:
        raise _bad(source, line, e.message) from None
    if not isinstance(data, dict):
        raise _bad(source, line, f"{label} must be a table of settings")
    _check_keys(source, lines, name, data)
    remote_name = None
    if isinstance(data["remote_ip"], str) and is_host_name(data["remote_ip"]):
        remote_name = data["remote_ip"].strip()
        data = {k: v for k, v in data.items() if k != "remote_ip"}
    _check_values(source, lines, name, data)
    try:
        spec = TargetSpec.from_dict(data)
    except InvalidInput as e:
        raise _bad(source, line, f"{label}: {e.message}", e.hint) from None
    if spec.release and spec.extended is False:
        raise _bad(source, line, f"{label}: release = true needs extended = true",
                   hint="the kernel refuses to enable release without the extended format")
    if spec.release and spec.extended is None:
        spec = replace(spec, extended=True)  # as `add --release` does
    return ConfigTarget(name=name, spec=spec, line=line, remote_name=remote_name)


def _check_keys(source: str, lines: _Lines, name: str, data: dict[str, Any]) -> None:
    """The keys of one target table and the TOML type of each value."""
    label = f"target {name!r}"
    unknown = [k for k in data if k not in TARGET_KEYS]
    if unknown:
        raise _bad(
            source, lines.of_key(("targets", name), unknown[0]),
            f"{label}: unknown key {unknown[0]!r}",
            hint="keys are the configfs attribute names: " + ", ".join(TARGET_KEYS),
        )
    if "remote_ip" not in data:
        raise _bad(source, lines.of_table("targets", name), f"{label}: remote_ip is required")
    for key in ("remote_ip", "local_ip", "dev_name", "remote_mac"):
        if key in data and not isinstance(data[key], str):
            raise _bad(source, lines.of_key(("targets", name), key),
                       f"{label}: {key} must be a string")
    for key in ("remote_port", "local_port"):
        if key in data and (isinstance(data[key], bool) or not isinstance(data[key], int)):
            raise _bad(source, lines.of_key(("targets", name), key),
                       f"{label}: {key} must be an integer")
    _check_userdata(source, lines, name, data.get("userdata", {}))


def _check_userdata(source: str, lines: _Lines, name: str, userdata: object) -> None:
    label = f"target {name!r}"
    if not isinstance(userdata, dict):
        raise _bad(source, lines.of_key(("targets", name), "userdata"),
                   f"{label}: userdata must be a table of KEY = \"VALUE\"")
    for k, v in userdata.items():
        if not isinstance(v, str):
            raise _bad(source, lines.of_key(("targets", name, "userdata"), k),
                       f"{label}: userdata {k!r} must be a string")
        if v == "":
            raise _bad(source, lines.of_key(("targets", name, "userdata"), k),
                       f"{label}: userdata {k!r} is empty (the kernel sends no empty value)",
                       hint="leave the key out: the userdata table is the complete set")


def _check_values(source: str, lines: _Lines, name: str, data: dict[str, Any]) -> None:
    """Validate key by key first, so a message can point at the line of the bad value."""
    for key, value in data.items():
        try:
            TargetSpec.from_dict({key: value})
        except InvalidInput as e:
            table: tuple[str, ...] = ("targets", name)
            at = lines.of_key(table, key)
            if key == "userdata" and isinstance(value, dict):
                for uk, uv in value.items():
                    try:
                        TargetSpec.from_dict({"userdata": {uk: uv}})
                    except InvalidInput:
                        at = lines.of_key(("targets", name, "userdata"), uk)
                        break
            raise _bad(source, at, f"target {name!r}: {e.message}", e.hint) from None


def _options(source: str, lines: _Lines, data: object) -> ConfigOptions:
    line = lines.of_table("options")
    if not isinstance(data, dict):
        raise _bad(source, line, "options must be a table")
    unknown = [k for k in data if k not in OPTION_KEYS]
    if unknown:
        raise _bad(source, lines.of_key(("options",), unknown[0]),
                   f"unknown option {unknown[0]!r}", hint="options: " + ", ".join(OPTION_KEYS))
    given: dict[str, Any] = {}
    for key in (k for k in OPTION_KEYS if k in data):  # in a fixed order: the first error
        try:
            given[key] = _OPTION_CHECKS[key](data[key])
        except InvalidInput as e:
            raise _bad(source, lines.of_key(("options",), key), e.message) from None
    return ConfigOptions(**given)


def _console_loglevel(v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 8:
        raise InvalidInput(f"console_loglevel must be an integer from 1 to 8, not {v!r}")
    return v


def _prune(v: object) -> bool:
    if not isinstance(v, bool):
        raise InvalidInput("prune must be true or false")
    return v


def _absent(v: object) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise InvalidInput("absent must be a list of target names")
    for x in v:
        try:
            validate_target_name(x)
        except InvalidInput as e:
            raise InvalidInput(f"absent: {e.message}") from None
    return tuple(dict.fromkeys(v))


def _arp_timeout(v: object) -> float:
    if (isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)
            or not MIN_ARP_TIMEOUT <= v <= MAX_ARP_TIMEOUT):
        raise InvalidInput(
            f"arp_timeout must be {MIN_ARP_TIMEOUT:g} to {MAX_ARP_TIMEOUT:g} seconds")
    return float(v)


def _arp_retries(v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_ARP_RETRIES:
        raise InvalidInput(f"arp_retries must be an integer from 1 to {MAX_ARP_RETRIES}")
    return v


#: each key of [options]: its check, which returns the value to keep
_OPTION_CHECKS: dict[str, Callable[[object], Any]] = {
    "console_loglevel": _console_loglevel, "prune": _prune, "absent": _absent,
    "arp_timeout": _arp_timeout, "arp_retries": _arp_retries,
}


def from_data(data: object, *, source: str = "<config>", text: str | None = None) -> Config:
    """Validate already-decoded data (a TOML or JSON document)."""
    lines = _Lines(text)
    if not isinstance(data, dict):
        raise _bad(source, None, "the configuration must be a table with [targets.NAME] entries")
    unknown = [k for k in data if k not in ("targets", "options")]
    if unknown:
        raise _bad(source, lines.of_table(unknown[0]) or lines.of_key((), unknown[0]),
                   f"unknown top-level key {unknown[0]!r}",
                   hint="the file has [options] and [targets.NAME] tables")
    options = _options(source, lines, data.get("options", {}))
    raw_targets = data.get("targets", {})
    if not isinstance(raw_targets, dict):
        raise _bad(source, lines.of_key((), "targets"),
                   "targets must be a table of [targets.NAME] tables")
    if len(raw_targets) > MAX_TARGETS:
        raise _bad(source, None, f"{len(raw_targets)} targets; at most {MAX_TARGETS} are taken",
                   hint="netconsole sends every kernel message once per target, from the "
                   "console path itself: split the collectors over fewer targets")
    targets = tuple(_target(source, lines, str(n), d) for n, d in raw_targets.items())
    both = [t.name for t in targets if t.name in options.absent]
    if both:
        raise _bad(source, lines.of_key(("options",), "absent"),
                   f"{both[0]!r} is both configured and listed in absent")
    return Config(targets=targets, options=options, source=source)


def loads(text: str, *, source: str = "<config>", fmt: str | None = None) -> Config:
    """Parse and validate a configuration; ``fmt`` is 'toml' or 'json' (guessed if None)."""
    if fmt is None:
        fmt = "json" if text.lstrip().startswith("{") else "toml"
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise _bad(source, e.lineno, f"invalid JSON: {e.msg}") from None
        return from_data(data, source=source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+), column \d+\)", str(e))
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(e)) or "syntax error"
        raise _bad(source, int(m.group(1)) if m else None, f"invalid TOML: {msg}") from None
    return from_data(data, source=source, text=text)


def check_safe(path: Path | str) -> None:
    """As sshd's StrictModes: refuse a file that someone other than root could have written.

    The configuration decides where every kernel message goes; a local user who can write the
    file, or replace it through a directory above it, could send the kernel log (and whatever
    secrets it carries) anywhere (:func:`netconsolectl.hostutil.check_root_owned`). Raises
    :class:`~netconsolectl.errors.UnsafeConfig` (exit 78); FileNotFoundError passes.
    """
    from netconsolectl.hostutil import check_root_owned

    os.stat(path)  # a missing file is the caller's to report
    check_root_owned(path, "", "send the kernel log anywhere", strict=True)


def _read_regular(p: Path) -> str:
    """The text of ``p``, which must be a regular file: a FIFO would block apply until
    someone writes to it, a device could be read forever. Opened without blocking and checked
    on the open file, so nothing can swap it in between."""
    import os
    import stat

    fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(p)
        if not stat.S_ISREG(mode):
            kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) \
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a file"
            raise InvalidInput(f"{p} is {kind}, not a regular file",
                               hint="give the configuration as a file")
        return f.read().decode("utf-8")


def load(path: Path | str, *, strict: bool | None = None) -> Config:
    """Read and validate a configuration file (JSON when it ends in .json).

    ``strict`` (default: when running as root) applies :func:`check_safe` first.
    """
    import os

    p = Path(path)
    if strict is None:
        strict = os.geteuid() == 0
    try:
        if strict:
            check_safe(p)
        text = _read_regular(p)
    except FileNotFoundError:
        raise InvalidInput(
            f"{p}: no such configuration file",
            hint="write one (see `netconsolectl export` for the format)",
        ) from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{p}: not UTF-8 text") from None
    except IsADirectoryError:
        raise InvalidInput(
            f"{p} is a directory, not a configuration file",
            hint="give the file, e.g. /etc/netconsolectl.toml",
        ) from None
    except OSError as e:
        raise NetconsoleError(f"cannot read {p}: {e.strerror}") from None
    return loads(text, source=str(p), fmt="json" if p.suffix == ".json" else None)


# -- writing ----------------------------------------------------------------------------------

def dumps_toml(data: dict[str, Any], *, header: str = "") -> str:
    """Write a configuration document (``options`` and ``targets``) as TOML, under a comment."""
    import tomli_w  # the writer that pairs with the standard library's tomllib

    comment = "".join(f"# {h}\n" if h else "#\n" for h in header.splitlines())
    body = tomli_w.dumps({k: v for k, v in data.items() if v})
    return comment + ("\n" if comment and body else "") + body


def dumps(data: dict[str, Any], fmt: str = "toml", *, header: str = "") -> str:
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    return dumps_toml(data, header=header)


def spec_to_dict(spec: TargetSpec) -> dict[str, Any]:
    """A target's settings as config keys, in a stable order, leaving out what is unset."""
    out: dict[str, Any] = {}
    for key in TARGET_KEYS:
        v = getattr(spec, key)
        if key == "userdata":
            if v:
                out[key] = dict(v)
        elif key == "sysdata":
            if v is not None:
                out[key] = [n for n in SYSDATA_NAMES if n in v]
        elif v is not None:
            out[key] = str(v) if key in ("remote_ip", "local_ip") else v
    return out


def state_to_dict(state: TargetState) -> dict[str, Any]:
    """A live target as config keys: what `apply` needs to recreate it exactly.

    Unset addresses (6.12 reads ``0.0.0.0``/``::``, newer kernels an empty line) and
    attributes this kernel lacks (``None``) are left out; read-only ``local_mac`` and
    ``transmit_errors`` are not configuration.
    """
    out: dict[str, Any] = {}
    if not is_unset(state.remote_ip):
        out["remote_ip"] = state.remote_ip
    if state.remote_port is not None:
        out["remote_port"] = state.remote_port
    if state.dev_name:
        out["dev_name"] = state.dev_name
    if not is_unset(state.local_ip):
        out["local_ip"] = state.local_ip
    if state.local_port is not None:
        out["local_port"] = state.local_port
    if state.remote_mac:
        out["remote_mac"] = state.remote_mac.lower()
    if state.extended is not None:
        out["extended"] = state.extended
    if state.release is not None:
        out["release"] = state.release
    out["enabled"] = state.enabled
    if state.sysdata is not None:
        # release_enabled may be unreadable (6.15 until the 2026 fix): left out then.
        out["sysdata"] = [n for n in SYSDATA_NAMES if state.sysdata.get(n)]
    if state.userdata:
        out["userdata"] = dict(state.userdata)
    return out


def write_file(path: Path | str, text: str, *, mode: int = 0o644) -> None:
    """Write a configuration file whole or not at all: a temporary file in the same directory,
    ``mode`` (not the umask's), synced, then renamed over ``path``. Run as root, the file is
    root's, so :func:`check_safe` accepts it. Raises InvalidInput or KernelRefused (OSError)."""
    from netconsolectl.errors import DENIED, from_oserror
    from netconsolectl.hostutil import write_atomic

    p = Path(path)
    if p.is_dir():
        raise InvalidInput(f"{p} is a directory", hint="give a file name, e.g. "
                           "/etc/netconsolectl.toml")
    if not p.parent.is_dir():
        raise InvalidInput(f"cannot write {p}: directory {p.parent} does not exist")
    try:
        write_atomic(p, text, mode=mode, keep_owner=False)  # check_safe wants root's file
    except OSError as e:
        why = "permission denied" if e.errno in DENIED else e.strerror
        raise from_oserror(e, f"cannot write {p}: {why}") from None


def export_data(states: list[TargetState],
                leave_out: Mapping[str, Collection[str]] | None = None) -> dict[str, Any]:
    """The live state as a configuration document `apply` accepts.

    ``leave_out``: per target, keys not to write (apply discovers them again).
    """
    skip = leave_out or {}
    return {"targets": {s.name: {k: v for k, v in state_to_dict(s).items()
                                 if k not in skip.get(s.name, ())} for s in states}}

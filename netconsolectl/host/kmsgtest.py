"""A test message through netconsole: a unique marker line written to /dev/kmsg.

What can be known on the sending machine, and what cannot:

* that the kernel accepted the line (the write to /dev/kmsg succeeded);
* that it passes the console loglevel (the level is chosen below it), so every enabled target
  is handed it (netconsole is a console: drivers/net/netconsole.c ``write_msg``/``write_ext_msg``
  loop over all enabled targets);
* that a target's interface is up (a target whose device is not running is silently skipped)
  and whether ``transmit_errors`` (6.13+) grew while it was sent;
* **not** that the packet arrived: netconsole is fire-and-forget UDP with no reply. Arrival is
  only known where the collector is: :class:`UdpWatch` when the collector is a socket on this
  machine (a lab, a VM host, a network namespace), :class:`DirWatch` when the collector runs
  ``netconsolectl listen --output-dir DIR`` and DIR is readable here (a shared or synced
  directory, or the collector itself), :class:`HttpWatch` across machines: the receiver's HTTP
  server (``listen --metrics``) answers whether the token arrived.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from netconsolectl.endpoint import endpoint
from netconsolectl.errors import (
    RUN_AS_ROOT,
    InvalidInput,
    KernelRefused,
    NoSuchTarget,
    Unavailable,
    from_oserror,
)
from netconsolectl.facts import IFF_UP
from netconsolectl.host.loglevel import LEVEL_NAMES, ignore_loglevel
from netconsolectl.host.system import System
from netconsolectl.sender.target import TargetState

DEFAULT_LEVEL_WITHOUT_LOGLEVEL = 3  # err: passes any console loglevel of 4 or more


def new_marker() -> str:
    return f"netconsolectl-test-{secrets.token_hex(8)}"


def choose_level(system: System, requested: int | None = None) -> int:
    """The least severe level that still passes the console loglevel.

    Refuses to fall back to KERN_EMERG (0) on its own: syslog daemons broadcast emergency
    messages to every terminal (journald's ForwardToWall).
    """
    if requested is not None:
        if not 0 <= requested <= 7:
            raise InvalidInput(f"invalid level {requested}: 0 (emerg) to 7 (debug)")
        current = system.console_loglevel()
        if current is not None and requested >= current and not ignore_loglevel(system):
            raise InvalidInput(
                f"level {requested} ({LEVEL_NAMES[requested]}) does not pass the console "
                f"loglevel {current}: netconsole would never see it",
                hint=f"use --level {current - 1} or raise the loglevel (`netconsolectl "
                "loglevel 8`)" if current > 1 else "raise the loglevel (`netconsolectl "
                "loglevel 8`)",
            )
        return requested
    if ignore_loglevel(system):
        return 6
    current = system.console_loglevel()
    if current is None:
        return DEFAULT_LEVEL_WITHOUT_LOGLEVEL
    if current <= 1:
        raise KernelRefused(
            f"the console loglevel is {current}: only emergency messages reach netconsole, "
            "and a test at that level would be broadcast to every terminal",
            hint="raise it with `netconsolectl loglevel 8` (or pass --level 0 anyway)",
        )
    return min(current - 1, 7)


def level_for(system: System, requested: int | None, most: int | None) -> int | None:
    """The level to ask :func:`prepare` for when the watcher sees only levels up to ``most``
    (None: any; a None result lets :func:`prepare` choose)."""
    if most is None:
        return requested
    if requested is None:
        return min(choose_level(system), most)
    if requested > most:
        raise InvalidInput(
            f"--level {requested}: the receiver checks only lines of level {most} "
            f"({LEVEL_NAMES[most]}) or more severe for the token",
            hint=f"use --level {most} or less, or leave --level out",
        )
    return requested


@dataclass
class Delivery:
    """Where the kernel hands the message, target by target."""

    sent: list[tuple[TargetState, str]] = field(default_factory=list)
    skipped: list[tuple[TargetState, str]] = field(default_factory=list)


def _dev_running(system: System, dev: str | None) -> bool | None:
    """IFF_UP from sysfs ``flags``; None when sysfs says nothing."""
    if not dev:
        return None
    try:
        return bool(int((system.sysfs / "class/net" / dev / "flags").read_text(), 16) & IFF_UP)
    except (OSError, ValueError):
        return None


def describe(s: TargetState) -> str:
    fmt = "basic" if not s.extended else ("extended+release" if s.release else "extended")
    return (f"{s.dev_name} {endpoint(s.local_ip, s.local_port)} -> "
            f"{endpoint(s.remote_ip, s.remote_port)} "
            f"({s.remote_mac}), {fmt}")


def delivery(system: System, states: list[TargetState]) -> Delivery:
    d = Delivery()
    for s in states:
        if not s.enabled:
            d.skipped.append((s, "disabled"))
        elif _dev_running(system, s.dev_name) is False:
            d.skipped.append((s, f"{s.dev_name} is down: the kernel skips the target until it "
                                 "is up again"))
        else:
            d.sent.append((s, describe(s)))
    return d


@dataclass
class TestMessage:
    """One test: the marker line, its level, and where the kernel hands it."""

    marker: str
    level: int
    text: str
    delivery: Delivery
    transmit_errors: dict[str, int | None]  # per target, before sending

    def transmit_growth(self, after: dict[str, TargetState]) -> list[tuple[str, int]]:
        """Targets whose transmit_errors (6.13+) grew since: the driver dropped the packet."""
        return [(n, (after[n].transmit_errors or 0) - b)
                for n, b in self.transmit_errors.items()
                if n in after and b is not None and (after[n].transmit_errors or 0) > b]


def prepare(system: System, live: dict[str, TargetState], names: list[str],
            level: int | None = None) -> TestMessage:
    """Check that the message would reach every named (default: any enabled) target.

    Raises NoSuchTarget for an unknown name and KernelRefused when a named target, or every
    target, would not get the message.
    """
    unknown = [n for n in names if n not in live]
    if unknown:
        raise NoSuchTarget(f"no netconsole target named {unknown[0]!r}",
                           hint="see `netconsolectl list`")
    plan = delivery(system, list(live.values()))
    sent = {s.name for s, _ in plan.sent}
    missing = [n for n in names if n not in sent]
    if missing:
        reasons = {s.name: r for s, r in plan.skipped}
        raise KernelRefused(f"{missing[0]} would not get the message: {reasons[missing[0]]}",
                            hint=f"`netconsolectl enable {missing[0]}`"
                            if reasons[missing[0]] == "disabled" else None)
    if not plan.sent:
        raise KernelRefused("no enabled target: the message would go nowhere",
                            hint="enable a target, or `netconsolectl apply`")
    lvl = choose_level(system, level)
    marker = new_marker()
    text = (f"netconsolectl test {marker} from {socket.gethostname()} to "
            + ",".join(s.name for s, _ in plan.sent))
    return TestMessage(marker, lvl, text, plan,
                       {s.name: s.transmit_errors for s, _ in plan.sent})


def write_kmsg(system: System, level: int, text: str) -> None:
    """One write(2) of ``<level>text`` to /dev/kmsg (facility user, as the kernel sets it)."""
    data = f"<{level}>{text}\n".encode()
    path = system.kmsg_path
    flags = os.O_WRONLY | os.O_APPEND
    if system.sandbox is not None:  # a plain file of the sandbox's, never the host's log
        path.parent.mkdir(parents=True, exist_ok=True)
        flags |= os.O_CREAT | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    except OSError as e:
        if e.errno == errno.ENOENT:
            raise Unavailable(f"{path} does not exist", errno=e.errno) from None
        raise from_oserror(e, f"cannot write to {path}: {e.strerror}",
                           root_hint=f"{RUN_AS_ROOT} (and check that kernel.printk_devkmsg "
                           "is not 'off')") from None


# -- confirming arrival -----------------------------------------------------------------------


class Watch:
    """Something that can see the marker arrive. ``start`` before writing, then ``wait``."""

    def start(self) -> None:
        """Begin watching; called before the message is written."""

    def wait(self, marker: str, timeout: float) -> str | None:
        """Return a description of where the marker was seen, or None after ``timeout``."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what ``start`` took."""

    #: The least severe level the watcher can see (None: any).
    max_level: int | None = None
    #: Why the watcher could not look, when it could not (shown when nothing arrived).
    error: str | None = None


class HttpWatch(Watch):
    """The ``/delivery`` endpoint of ``netconsolectl listen --metrics ADDR:PORT`` elsewhere.

    The receiver only looks for tokens in lines it parses in full, which include every line of
    level warning or worse (a receiver whose only output is ``--json`` copies the common
    informational line without parsing it), so :attr:`max_level` keeps the test line there.
    """

    max_level = 4

    def __init__(self, url: str, poll: float = 0.2) -> None:
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme not in ("http", "https") or not parts.hostname or port == -1 or (
            parts.query or parts.fragment
        ):
            raise InvalidInput(
                f"invalid --expect-listen {url!r}: expected http://HOST:PORT",
                hint="the address `netconsolectl listen --metrics` serves on",
            )
        self.url = url.rstrip("/")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = port or (443 if self.https else 80)
        self.base = parts.path.rstrip("/")
        self.poll = poll
        #: Why the last request failed (None: it was answered).
        self.error: str | None = None

    def _get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        """One GET without any proxy (the collector is asked directly). Raises OSError."""
        import http.client
        import ssl

        conn: http.client.HTTPConnection
        if self.https:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request("GET", self.base + path, headers={"Accept": "application/json"})
            resp = conn.getresponse()
            return resp.status, resp.read(65536)
        except http.client.HTTPException as e:
            raise OSError(f"bad answer: {e}") from None
        finally:
            conn.close()

    def start(self) -> None:
        """Check that a receiver answers before anything is written."""
        try:
            status, _ = self._get("/healthz")
        except OSError as e:
            raise KernelRefused(
                f"cannot reach the receiver at {self.url}: {e.strerror or e}",
                hint="start it with `netconsolectl listen --metrics ADDR:PORT` reachable "
                "from here, and check the address and firewall",
            ) from None
        if status not in (200, 503):
            raise KernelRefused(
                f"{self.url} is not a netconsolectl receiver (HTTP {status} on /healthz)",
                hint="give the address of `netconsolectl listen --metrics`",
            )

    def wait(self, marker: str, timeout: float) -> str | None:
        import json

        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                status, body = self._get(f"/delivery?token={marker}", max(0.5, min(left, 5.0)))
                self.error = None if status in (200, 404) else f"HTTP {status}"
            except OSError as e:
                status, self.error = 0, str(e.strerror or e)
            if status == 200:
                try:
                    seen = json.loads(body)["from"][0]
                    where = endpoint(seen["host"], seen["port"])
                    name = f" ({seen['name']})" if seen.get("name") else ""
                except (ValueError, KeyError, IndexError, TypeError):
                    where, name = "a sender", ""
                return f"{self.url} from {where}{name}"
            if time.monotonic() + self.poll >= deadline:
                return None
            time.sleep(self.poll)


class UdpWatch(Watch):
    """A UDP socket on this machine, where the collector's packets arrive."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.sock: socket.socket | None = None

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError as e:
            sock.close()
            if e.errno == errno.EADDRINUSE:
                raise KernelRefused(
                    f"UDP port {self.port} is in use (the collector itself?)",
                    hint="stop it, or confirm through its output with --expect-listen DIR",
                ) from None
            raise KernelRefused(f"cannot listen on {endpoint(self.host, self.port)}: {e.strerror}"
                                ) from None
        self.sock = sock

    def wait(self, marker: str, timeout: float) -> str | None:
        assert self.sock is not None
        needle = marker.encode()
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                return None
            if needle in data:
                return f"UDP {endpoint(self.host, self.port)} from {endpoint(addr[0], addr[1])}"

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class DirWatch(Watch):
    """The files ``netconsolectl listen --output-dir DIR`` appends to (read only from here)."""

    def __init__(self, directory: Path, poll: float = 0.05) -> None:
        self.directory = directory
        self.poll = poll
        self.offsets: dict[Path, int] = {}

    def _files(self) -> list[Path]:
        out = []
        for root, dirs, files in os.walk(self.directory):
            depth = Path(root).relative_to(self.directory).parts
            if len(depth) >= 2:
                dirs.clear()
            out += [Path(root) / f for f in files]
        return out

    def start(self) -> None:
        if not self.directory.is_dir():
            raise InvalidInput(f"{self.directory} is not a directory")
        for p in self._files():
            with contextlib.suppress(OSError):
                self.offsets[p] = p.stat().st_size

    def wait(self, marker: str, timeout: float) -> str | None:
        needle = marker.encode()
        deadline = time.monotonic() + timeout
        while True:
            for p in self._files():
                start = self.offsets.get(p, 0)
                try:
                    with open(p, "rb") as f:
                        f.seek(max(0, start - len(needle)))
                        chunk = f.read()
                except OSError:
                    continue
                if needle in chunk:
                    return str(p)
            if time.monotonic() >= deadline:
                return None
            time.sleep(self.poll)


def parse_expect(spec: str) -> Watch:
    """``DIR`` (listen --output-dir), ``udp:PORT``, ``udp:ADDR:PORT``, ``udp:[ADDR]:PORT``, or
    ``http://HOST:PORT`` (listen --metrics)."""
    if "://" in spec:  # a URL: only http(s) is one the receiver answers
        return HttpWatch(spec)
    if spec.startswith("udp:"):
        rest = spec[4:]
        host = "0.0.0.0"
        if rest.startswith("["):
            addr, sep, port_text = rest[1:].partition("]:")
            if not sep:
                raise InvalidInput(f"invalid --expect-listen {spec!r}: use udp:[ADDR]:PORT")
            host = addr
        elif rest.count(":") == 1:
            host, port_text = rest.split(":")
        elif ":" in rest:
            raise InvalidInput(f"invalid --expect-listen {spec!r}: write IPv6 as udp:[ADDR]:PORT")
        else:
            port_text = rest
        try:
            ipaddress.ip_address(host)
            port = int(port_text)
        except ValueError:
            raise InvalidInput(f"invalid --expect-listen {spec!r}: expected udp:[ADDR:]PORT"
                               ) from None
        if not 1 <= port <= 65535:
            raise InvalidInput(f"invalid --expect-listen {spec!r}: port must be 1-65535")
        return UdpWatch(host, port)
    path = Path(spec)
    if not path.is_dir():
        raise InvalidInput(
            f"invalid --expect-listen {spec!r}: not a directory and not udp:[ADDR:]PORT",
            hint="give the --output-dir of a running `netconsolectl listen`",
        )
    return DirWatch(path)

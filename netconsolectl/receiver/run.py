"""``netconsolectl listen`` as a library call: options in, a running receiver until a signal."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import re
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from netconsolectl.errors import InvalidInput, KernelRefused, PermissionDenied
from netconsolectl.receiver.core import Processor, Sink
from netconsolectl.receiver.model import COUNTER_NAMES
from netconsolectl.receiver.output import FdWriter
from netconsolectl.receiver.server import (
    Network,
    Server,
    bound_address,
    open_socket,
    parse_cidrs,
    spread_by_address,
)

if TYPE_CHECKING:
    from netconsolectl.receiver.fleet import FleetStats


@dataclass
class Options:
    """What ``netconsolectl listen`` was asked for (one field per command-line option)."""

    bind: str | None = None
    port: int = 6666
    json: bool = False
    output_dir: str | None = None
    forward: list[str] = field(default_factory=list)
    allow: list[str] = field(default_factory=list)
    quiet: bool = False
    #: ``auto`` (a terminal, unless NO_COLOR is set), ``always`` or ``never``.
    color: str = "auto"
    timeout: float = 2.0
    max_sources: int = 65536
    max_pending: int = 4096
    max_pending_bytes: int = 32 << 20
    rcvbuf: int = 32 << 20
    #: Receiving processes; 0 picks one per CPU, at most :data:`AUTO_WORKERS_MAX`.
    workers: int = 0
    #: Where the reliable forwarders keep what is not delivered yet (None: a temporary one).
    spool_dir: str | None = None
    #: Bound of each spool; None: 1 GiB in ``spool_dir``, 64 MiB in a temporary directory.
    spool_max_bytes: int | None = None
    #: ``--ignore``: regular expressions; matching messages are dropped (counted).
    ignore: list[str] = field(default_factory=list)
    #: ``--on-crash``: the command (argv) run for every crash event.
    on_crash: list[str] = field(default_factory=list)
    on_crash_timeout: float = 60.0
    #: ``--silence``: seconds without a message after which a host is reported silent.
    silence: float | None = None
    #: ``--expect``: file with one address per line, counted as heard at start.
    expect: str | None = None
    #: ``--metrics [ADDR:]PORT``.
    metrics: str | None = None
    #: Hosts with their own metric series and silence tracking; the rest count as "other".
    max_hosts: int = 4096
    #: ``--reuseport``: share the port with other receivers of this user (the kernel's hash of
    #: the source address and port keeps each sender on one of them).
    reuseport: bool = False
    #: ``--reverse-dns``: name senders that do not name themselves by their PTR record.
    reverse_dns: bool = False

    @property
    def fleet(self) -> bool:
        """Per-host figures are needed (metrics, silence)."""
        return self.metrics is not None or self.silence is not None or self.expect is not None


#: Upper bound of the automatic worker count: past a few processes the single receive queue
#: per socket is no longer the limit, and each worker costs memory.
AUTO_WORKERS_MAX = 4


def build_sinks(
    opts: Options,
    *,
    atomic_lines: bool = False,
    worker: int = 0,
    err: Callable[[str], None] | None = None,
    check_only: bool = False,
) -> list[Sink]:
    """The outputs asked for, standard output first. Raises InvalidInput/Unavailable.
    ``check_only`` validates the forward URLs without opening them (the supervisor of
    ``--workers``)."""
    sinks: list[Sink] = []
    if not opts.quiet:
        out = FdWriter(sys.stdout.fileno(), atomic_lines=atomic_lines)
        if opts.json:
            from netconsolectl.receiver.sinks.jsonl import JsonSink

            sinks.append(JsonSink(out))
        else:
            from netconsolectl.receiver.sinks.text import HumanSink, want_color

            sinks.append(HumanSink(out, color=want_color(opts.color, out.fd)))
    if opts.output_dir is not None:
        from netconsolectl.receiver.sinks.text import FileSink

        try:
            sinks.append(FileSink(opts.output_dir, reverse=_reverse(opts)))
        except OSError as e:
            what = "not a directory" if e.errno == errno.ENOTDIR else e.strerror
            raise InvalidInput(
                f"cannot use output directory {opts.output_dir}: {what}", errno=e.errno
            ) from None
    if opts.forward:
        from netconsolectl.receiver.sinks.forward import open_forwarder

        for url in opts.forward:  # every URL valid before any forwarder starts its thread
            open_forwarder(url, check_only=True)
        if check_only:
            return sinks
        sinks.extend(
            open_forwarder(
                url,
                spool_dir=opts.spool_dir,
                spool_max_bytes=opts.spool_max_bytes,
                worker=worker,
                err=err,
            )
            for url in opts.forward
        )
    return sinks


def _reverse(opts: Options) -> object:
    """The resolver of ``--reverse-dns`` (one per process: its thread does not survive fork)."""
    if not opts.reverse_dns:
        return None
    from netconsolectl.receiver.names import ReverseNames

    return ReverseNames()


def bind_socket(opts: Options, port: int | None = None, *, reuseport: bool = False
                ) -> socket.socket:
    port = opts.port if port is None else port
    try:
        return open_socket(opts.bind, port, opts.rcvbuf, reuseport=reuseport)
    except ValueError:
        raise InvalidInput(f"--bind {opts.bind!r} is not an IP address") from None
    except OSError as e:
        where = f"{opts.bind or '[::]'} port {port}"
        if e.errno == errno.EACCES:
            raise PermissionDenied(
                f"cannot listen on {where}: permission denied",
                hint="ports below 1024 need root or CAP_NET_BIND_SERVICE; use --port 6666",
                errno=e.errno,
            ) from None
        if e.errno == errno.EADDRINUSE:
            raise KernelRefused(
                f"cannot listen on {where}: address already in use",
                hint="another receiver (socat, nc, rsyslog?) holds the port",
                errno=e.errno,
            ) from None
        raise KernelRefused(f"cannot listen on {where}: {e.strerror}", errno=e.errno) from None


def _make_server(
    opts: Options,
    sock: socket.socket,
    sinks: list[Sink],
    allow: list[Network],
    report: Callable[[dict[str, int], bool], None],
    worker: int = 0,
) -> Server:
    boots = None
    if opts.spool_dir is not None:
        from netconsolectl.receiver.boots import BootTable

        boots = BootTable(opts.spool_dir, f"boots-w{worker}.json")
    processor = Processor(
        sinks,
        boots=boots,
        timeout=opts.timeout,
        max_sources=opts.max_sources,
        max_pending=opts.max_pending,
        max_pending_bytes=opts.max_pending_bytes,
        ignore=opts.ignore or None,
        host_stats=opts.fleet,
    )
    if opts.on_crash:
        from netconsolectl.receiver.oncrash import CrashCommands

        processor.crash_hook = CrashCommands(opts.on_crash, timeout=opts.on_crash_timeout)
    server = Server(sock, processor, allow=allow, report=report)
    if opts.json and not opts.quiet and len(sinks) == 1:
        from netconsolectl.receiver.fastpath import JsonFastPath
        from netconsolectl.receiver.sinks.jsonl import JsonSink

        sink = sinks[0]
        assert isinstance(sink, JsonSink)
        server.handler_factory = lambda resolve: JsonFastPath(processor, sink, resolve).feed_batch
    return server


def _counters_line(values: dict[str, int]) -> bytes:
    return (json.dumps({"type": "counters", **values}, separators=(",", ":")) + "\n").encode()


def run(
    opts: Options,
    *,
    info: Callable[[str], None],
    err: Callable[[str], None],
) -> None:
    """Bind, announce ``listening on udp ADDR:PORT (pid N)`` through ``info`` (``(pid N, K
    workers)`` with several), serve until a signal."""
    if opts.json and opts.quiet:
        raise InvalidInput(
            "--json and --quiet contradict each other: --quiet prints nothing on standard output",
            hint="use --json alone, or --quiet with --output-dir or --forward",
        )
    if opts.color not in ("auto", "always", "never"):
        raise InvalidInput(f"--color {opts.color!r}: use auto, always or never")
    try:
        allow = parse_cidrs(opts.allow)
    except ValueError as e:
        raise InvalidInput(f"--allow: {e}") from None
    for pattern in opts.ignore:
        try:
            re.compile(pattern)
        except re.error as e:
            raise InvalidInput(f"--ignore {pattern!r}: {e}") from None
    fleet = _fleet(opts)
    workers = opts.workers or min(os.cpu_count() or 1, AUTO_WORKERS_MAX)
    if opts.spool_dir is not None and opts.forward:
        from netconsolectl.receiver.sinks.reliable import orphaned_spools

        for path in orphaned_spools(opts.spool_dir, workers):
            err(f"netconsolectl: warning: spool {path} is from a run with more workers and is "
                f"not replayed by this one; start once with --workers "
                f"{int(os.path.basename(path)[1:]) + 1} or "
                "more to deliver it")
    if workers > 1:
        _run_workers(opts, workers, allow, info, err, fleet)
        return
    sock = bind_socket(opts, reuseport=opts.reuseport)
    sinks = build_sinks(opts, err=err)
    if fleet is not None:
        _serve_metrics(opts, fleet, info)

    def report(values: dict[str, int], final: bool) -> None:
        _emit(opts, info, values)

    server = _make_server(opts, sock, sinks, allow, report)
    if fleet is not None:
        proc = server.processor

        def periodic(now: float) -> None:
            from netconsolectl.receiver.fleet import make_delta

            events = fleet.add(make_delta(*proc.take_host_stats()), now)
            events += fleet.check_silence(now)
            proc.sync_counters()
            fleet.counters = dict(proc.counters.values)
            if server.running:
                for e in events:
                    proc.emit_event(e)

        server.periodic = periodic
    wakeup = server.install_signals()
    info(f"listening on udp {bound_address(sock)} (pid {os.getpid()})")
    try:
        server.serve(wakeup)
    finally:
        if server.processor.crash_hook is not None:
            server.processor.crash_hook.close()


def _fleet(opts: Options) -> FleetStats | None:
    """The per-host figures when metrics or silence are asked for (``--expect`` read here)."""
    if not opts.fleet:
        return None
    from netconsolectl.receiver.fleet import FleetStats

    if opts.silence is not None and opts.silence <= 0:
        raise InvalidInput("--silence must be a positive number of seconds")
    expect: list[str] = []
    if opts.expect is not None:
        expect = read_expect(opts.expect)
    fleet = FleetStats(max_hosts=opts.max_hosts, silence=opts.silence, expect=expect,
                       now=time.time())
    fleet.reverse = _reverse(opts)
    return fleet


def read_expect(path: str) -> list[str]:
    """``--expect FILE``: one address per line; blank lines and ``#`` comments skipped.
    Raises InvalidInput naming the first bad line."""
    import ipaddress

    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise InvalidInput(f"--expect {path}: {e.strerror}", errno=e.errno) from None
    hosts = []
    for n, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            raise InvalidInput(f"--expect {path} line {n}: {text!r} is not an IP address"
                               ) from None
        mapped = getattr(ip, "ipv4_mapped", None)
        hosts.append(str(mapped or ip))
    return hosts


def _serve_metrics(opts: Options, fleet: FleetStats, info: Callable[[str], None]
                   ) -> int | None:
    """Start the metrics server; returns its listening socket's descriptor."""
    if opts.metrics is None:
        return None
    from netconsolectl.receiver.metrics import serve

    host, port, fd = serve(fleet, opts.metrics)
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    info(f"metrics on http://{shown}/metrics")
    return fd


def _emit(opts: Options, info: Callable[[str], None], values: dict[str, int]) -> None:
    """Counters: one line on stderr, and a ``counters`` object on stdout with ``--json``."""
    info("counters: " + " ".join(f"{k}={v}" for k, v in values.items()))
    if opts.json and not opts.quiet:
        _write_all(sys.stdout.fileno(), _counters_line(values))


def _write_all(fd: int, data: bytes) -> None:
    w = FdWriter(fd)
    w.write(data)
    w.flush()


# -- several receiving processes ----------------------------------------------------------------


def _run_workers(
    opts: Options,
    n: int,
    allow: list[Network],
    info: Callable[[str], None],
    err: Callable[[str], None],
    fleet: FleetStats | None = None,
) -> None:
    """``--workers N``: N forked processes, each with its own SO_REUSEPORT socket and outputs.

    The kernel picks the socket by the source address (:func:`spread_by_address`), so each
    source's stream (sequence tracking, fragments) stays in one process. The parent only
    supervises: it forwards signals, restarts a worker that died, and sums the counters each
    worker reports on SIGUSR1 and at exit.

    With ``--metrics``/``--silence``/``--expect`` each worker also writes its per-host deltas
    and counters once a second to a pipe of its own; the parent merges them into one
    :class:`FleetStats`, serves the metrics from it and reports silent hosts through outputs of
    its own (standard output lines stay whole: every writer writes whole lines of at most
    PIPE_BUF bytes).
    """
    for s in build_sinks(opts, check_only=True):  # validate outputs (fail early) before forking
        s.close()
    # Memory limits are totals: each worker gets its share.
    per_worker = dataclasses.replace(
        opts,
        max_sources=max(1, opts.max_sources // n),
        max_pending=max(1, opts.max_pending // n),
        max_pending_bytes=max(1 << 20, opts.max_pending_bytes // n),
    )
    if opts.port and not opts.reuseport:
        # SO_REUSEPORT would let this group share the port with another receiver of the same
        # user, splitting the traffic between them without a word. A plain bind first makes
        # "address already in use" an error as it is for one process.
        bind_socket(opts).close()
    first = bind_socket(opts, reuseport=True)
    port = first.getsockname()[1]
    socks = [first] + [bind_socket(opts, port, reuseport=True) for _ in range(n - 1)]
    if not opts.reuseport:  # the group's indexes are ours alone only without --reuseport
        spread_by_address(first, n)  # socks[i] is index i of the group: worker i
    rfd, wfd = os.pipe()
    children: dict[int, int] = {}  # pid -> worker index
    stats_fds: dict[int, int] = {}  # read end of each worker's stats pipe -> worker index
    stats_buf: dict[int, bytes] = {}
    stats_counters: dict[int, dict[str, int]] = {}
    close_in_child: list[int] = []

    def spawn(i: int) -> None:
        stats_w = -1
        if fleet is not None:
            for fd, j in list(stats_fds.items()):
                if j == i:  # the pipe of the worker this one replaces
                    os.close(fd)
                    del stats_fds[fd]
            stats_r, stats_w = os.pipe()
            with contextlib.suppress(OSError):
                fcntl.fcntl(stats_w, fcntl.F_SETPIPE_SZ, 1 << 20)
            stats_fds[stats_r] = i
            stats_buf[stats_r] = b""
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _die_with_parent()
                os.close(rfd)
                for fd in (*stats_fds, *close_in_child):
                    os.close(fd)
                for j, s in enumerate(socks):
                    if j != i:
                        s.close()
                _worker(per_worker, i, socks[i], allow, wfd, err, stats_w)
            except BaseException as e:  # a worker never returns into the CLI
                with contextlib.suppress(Exception):
                    err(f"netconsolectl: error: worker {i}: {type(e).__name__}: {e}")
                code = 1
            finally:
                os._exit(code)
        children[pid] = i
        if stats_w >= 0:
            os.close(stats_w)

    for i in range(n):
        spawn(i)
    os.close(wfd)
    parent_sinks: list[Sink] = []
    if fleet is not None:
        metrics_socket = _serve_metrics(opts, fleet, info)
        if metrics_socket is not None:
            close_in_child.append(metrics_socket)
        if fleet.silence is not None:
            # a worker index of its own: a spooled forwarder gets a spool of its own
            parent_sinks = build_sinks(opts, atomic_lines=True, worker=n, err=err)
    next_check = time.monotonic() + 1.0
    hup = False
    stopping = False
    round_wanted = 0
    latest: dict[int, dict[str, int]] = {}
    final: dict[int, dict[str, int]] = {}
    carried: dict[str, int] = {}  # counts of workers that died and were replaced

    def signal_workers(sig: int) -> None:
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def on_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        signal_workers(signal.SIGTERM)

    def on_usr1(signum: int, frame: object) -> None:
        nonlocal round_wanted
        round_wanted += 1
        signal_workers(signal.SIGUSR1)

    def on_hup(signum: int, frame: object) -> None:
        nonlocal hup
        hup = True
        signal_workers(signal.SIGHUP)

    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGHUP, on_hup)

    def read_stats(fd: int) -> bool:
        assert fleet is not None
        try:
            chunk = os.read(fd, 1 << 20)
        except OSError:
            chunk = b""
        if not chunk:
            return False
        data = stats_buf[fd] + chunk
        *lines, stats_buf[fd] = data.split(b"\n")
        now = time.time()
        for line in lines:
            msg = json.loads(line)
            stats_counters[msg["worker"]] = msg["counters"]
            events = fleet.add(msg["delta"], now, msg["worker"])
            fleet.counters = _add(carried, total(stats_counters))
            for e in events:
                for s in parent_sinks:
                    s.event(e)
        return True

    def fleet_tick() -> None:
        nonlocal next_check, hup
        if hup:
            hup = False
            for s in parent_sinks:
                s.flush()
                reopen = getattr(s, "reopen", None)
                if reopen is not None:
                    reopen()
        if fleet is None or time.monotonic() < next_check:
            return
        next_check = time.monotonic() + 1.0
        for e in fleet.check_silence(time.time()):
            for s in parent_sinks:
                s.event(e)
        for s in parent_sinks:
            s.flush()
    info(f"listening on udp {bound_address(first)} (pid {os.getpid()}, {n} workers)")

    def total(reports: dict[int, dict[str, int]]) -> dict[str, int]:
        sums = dict.fromkeys(COUNTER_NAMES, 0)
        for values in reports.values():
            for k, v in values.items():
                sums[k] = sums.get(k, 0) + v
        return sums

    def emit(values: dict[str, int]) -> None:
        _emit(opts, info, values)

    buf = b""
    pending_round: set[int] = set()
    round_deadline = 0.0
    while children:
        if round_wanted and not pending_round:
            round_wanted = 0
            pending_round = set(children.values())
            round_deadline = time.monotonic() + 2.0
        ready, _, _ = select.select([rfd, *stats_fds], [], [], 0.2)
        for fd in ready:
            if fd != rfd and fd in stats_fds:
                read_stats(fd)
        fleet_tick()
        if rfd in ready:
            chunk = os.read(rfd, 65536)
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                msg = json.loads(line)
                idx = msg["worker"]
                latest[idx] = msg["counters"]
                if msg["final"]:
                    final[idx] = msg["counters"]
                pending_round.discard(idx)
                if not pending_round and round_deadline:
                    round_deadline = 0.0
                    emit(_add(carried, total(latest)))
        if pending_round and time.monotonic() > round_deadline:
            pending_round = set()
            round_deadline = 0.0
            emit(_add(carried, total(latest)))
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            i = children.pop(pid, -1)
            if i < 0:
                continue
            code = os.waitstatus_to_exitcode(status)
            if stopping:
                continue
            if code == 0:
                # A worker ends by itself only when its outputs are gone (stdout reader
                # closed): the others face the same, so stop them all.
                on_stop(signal.SIGTERM, None)
                continue
            err(f"netconsolectl: warning: worker {i} exited (status {code}); restarting it")
            carried = _add(carried, latest.pop(i, {}))
            spawn(i)
    # drain the last reports
    while True:
        chunk = os.read(rfd, 65536)
        if not chunk:
            break
        buf += chunk
    for line in buf.split(b"\n"):
        if line:
            msg = json.loads(line)
            if msg["final"]:
                final[msg["worker"]] = msg["counters"]
    for fd in list(stats_fds):
        while read_stats(fd):
            pass
        os.close(fd)
    for s in parent_sinks:
        s.close()
    emit(_add(carried, total(final)))


def _die_with_parent() -> None:
    """Ask Linux to send this worker SIGTERM if the supervising parent dies (even by SIGKILL),
    so no orphaned worker keeps the port. Best effort: without prctl the worker still stops
    when told to."""
    import ctypes
    import ctypes.util

    pr_set_pdeathsig = 1
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    """Sum two counter sets, in the order of :data:`COUNTER_NAMES`."""
    return {k: a.get(k, 0) + b.get(k, 0) for k in (*COUNTER_NAMES, *(set(a) | set(b)))}


def _worker(opts: Options, index: int, sock: socket.socket, allow: list[Network], wfd: int,
            err: Callable[[str], None], stats_wfd: int = -1) -> None:
    sinks = build_sinks(opts, atomic_lines=True, worker=index, err=err)

    def report(values: dict[str, int], final: bool) -> None:
        line = json.dumps({"worker": index, "final": final, "counters": values})
        _write_all(wfd, line.encode() + b"\n")

    server = _make_server(opts, sock, sinks, allow, report, index)
    if stats_wfd >= 0:
        proc = server.processor

        def periodic(now: float) -> None:
            from netconsolectl.receiver.fleet import make_delta

            proc.sync_counters()
            line = json.dumps({"worker": index, "delta": make_delta(*proc.take_host_stats()),
                               "counters": proc.counters.values}, separators=(",", ":"))
            _write_all(stats_wfd, line.encode() + b"\n")

        server.periodic = periodic
    wakeup = server.install_signals()
    try:
        server.serve(wakeup)
    finally:
        if server.processor.crash_hook is not None:
            server.processor.crash_hook.close()

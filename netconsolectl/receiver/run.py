"""``netconsolectl listen`` as a library call: options in, a running receiver until a signal."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from netconsolectl.errors import InvalidInput, KernelRefused, PermissionDenied
from netconsolectl.facts import DEFAULT_REMOTE_PORT
from netconsolectl.receiver.core import Processor
from netconsolectl.receiver.model import Event
from netconsolectl.receiver.output import DiskTrouble, FdWriter
from netconsolectl.receiver.server import (
    IPNetwork,
    Server,
    bound_address,
    open_socket,
    parse_cidrs,
    spread_by_address,
)
from netconsolectl.receiver.sinks import Sink

if TYPE_CHECKING:
    from netconsolectl.receiver.fleet import FleetStats
    from netconsolectl.receiver.supervisor import Supervisor


@dataclass
class ReceiveOptions:
    """What ``netconsolectl listen`` was asked for (one field per command-line option)."""

    bind: str | None = None
    port: int = DEFAULT_REMOTE_PORT
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
#: ``--workers`` beyond this many per CPU is refused.
WORKERS_PER_CPU = 4


def build_sinks(
    opts: ReceiveOptions,
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
        out = FdWriter(sys.stdout.fileno(), atomic_lines=atomic_lines,
                       trouble=DiskTrouble("standard output", err))
        if opts.json:
            from netconsolectl.receiver.sinks.jsonl import JsonSink

            sinks.append(JsonSink(out))
        else:
            from netconsolectl.receiver.sinks.text import HumanSink, want_color

            sinks.append(HumanSink(out, color=want_color(opts.color, out.fd)))
    if opts.output_dir is not None:
        from netconsolectl.receiver.sinks.text import FileSink

        try:
            sinks.append(FileSink(opts.output_dir, err=err, reverse=_reverse(opts)))
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
        sinks += _open_forwarders(opts, worker, err)
    return sinks


def _open_forwarders(opts: ReceiveOptions, worker: int, err: Callable[[str], None] | None
                     ) -> list[Sink]:
    """The ``--forward`` outputs: those that spool in one process of their own (see
    :mod:`netconsolectl.receiver.sinks.process`), the others (syslog+udp, journald) here."""
    from netconsolectl.receiver.sinks.forward import open_forwarder, spooled

    sinks: list[Sink] = []
    for url in opts.forward:
        if not spooled(url):
            sink = open_forwarder(url, err=err)
            assert sink is not None  # None only with check_only
            sinks.append(cast(Sink, sink))  # a ReliableSink only for the spooled ones
    spooling = [url for url in opts.forward if spooled(url)]
    if spooling:
        from netconsolectl.receiver.sinks.process import ForwardProcess

        sinks.append(ForwardProcess(spooling, spool_dir=opts.spool_dir,
                                    spool_max_bytes=opts.spool_max_bytes, worker=worker,
                                    err=err))
    return sinks


def bind_socket(opts: ReceiveOptions, port: int | None = None, *, reuseport: bool = False
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


def make_server(
    opts: ReceiveOptions,
    sock: socket.socket,
    sinks: list[Sink],
    allow: list[IPNetwork],
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
    from netconsolectl.receiver.sinks.jsonl import JsonSink

    if len(sinks) == 1 and isinstance(sinks[0], JsonSink):
        # --json alone, or only forwarders that spool: JSON lines are all there is to write
        from netconsolectl.receiver.fastpath import JsonFastPath

        sink = sinks[0]
        server.handler_factory = lambda resolve: JsonFastPath(processor, sink, resolve).feed_batch
    return server


def _counters_line(values: dict[str, int]) -> bytes:
    return (json.dumps({"type": "counters", **values}, separators=(",", ":")) + "\n").encode()


@dataclass
class Checked:
    """What :func:`check` derived from the options: everything validated before a socket."""

    allow: list[IPNetwork]
    workers: int
    fleet: FleetStats | None
    #: ``--on-crash`` with its executable resolved to an absolute path.
    on_crash: list[str]


def check(opts: ReceiveOptions) -> Checked:
    """Validate every option before anything starts. Raises InvalidInput (exit 2) or
    UnsafeConfig (exit 78, root only: see :func:`netconsolectl.hostutil.check_root_owned`)."""
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
    _check_paths(opts)
    on_crash = _resolve_on_crash(opts.on_crash)
    if opts.metrics is not None:
        _check_metrics_address(opts.metrics)
    workers = worker_count(opts.workers)
    _check_spools_free(opts, workers)
    return Checked(allow, workers, _fleet(opts), on_crash)


def worker_count(asked: int) -> int:
    """``--workers``: 0 picks one per CPU (at most :data:`AUTO_WORKERS_MAX`); more than
    :data:`WORKERS_PER_CPU` per CPU is refused (each worker costs memory and a socket, and past
    the CPUs they only take turns)."""
    cpus = os.cpu_count() or 1
    if asked == 0:
        return min(cpus, AUTO_WORKERS_MAX)
    most = WORKERS_PER_CPU * cpus
    if asked > most:
        raise InvalidInput(
            f"--workers {asked}: at most {most} on this machine ({WORKERS_PER_CPU} per CPU, "
            f"{cpus} CPUs)",
            hint="0 picks one per CPU",
        )
    return asked


def _check_paths(opts: ReceiveOptions) -> None:
    """Running as root, refuse an output or spool directory others could write."""
    from netconsolectl.hostutil import check_root_owned

    if opts.output_dir is not None:
        check_root_owned(opts.output_dir, "--output-dir", "plant a link that makes the "
                         "receiver append network text to any file", creates_files=True)
    if opts.spool_dir is not None:
        check_root_owned(opts.spool_dir, "--spool-dir", "inject records forwarded as kernel "
                         "messages, or plant links", creates_files=True)


def _check_spools_free(opts: ReceiveOptions, workers: int) -> None:
    """Another ``listen`` using the same ``--spool-dir`` is an error now, not a worker that
    fails to start again and again."""
    if opts.spool_dir is None:
        return
    import fcntl

    from netconsolectl.receiver.sinks.forward import spooled
    from netconsolectl.receiver.sinks.reliable import spool_label

    for url in filter(spooled, opts.forward):
        for i in range(workers + 1):  # the parent's own outputs have index ``workers``
            path = os.path.join(opts.spool_dir, spool_label(url), f"w{i}")
            try:
                fd = os.open(os.path.join(path, "lock"), os.O_RDONLY)
            except OSError:
                continue  # not there yet: nobody holds it
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                raise InvalidInput(f"--spool-dir: {path} is in use by another listen process",
                                   hint="give each listen process its own --spool-dir"
                                   ) from None
            finally:
                os.close(fd)


def _resolve_on_crash(argv: list[str]) -> list[str]:
    """``--on-crash``: the executable must exist now (not at the first crash), and as root be
    root's. Returns the argv with the executable's absolute path."""
    if not argv:
        return []
    import shutil

    from netconsolectl.hostutil import check_root_owned

    exe = shutil.which(argv[0])
    if exe is None:
        what = "not an executable file" if os.path.exists(argv[0]) else "not found"
        raise InvalidInput(f"--on-crash {argv[0]}: {what}",
                           hint="give the command's path, or a command on PATH")
    exe = os.path.abspath(exe)
    check_root_owned(exe, "--on-crash", "run any command as root on the next crash report")
    return [exe, *argv[1:]]


def _check_metrics_address(value: str) -> None:
    """``--metrics``: a malformed address or one already taken is an error now, before any
    worker starts."""
    from netconsolectl.receiver.metrics import parse_address

    addr, port = parse_address(value)
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the HTTP server does
        try:
            s.bind((addr, port))
            s.listen()
        except OSError as e:
            raise InvalidInput(
                f"--metrics {value}: cannot listen on {addr} port {port}: {e.strerror}",
                hint="another process holds it; give another port", errno=e.errno,
            ) from None


def run(
    opts: ReceiveOptions,
    *,
    info: Callable[[str], None],
    err: Callable[[str], None],
) -> None:
    """Bind, announce ``listening on udp ADDR:PORT (pid N)`` through ``info`` (``(pid N, K
    workers)`` with several), serve until a signal."""
    checked = check(opts)
    opts = dataclasses.replace(opts, on_crash=checked.on_crash)
    if opts.spool_dir is not None and opts.forward:
        _warn_orphans(opts.spool_dir, checked.workers, err)
    if checked.workers > 1:
        WorkerGroup(opts, checked, info, err).run()
        return
    _run_single(opts, checked, info, err)


def _warn_orphans(spool_dir: str, workers: int, err: Callable[[str], None]) -> None:
    from netconsolectl.receiver.sinks.reliable import orphaned_spools

    for path in orphaned_spools(spool_dir, workers):
        err(f"netconsolectl: warning: spool {path} is from a run with more workers and is "
            f"not replayed by this one; start once with --workers "
            f"{int(os.path.basename(path)[1:]) + 1} or more to deliver it")


def _run_single(opts: ReceiveOptions, checked: Checked, info: Callable[[str], None],
                err: Callable[[str], None]) -> None:
    sock = bind_socket(opts, reuseport=opts.reuseport)
    sinks = build_sinks(opts, err=err)
    fleet = checked.fleet
    if fleet is not None:
        serve_metrics(opts, fleet, info)

    def report(values: dict[str, int], final: bool) -> None:
        emit_counters(opts, info, values)

    server = make_server(opts, sock, sinks, checked.allow, report)
    if fleet is not None:
        server.periodic = _fleet_periodic(server, fleet)
    _serve_until_stopped(
        server, lambda: info(f"listening on udp {bound_address(sock)} (pid {os.getpid()})"))


def _serve_until_stopped(server: Server, ready: Callable[[], None] | None = None) -> None:
    """Signals installed (then ``ready()``), receive until stopped; the ``--on-crash`` runner is
    closed however the loop ends."""
    wakeup = server.install_signals()
    if ready is not None:
        ready()
    try:
        server.serve(wakeup)
    finally:
        if server.processor.crash_hook is not None:
            server.processor.crash_hook.close()


def _fleet_periodic(server: Server, fleet: FleetStats) -> Callable[[float], None]:
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

    return periodic


def _fleet(opts: ReceiveOptions) -> FleetStats | None:
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


def _reverse(opts: ReceiveOptions) -> object:
    """The resolver of ``--reverse-dns`` (one per process: its thread does not survive fork)."""
    if not opts.reverse_dns:
        return None
    from netconsolectl.receiver.names import ReverseNames

    return ReverseNames()


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


def serve_metrics(opts: ReceiveOptions, fleet: FleetStats, info: Callable[[str], None]
                  ) -> int | None:
    """Start the metrics server; returns its listening socket's descriptor."""
    if opts.metrics is None:
        return None
    from netconsolectl.receiver.metrics import serve

    host, port, fd = serve(fleet, opts.metrics)
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    info(f"metrics on http://{shown}/metrics")
    return fd


def emit_counters(opts: ReceiveOptions, info: Callable[[str], None], values: dict[str, int]
                  ) -> None:
    """Counters: one line on stderr, and a ``counters`` object on stdout with ``--json``."""
    info("counters: " + " ".join(f"{k}={v}" for k, v in values.items()))
    if opts.json and not opts.quiet:
        w = FdWriter(sys.stdout.fileno())
        w.write(_counters_line(values))
        w.flush()


# -- several receiving processes ----------------------------------------------------------------


class WorkerGroup:
    """``--workers N``: N forked processes, each with its own SO_REUSEPORT socket and outputs,
    under a :class:`~netconsolectl.receiver.supervisor.Supervisor`.

    The kernel picks the socket by the source address (:func:`spread_by_address`), so each
    source's stream (sequence tracking, fragments) stays in one process. With
    ``--metrics``/``--silence``/``--expect`` each worker also sends its per-host deltas once a
    second; the parent merges them into one :class:`FleetStats`, serves the metrics from it and
    reports silent hosts through outputs of its own (standard output lines stay whole: every
    writer writes whole lines of at most PIPE_BUF bytes).
    """

    def __init__(self, opts: ReceiveOptions, checked: Checked, info: Callable[[str], None],
                 err: Callable[[str], None]) -> None:
        self.opts = opts
        self.n = checked.workers
        self.allow = checked.allow
        self.fleet = checked.fleet
        self.info = info
        self.err = err
        self.parent_sinks: list[Sink] = []
        self.next_check = 0.0
        # Memory limits are totals: each worker gets its share.
        self.per_worker = dataclasses.replace(
            opts,
            max_sources=max(1, opts.max_sources // self.n),
            max_pending=max(1, opts.max_pending // self.n),
            max_pending_bytes=max(1 << 20, opts.max_pending_bytes // self.n),
        )
        self.socks: list[socket.socket] = []

    def bind(self) -> None:
        opts = self.opts
        if opts.port and not opts.reuseport:
            # SO_REUSEPORT would let this group share the port with another receiver of the
            # same user, splitting the traffic between them without a word. A plain bind first
            # makes "address already in use" an error as it is for one process.
            bind_socket(opts).close()
        first = bind_socket(opts, reuseport=True)
        port = first.getsockname()[1]
        self.socks = [first] + [bind_socket(opts, port, reuseport=True)
                                for _ in range(self.n - 1)]
        if not opts.reuseport:  # the group's indexes are ours alone only without --reuseport
            spread_by_address(first, self.n)  # socks[i] is index i of the group: worker i

    def run(self) -> None:
        from netconsolectl.receiver.supervisor import Supervisor

        for s in build_sinks(self.opts, check_only=True):  # outputs valid before any fork
            s.close()
        self.bind()
        sup = Supervisor(self.n, self.worker, err=self.err, on_line=self.on_stats,
                         on_tick=self.tick, on_hup=self.reopen,
                         on_round=lambda totals: emit_counters(self.opts, self.info, totals))
        self.sup = sup
        sup.install_signals()
        try:
            sup.start()  # the parent keeps the sockets: a restarted worker takes its own again
            self.start_parent_outputs(sup)
            self.info(f"listening on udp {bound_address(self.socks[0])} "
                      f"(pid {os.getpid()}, {self.n} workers)")
            sup.watch()
        finally:
            if sup.workers:  # an error in the parent: the workers go with it
                sup.stop()
            sup.restore_signals()
            sup.close()
        for s in self.parent_sinks:
            s.close()
        emit_counters(self.opts, self.info, sup.totals())

    def start_parent_outputs(self, sup: Supervisor) -> None:
        if self.fleet is None:
            return
        metrics_socket = serve_metrics(self.opts, self.fleet, self.info)
        if metrics_socket is not None:
            sup.keep_fds.append(metrics_socket)
        if self.fleet.silence is not None:
            # a worker index of its own: a spooled forwarder gets a spool of its own
            self.parent_sinks = build_sinks(self.opts, atomic_lines=True, worker=self.n,
                                            err=self.err)

    # -- in the parent -------------------------------------------------------------------------

    def on_stats(self, index: int, line: dict[str, Any]) -> None:
        assert self.fleet is not None
        events = self.fleet.add(line["delta"], time.time(), index)
        self.fleet.counters = self.sup.totals()
        self.to_parent_sinks(events)

    def to_parent_sinks(self, events: list[Event]) -> None:
        for e in events:
            for s in self.parent_sinks:
                s.event(e)

    def tick(self) -> None:
        if self.fleet is None or time.monotonic() < self.next_check:
            return
        self.next_check = time.monotonic() + 1.0
        self.to_parent_sinks(self.fleet.check_silence(time.time()))
        for s in self.parent_sinks:
            s.flush()

    def reopen(self) -> None:
        for s in self.parent_sinks:
            s.flush()
            s.reopen()

    # -- in a worker ---------------------------------------------------------------------------

    def worker(self, index: int, channel: int) -> None:
        from netconsolectl.receiver.supervisor import Channel

        for j, s in enumerate(self.socks):
            if j != index:
                s.close()
        opts = self.per_worker
        sinks = build_sinks(opts, atomic_lines=True, worker=index, err=self.err)

        def report(values: dict[str, int], final: bool) -> None:
            Channel.send(channel, {"kind": "counters", "final": final, "counters": values})

        server = make_server(opts, self.socks[index], sinks, self.allow, report, index)
        if self.fleet is not None:
            server.periodic = _stats_sender(server, channel)
        _serve_until_stopped(server)


def _stats_sender(server: Server, channel: int) -> Callable[[float], None]:
    from netconsolectl.receiver.supervisor import Channel

    proc = server.processor

    def periodic(now: float) -> None:
        from netconsolectl.receiver.fleet import make_delta

        proc.sync_counters()
        Channel.send(channel, {"kind": "stats", "counters": proc.counters.values,
                               "delta": make_delta(*proc.take_host_stats())})

    return periodic

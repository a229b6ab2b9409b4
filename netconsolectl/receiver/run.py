"""``netconsolectl listen`` as a library call: options in, a running receiver until a signal."""

from __future__ import annotations

import errno
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from netconsolectl.errors import InvalidInput, KernelRefused, PermissionDenied
from netconsolectl.receiver.core import Processor, Sink
from netconsolectl.receiver.output import FdWriter
from netconsolectl.receiver.server import Server, bound_address, open_socket, parse_cidrs


@dataclass
class Options:
    bind: str | None = None
    port: int = 6666
    json: bool = False
    output_dir: str | None = None
    forward: list[str] = field(default_factory=list)
    allow: list[str] = field(default_factory=list)
    quiet: bool = False
    timeout: float = 2.0
    max_sources: int = 65536
    max_pending: int = 4096
    max_pending_bytes: int = 32 << 20
    rcvbuf: int = 32 << 20
    workers: int = 1


def build_sinks(opts: Options, *, atomic_lines: bool = False) -> list[Sink]:
    """The outputs asked for, standard output first. Raises InvalidInput/Unavailable."""
    sinks: list[Sink] = []
    if not opts.quiet:
        out = FdWriter(sys.stdout.fileno(), atomic_lines=atomic_lines)
        if opts.json:
            from netconsolectl.receiver.sinks.jsonl import JsonSink

            sinks.append(JsonSink(out))
        else:
            from netconsolectl.receiver.sinks.text import HumanSink

            sinks.append(HumanSink(out))
    if opts.output_dir is not None:
        from netconsolectl.receiver.sinks.text import FileSink

        try:
            sinks.append(FileSink(opts.output_dir))
        except OSError as e:
            raise InvalidInput(
                f"cannot use output directory {opts.output_dir}: {e.strerror}", errno=e.errno
            ) from None
    if opts.forward:
        from netconsolectl.receiver.sinks.forward import open_forwarder

        sinks.extend(open_forwarder(url) for url in opts.forward)
    return sinks


def bind_socket(opts: Options) -> socket.socket:
    try:
        return open_socket(opts.bind, opts.port, opts.rcvbuf)
    except ValueError:
        raise InvalidInput(f"--bind {opts.bind!r} is not an IP address") from None
    except OSError as e:
        where = f"{opts.bind or '[::]'} port {opts.port}"
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


def run(
    opts: Options,
    *,
    info: Callable[[str], None],
    err: Callable[[str], None],
) -> None:
    """Bind, announce ``listening on udp ADDR:PORT`` through ``info``, serve until a signal."""
    try:
        allow = parse_cidrs(opts.allow)
    except ValueError as e:
        raise InvalidInput(f"--allow: {e}") from None
    sinks = build_sinks(opts)
    sock = bind_socket(opts)
    processor = Processor(
        sinks,
        timeout=opts.timeout,
        max_sources=opts.max_sources,
        max_pending=opts.max_pending,
        max_pending_bytes=opts.max_pending_bytes,
    )
    json_sink = getattr(sinks[0], "counters", None) if sinks and opts.json else None

    def report(values: dict[str, int]) -> None:
        info("counters: " + " ".join(f"{k}={v}" for k, v in values.items()))
        if json_sink is not None:
            json_sink(values)
            sinks[0].flush()

    server = Server(sock, processor, allow=allow, report=report)
    if opts.json and not opts.quiet and len(sinks) == 1:
        from netconsolectl.receiver.fastpath import JsonFastPath
        from netconsolectl.receiver.sinks.jsonl import JsonSink

        sink = sinks[0]
        assert isinstance(sink, JsonSink)
        server.handler_factory = lambda resolve: JsonFastPath(processor, sink, resolve).feed_batch
    wakeup = server.install_signals()
    info(f"listening on udp {bound_address(sock)} (pid {os.getpid()})")
    server.serve(wakeup)

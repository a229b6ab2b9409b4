"""CLI listen: the netconsole receiver."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from netconsolectl.cli.base import command, err, info

Forward = Annotated[
    list[str] | None,
    typer.Option(
        "--forward",
        metavar="URL",
        help="Also hand every message to syslog+udp://HOST[:PORT], syslog+tcp://HOST[:PORT] "
        "(RFC 5424), relp://HOST[:PORT] (RFC 5424 over RELP, acknowledged), "
        "otlp+http[s]://HOST:PORT/v1/logs (OpenTelemetry) or journald[:///SOCKET] "
        "(repeatable). syslog+tcp, relp and otlp go through the spool.",
    ),
]
SpoolDir = Annotated[
    Path | None,
    typer.Option(
        "--spool-dir",
        metavar="DIR",
        help="Keep what syslog+tcp, relp and otlp forwarders have not delivered here, so a "
        "pipeline outage or a restart loses nothing [a temporary directory, removed at exit].",
    ),
]
SpoolMax = Annotated[
    int | None,
    typer.Option(
        "--spool-max-mib",
        min=1,
        help="Disk per forwarder (and worker) for the spool; when full, the oldest messages "
        "are dropped and counted (spool_dropped) [1024 with --spool-dir, else 64].",
        show_default=False,
    ),
]
Allow = Annotated[
    list[str] | None,
    typer.Option(
        "--allow",
        metavar="CIDR",
        help="Accept datagrams only from these networks; others are dropped and counted "
        "(repeatable).",
    ),
]


@command("listen")
def listen(
    bind: Annotated[
        str | None,
        typer.Option("--bind", metavar="ADDR", help="Address to listen on [all, IPv4 and IPv6]."),
    ] = None,
    port: Annotated[
        int,
        typer.Option(
            "--port", min=0, max=65535, help="UDP port; 0 picks a free one (see the ready line)."
        ),
    ] = 6666,
    json_out: Annotated[
        bool, typer.Option("--json", help="One JSON object per line on standard output.")
    ] = False,
    output_dir: Annotated[
        Path | None,
        typer.Option("--output-dir", metavar="DIR", help="Append to one log file per host here."),
    ] = None,
    forward: Forward = None,
    spool_dir: SpoolDir = None,
    spool_max_mib: SpoolMax = None,
    allow: Allow = None,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q",
            help="Nothing on standard output (with --output-dir or --forward; not with --json).",
        ),
    ] = False,
    color: Annotated[
        str,
        typer.Option(
            "--color",
            metavar="WHEN",
            help="Colour the lines by level: auto (on a terminal, unless NO_COLOR is set), "
            "always or never.",
            show_default=True,
        ),
    ] = "auto",
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            min=0.01,
            help="Seconds to wait for missing fragments or reordered messages before "
            "reporting them incomplete or lost.",
        ),
    ] = 2.0,
    max_sources: Annotated[
        int,
        typer.Option(
            "--max-sources",
            min=1,
            help="Sources tracked (in total over the workers); the least recent is evicted.",
        ),
    ] = 65536,
    max_pending: Annotated[
        int,
        typer.Option(
            "--max-pending", min=1, help="Fragmented messages held for reassembly (in total)."
        ),
    ] = 4096,
    max_pending_mib: Annotated[
        int,
        typer.Option(
            "--max-pending-mib", min=1, help="Memory for pending fragments, MiB (in total)."
        ),
    ] = 32,
    rcvbuf_mib: Annotated[
        int,
        typer.Option(
            "--rcvbuf-mib", min=1, help="Socket receive buffer, MiB (beyond rmem_max as root)."
        ),
    ] = 32,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=0,
            help="Receiving processes sharing the port (SO_REUSEPORT; each source stays with "
            "one); 0 means one per CPU, at most 4.",
        ),
    ] = 0,
) -> None:
    """Receive netconsole messages: parse, reassemble, detect loss, print or forward.

    A line 'netconsolectl: listening on udp ADDR:PORT (pid N)' on standard error says the
    socket is bound. SIGUSR1 prints the counters; SIGINT/SIGTERM flush everything and exit.
    """
    from netconsolectl.receiver.run import Options, run

    opts = Options(
        bind=bind,
        port=port,
        json=json_out,
        output_dir=str(output_dir) if output_dir is not None else None,
        forward=list(forward or []),
        allow=list(allow or []),
        quiet=quiet,
        color=color,
        timeout=timeout,
        max_sources=max_sources,
        max_pending=max_pending,
        max_pending_bytes=max_pending_mib << 20,
        rcvbuf=rcvbuf_mib << 20,
        workers=workers,
        spool_dir=str(spool_dir) if spool_dir is not None else None,
        spool_max_bytes=None if spool_max_mib is None else spool_max_mib << 20,
    )
    run(opts, info=info, err=err)

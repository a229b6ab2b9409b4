"""CLI listen: the netconsole receiver."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from netconsolectl.cli.base import command, err, info
from netconsolectl.errors import InvalidInput
from netconsolectl.facts import DEFAULT_REMOTE_PORT

if TYPE_CHECKING:
    from netconsolectl.receiver.run import ReceiveOptions

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


Ignore = Annotated[
    list[str] | None,
    typer.Option(
        "--ignore",
        metavar="REGEX",
        help="Drop messages whose text matches (Python regular expression); counted as "
        "'ignored' (repeatable).",
    ),
]


ListenBind = Annotated[
    str | None,
    typer.Option("--bind", metavar="ADDR", help="Address to listen on [all, IPv4 and IPv6]."),
]
ListenPort = Annotated[
    int,
    typer.Option(
        "--port", min=0, max=65535, help="UDP port; 0 picks a free one (see the ready line)."
    ),
]
ListenJsonOut = Annotated[
    bool, typer.Option("--json", help="One JSON object per line on standard output.")
]
ListenOutputDir = Annotated[
    Path | None,
    typer.Option("--output-dir", metavar="DIR", help="Append to one log file per host here."),
]
ListenQuiet = Annotated[
    bool,
    typer.Option(
        "--quiet", "-q",
        help="Nothing on standard output (with --output-dir or --forward; not with --json).",
    ),
]
ListenColor = Annotated[
    str,
    typer.Option(
        "--color",
        metavar="WHEN",
        help="Colour the lines by level: auto (on a terminal, unless NO_COLOR is set), "
        "always or never.",
        show_default=True,
    ),
]
ListenTimeout = Annotated[
    float,
    typer.Option(
        "--timeout",
        min=0.01,
        help="Seconds to wait for missing fragments or reordered messages before "
        "reporting them incomplete or lost.",
    ),
]
ListenMaxSources = Annotated[
    int,
    typer.Option(
        "--max-sources",
        min=1,
        help="Sources tracked (in total over the workers); the least recent is evicted.",
    ),
]
ListenMaxPending = Annotated[
    int,
    typer.Option(
        "--max-pending", min=1, help="Fragmented messages held for reassembly (in total)."
    ),
]
ListenMaxPendingMib = Annotated[
    int,
    typer.Option(
        "--max-pending-mib", min=1, help="Memory for pending fragments, MiB (in total)."
    ),
]
ListenRcvbufMib = Annotated[
    int,
    typer.Option(
        "--rcvbuf-mib", min=1, help="Socket receive buffer, MiB (beyond rmem_max as root)."
    ),
]
ListenWorkers = Annotated[
    int,
    typer.Option(
        "--workers",
        min=0,
        help="Receiving processes sharing the port (SO_REUSEPORT; each source stays with "
        "one); 0 means one per CPU, at most 4.",
    ),
]
ListenOnCrash = Annotated[
    str | None,
    typer.Option(
        "--on-crash",
        metavar="CMD",
        help="Run CMD (split like a shell would, run without one) for each crash report, "
        "the event's JSON on its standard input.",
    ),
]
ListenOnCrashTimeout = Annotated[
    float,
    typer.Option("--on-crash-timeout", min=0.1, help="Seconds before an --on-crash "
                 "command is killed."),
]
ListenSilence = Annotated[
    float | None,
    typer.Option(
        "--silence",
        metavar="SECONDS",
        min=0.5,
        help="Report a host silent after SECONDS without a message, and again when it "
        "resumes.",
    ),
]
ListenExpect = Annotated[
    Path | None,
    typer.Option(
        "--expect",
        metavar="FILE",
        help="Addresses (one per line) counted as heard at start, so a host that never "
        "reports is reported silent too.",
    ),
]
ListenMetrics = Annotated[
    str | None,
    typer.Option(
        "--metrics",
        metavar="[ADDR:]PORT",
        help="Serve Prometheus metrics on http://ADDR:PORT/metrics.",
    ),
]
ListenMaxHosts = Annotated[
    int,
    typer.Option(
        "--max-hosts",
        min=1,
        help="Hosts with metric series and silence tracking of their own, the most "
        "recently heard; the others add up in host 'other'.",
    ),
]
ListenReuseport = Annotated[bool, typer.Option(
    "--reuseport", help="Share the port with other listen processes of this user "
    "(SO_REUSEPORT); the kernel keeps each sender with one of them.",
)]
ListenReverseDns = Annotated[bool, typer.Option(
    "--reverse-dns", help="Name senders without a hostname userdata key by their PTR "
    "record (metrics, --output-dir by-name links); looked up in the background.",
)]
ListenConfig = Annotated[
    Path | None,
    typer.Option(
        "--config",
        metavar="FILE",
        help="Read options from this TOML file (same names, e.g. output-dir = \"/var/log/"
        "netconsole\"); the command line wins.",
    ),
]
ListenInstallService = Annotated[
    bool,
    typer.Option(
        "--install-service",
        help="Install the systemd unit netconsolectl-listen.service running 'listen "
        "--config' (with --config FILE, or /etc/netconsolectl/listen.toml), then exit.",
    ),
]


@command("listen")
def listen(
    ctx: typer.Context,
    bind: ListenBind = None,
    port: ListenPort = DEFAULT_REMOTE_PORT,
    json_out: ListenJsonOut = False,
    output_dir: ListenOutputDir = None,
    forward: Forward = None,
    spool_dir: SpoolDir = None,
    spool_max_mib: SpoolMax = None,
    allow: Allow = None,
    quiet: ListenQuiet = False,
    color: ListenColor = "auto",
    timeout: ListenTimeout = 2.0,
    max_sources: ListenMaxSources = 65536,
    max_pending: ListenMaxPending = 4096,
    max_pending_mib: ListenMaxPendingMib = 32,
    rcvbuf_mib: ListenRcvbufMib = 32,
    workers: ListenWorkers = 0,
    ignore: Ignore = None,
    on_crash: ListenOnCrash = None,
    on_crash_timeout: ListenOnCrashTimeout = 60.0,
    silence: ListenSilence = None,
    expect: ListenExpect = None,
    metrics: ListenMetrics = None,
    max_hosts: ListenMaxHosts = 4096,
    reuseport: ListenReuseport = False,
    reverse_dns: ListenReverseDns = False,
    config: ListenConfig = None,
    install_service: ListenInstallService = False,
) -> None:
    """Receive netconsole messages: parse, reassemble, detect loss, print or forward.

    A line 'netconsolectl: listening on udp ADDR:PORT (pid N)' on standard error says the
    socket is bound. Kernel crash reports (panic, oops, BUG, WARNING, lockups, RCU stalls,
    hung tasks, OOM kills) also come as one 'crash' event each. SIGUSR1 prints the counters;
    SIGHUP reopens the --output-dir files; SIGINT/SIGTERM flush everything and exit.
    """
    if install_service:
        from netconsolectl.receiver.service import DEFAULT_CONFIG, install

        done = install(config=str(config.absolute()) if config is not None else DEFAULT_CONFIG)
        for line in done:
            info(line)
        return
    v: dict[str, Any] = {
        "bind": bind, "port": port, "json_out": json_out, "output_dir": output_dir,
        "forward": forward, "allow": allow, "quiet": quiet, "color": color, "timeout": timeout,
        "max_sources": max_sources, "max_pending": max_pending,
        "max_pending_mib": max_pending_mib, "rcvbuf_mib": rcvbuf_mib, "workers": workers,
        "spool_dir": spool_dir, "spool_max_mib": spool_max_mib,
        "ignore": ignore, "on_crash": on_crash, "on_crash_timeout": on_crash_timeout,
        "silence": silence, "expect": expect, "metrics": metrics, "max_hosts": max_hosts,
        "reuseport": reuseport, "reverse_dns": reverse_dns,
    }  # fmt: skip
    if config is not None:
        v.update(config_values(ctx, config, set(v)))
    from netconsolectl.receiver.run import run

    run(receive_options(v), info=info, err=err)


def _split_on_crash(value: str | list[str] | None) -> list[str]:
    """``--on-crash``: split like a shell would (a TOML array is already an argv)."""
    if not isinstance(value, str):
        return list(value or [])
    import shlex

    try:
        return shlex.split(value)
    except ValueError as e:
        raise InvalidInput(f"--on-crash: {e}") from None


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def receive_options(v: dict[str, Any]) -> ReceiveOptions:
    """The receiver's options from the command line's values (after ``--config``)."""
    from netconsolectl.receiver.run import ReceiveOptions

    return ReceiveOptions(
        bind=v["bind"], port=v["port"], json=v["json_out"],
        output_dir=_str_or_none(v["output_dir"]),
        forward=list(v["forward"] or []), allow=list(v["allow"] or []),
        quiet=v["quiet"], color=v["color"], timeout=v["timeout"],
        max_sources=v["max_sources"], max_pending=v["max_pending"],
        max_pending_bytes=v["max_pending_mib"] << 20, rcvbuf=v["rcvbuf_mib"] << 20,
        workers=v["workers"], spool_dir=_str_or_none(v["spool_dir"]),
        spool_max_bytes=None if v["spool_max_mib"] is None else v["spool_max_mib"] << 20,
        ignore=list(v["ignore"] or []), on_crash=_split_on_crash(v["on_crash"]),
        on_crash_timeout=v["on_crash_timeout"], silence=v["silence"],
        expect=_str_or_none(v["expect"]), metrics=v["metrics"], max_hosts=v["max_hosts"],
        reuseport=v["reuseport"], reverse_dns=v["reverse_dns"],
    )  # fmt: skip


def _read_config(path: Path) -> dict[str, Any]:
    """The TOML table of ``--config``; as root, refused when others could write it (it names
    the --on-crash command and where every message goes). Raises InvalidInput, UnsafeConfig."""
    import tomllib

    from netconsolectl.hostutil import check_root_owned

    try:
        check_root_owned(path, "--config", "make the receiver run any command as root or send "
                         "the kernel log anywhere")
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise InvalidInput(f"--config {path}: {e.strerror}", errno=e.errno) from None
    except tomllib.TOMLDecodeError as e:
        raise InvalidInput(f"--config {path}: {e}") from None


def _by_option(ctx: typer.Context, names: set[str]) -> dict[str, Any]:
    """listen's parameters by long option name (without ``--``)."""
    found = {}
    for param in ctx.command.params:
        for opt in param.opts:
            if opt.startswith("--") and param.name in names:
                found[opt[2:]] = param
    return found


def config_values(ctx: typer.Context, path: Path, names: set[str]) -> dict[str, Any]:
    """Options from a TOML file: keys are the long option names without ``--``; values are
    checked like the command line's. Options given on the command line are left alone.
    Raises InvalidInput."""
    from typer._click.core import ParameterSource

    by_option = _by_option(ctx, names)
    out: dict[str, Any] = {}
    for key, value in _read_config(path).items():
        param = by_option.get(key)
        if param is None:
            raise InvalidInput(
                f"--config {path}: unknown option {key!r}",
                hint="keys are listen's long option names without --, e.g. output-dir",
            )
        name = param.name
        if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None):
            continue  # the command line wins
        if key == "on-crash" and isinstance(value, list):
            out[name] = [str(x) for x in value]  # an argv as a TOML array
            continue
        if param.multiple and not isinstance(value, list):
            value = [value]
        try:
            out[name] = param.type_cast_value(ctx, value)
        except Exception as e:  # click's BadParameter and friends
            message = getattr(e, "message", None) or str(e)
            raise InvalidInput(f"--config {path}: {key}: {message}") from None
    return out

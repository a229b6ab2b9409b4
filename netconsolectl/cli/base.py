"""The typer application, its global options, and the one place errors become exit codes.

Command modules (``netconsolectl.cli.targets`` and friends) register their commands on
:data:`app` with :func:`command`, which wraps each command so that a
:class:`~netconsolectl.errors.NetconsoleError` becomes one line on stderr (plus a hint) and its
exit code; anything unexpected is one line too, with the traceback only under ``--debug``.
Heavy libraries (pyroute2, scapy) are imported inside the commands that need them.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from typer.core import TyperGroup

from netconsolectl import __version__
from netconsolectl.cli.output import err, info, report, run_reporting, warn
from netconsolectl.host.system import System
from netconsolectl.sender.configfs import DEFAULT_ROOT, ConfigFS
from netconsolectl.sender.root import open_configfs

__all__ = ["Invocation", "Json", "app", "command", "err", "info", "out", "state", "warn"]

EXIT_CODES_HELP = (
    "Exit codes: 0 success; 1 the kernel or system refused; 2 invalid input, nothing written; "
    "3 no such target; 4 target already exists; 69 netconsole/configfs unavailable; "
    "77 permission denied; 78 unsafe configuration file (writable by others than root)."
)

#: ``--help`` lists the everyday commands first, then the runbook and diagnosis ones; a
#: command not named here comes last, in the order it was registered.
COMMAND_ORDER = (
    "add", "list", "show", "set", "enable", "disable", "remove", "listen",
    "setup", "apply", "export", "persist", "cmdline", "watch",
    "loglevel", "test", "doctor", "resolve",
)  # fmt: skip


def _option_metavar(p: Any) -> str:
    """One placeholder style for every value: an upper-case word saying what to give."""
    name = p.name or ""
    choices = getattr(p.type, "choices", None)
    if choices:
        return "|".join(str(c) for c in choices)
    if name.endswith("port"):
        return "PORT"
    if name.endswith("_ip"):
        return "IP"
    if name.endswith("mac"):
        return "MAC"
    if name == "dev":
        return "IFACE"
    kind = getattr(p.type, "name", "")
    if kind.startswith("float"):
        return "SECONDS"
    if name.endswith("_mib"):
        return "MIB"
    if kind.startswith("int"):
        return "N"
    return name.upper()


def _uniform_metavars(cmd: Any) -> None:
    """Replace typer's ``<int range>``, ``<str>`` and ``{name}`` with the style of the
    explicit metavars (``NAME``, ``[FILE]``, ``KEY=VALUE``)."""
    from typer.core import TyperArgument

    for p in cmd.params:
        if isinstance(p, TyperArgument):
            if p.metavar is None:
                word = (p.name or "").upper() + ("..." if p.nargs != 1 else "")
                p.metavar = word if p.required else f"[{word}]"
            # typer puts a required argument in braces in the usage line; NAME is the habit
            setattr(p, "make_metavar",  # noqa: B010
                    functools.partial(lambda word, ctx, usage=False: word, p.metavar))
        elif not getattr(p, "is_flag", False) and not getattr(p, "count", False):
            if p.metavar is None:
                p.metavar = _option_metavar(p)
            elif p.metavar == "S":
                p.metavar = "SECONDS"


class _OneLineErrors(TyperGroup):
    """Usage errors (unknown option, bad value) as one line on stderr, exit 2, like ours.

    Also lists the commands in :data:`COMMAND_ORDER` and gives every placeholder one style.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _uniform_metavars(self)
        for sub in self.commands.values():
            _uniform_metavars(sub)

    def list_commands(self, ctx: Any) -> list[str]:
        names = list(self.commands)
        rank = {n: i for i, n in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda n: (rank.get(n, len(rank)), names.index(n)))

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **kwargs: Any,
    ) -> Any:
        from netconsolectl.cli.argv import hoist_global_options

        args = hoist_global_options(sys.argv[1:] if args is None else args)

        def run(standalone: bool) -> Any:
            return super(_OneLineErrors, self).main(
                args, prog_name, complete_var, standalone_mode=standalone, **kwargs
            )

        if not standalone_mode:
            return run(False)
        from typer._click.exceptions import ClickException  # vendored click

        try:
            rv = run(False)
        except SystemExit:
            # typer turns a closed pipe while printing help into exit 1 and wraps the streams;
            # report it as every command does (see output_failed).
            if type(sys.stdout).__name__ == "PacifyFlushWrapper":
                from netconsolectl.cli.output import EXIT_BROKEN_PIPE

                sys.exit(EXIT_BROKEN_PIPE)
            raise
        except (ClickException, typer.Abort) as e:
            _exit_on_click_error(e)
        sys.exit(rv if isinstance(rv, int) else 0)


def _exit_on_click_error(e: Exception) -> NoReturn:
    """One line for what click refuses (usage, bad values, an abort), and its exit code."""
    from typer._click.exceptions import ClickException, UsageError

    if isinstance(e, UsageError):
        if type(e).__name__ == "NoArgsIsHelpError":  # bare `netconsolectl`: show help
            e.show()
            sys.exit(e.exit_code)
        where = e.ctx.command_path if e.ctx else "netconsolectl"
        err(f"netconsolectl: error: {e.format_message()} (hint: see `{where} --help`)")
        sys.exit(e.exit_code)
    if isinstance(e, ClickException):
        err(f"netconsolectl: error: {e.format_message()}")
        sys.exit(e.exit_code)
    err("netconsolectl: error: aborted")
    sys.exit(1)


app = typer.Typer(
    name="netconsolectl",
    cls=_OneLineErrors,
    help="Send this machine's kernel log to another machine with netconsole, correctly on the "
    "first try.\n\n" + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass
class Invocation:
    """Per-invocation state handed to every command through ``ctx.obj``."""

    system: System = field(default_factory=System)
    debug: bool = False

    @property
    def fs(self) -> ConfigFS:
        return self.system.configfs


def _version(value: bool) -> None:
    if value:
        typer.echo(f"netconsolectl {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    ctx: typer.Context,
    configfs_root: Annotated[
        str,
        typer.Option(
            "--configfs-root",
            envvar="NETCONSOLECTL_CONFIGFS_ROOT",
            metavar="PATH",
            help="configfs mount point (a sandbox directory for tests); also accepted after "
            "the command name.",
            show_default=True,
        ),
    ] = str(DEFAULT_ROOT),
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks on errors (anywhere on the line).")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    if not configfs_root:
        from netconsolectl.errors import InvalidInput

        raise typer.Exit(report(InvalidInput(
            "--configfs-root is empty",
            hint="give a directory, or leave the option out for /sys/kernel/config")))
    root = Path(configfs_root)
    # Tests inject a System (for instance one backed by the kernel-faithful fake) as obj;
    # an explicit --configfs-root still wins over the injected root.
    if isinstance(ctx.obj, System):
        system = ctx.obj
        if root != DEFAULT_ROOT and root != system.configfs.root:
            system.configfs = open_configfs(root)
            announce_sandbox(system.configfs)
            _sandboxed(system)
    else:
        system = System(configfs=open_configfs(root))
        announce_sandbox(system.configfs)
        _sandboxed(system)
    ctx.obj = Invocation(system=system, debug=debug or bool(os.environ.get("NETCONSOLECTL_DEBUG")))


def _sandboxed(system: System) -> None:
    """A sandbox root writes nothing of the host's: /proc and /dev/kmsg go under it too."""
    if system.configfs.emulated and not system.configfs.is_default_root:
        system.sandbox = system.configfs.root


Json = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def out(line: str = "") -> None:
    """One line of the command's result on standard output."""
    sys.stdout.write(line + "\n")


def announce_sandbox(fs: ConfigFS) -> None:
    """Say once, on stderr, that the root is a sandbox and which kernel it emulates."""
    from netconsolectl.cli.output import sandbox_note

    note = sandbox_note(fs)
    if note:
        info(note)


def state(ctx: typer.Context) -> Invocation:
    obj = ctx.find_object(Invocation)
    assert obj is not None, "global callback did not run"
    return obj


F = TypeVar("F", bound=Callable[..., Any])

def command(*args: Any, **kwargs: Any) -> Callable[[F], F]:
    """``app.command`` plus translation of library errors into one line and an exit code."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*a: Any, **kw: Any) -> Any:
            ctx = kw.get("ctx") or next((x for x in a if hasattr(x, "find_object")), None)
            st = ctx.find_object(Invocation) if ctx is not None else None
            code = run_reporting(lambda: fn(*a, **kw), debug=bool(st and st.debug),
                                 passthrough=(typer.Exit, typer.Abort))
            if code:
                raise typer.Exit(code)

        app.command(*args, **kwargs)(wrapper)
        return fn

    return decorate

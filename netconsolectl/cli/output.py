"""Messages on stderr, shared by the typer commands and the fast read-only path (no typer)."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from netconsolectl.errors import NetconsoleError

if TYPE_CHECKING:
    from netconsolectl.sender.configfs import ConfigFS

#: Errors writing standard output (a closed pipe, a full disk): every command, typer's or the
#: read-only fast path, handles them with :func:`output_failed`.
OUTPUT_ERRNOS = (errno.EPIPE, errno.ENOSPC, errno.EDQUOT, errno.EFBIG)

#: Exit status when the reader of standard output went away: what a command killed by SIGPIPE
#: reports (128 + 13), as ``ls | true`` does.
EXIT_BROKEN_PIPE = 141


#: Whether the running command changed the system (see :func:`changed`).
_made_changes = [False]


def changed() -> None:
    """Record that the command changed something: from then on a failure to write its report
    (a closed pipe, a full disk) is said on stderr but does not turn the exit status into a
    failure, since a runbook retrying on that status would do the change twice."""
    _made_changes[0] = True


def made_changes() -> bool:
    return _made_changes[0]


def err(message: str) -> None:
    """One line to stderr, never interpreted as markup."""
    try:
        sys.stderr.write(message.rstrip("\n") + "\n")
        sys.stderr.flush()
    except OSError:  # nowhere left to say it
        pass


def output_failed(e: OSError) -> int | None:
    """An error writing standard output, handled once for every command: a closed pipe
    (``netconsolectl list | head -1``) ends the command quietly, a full disk or an I/O error is
    one line and exit 1. None for any other error. Standard output is pointed at /dev/null so
    the interpreter's last flush does not fail again."""
    import os

    if made_changes() and e.errno in (*OUTPUT_ERRNOS, errno.EIO):
        err(f"netconsolectl: error: the change was made, but its report could not be written: "
            f"{os.strerror(e.errno or 0).lower()}")
        code = 0
    elif e.errno == errno.EPIPE:
        code = EXIT_BROKEN_PIPE
    elif e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO):
        where = f" {e.filename}" if e.filename else " output"
        err(f"netconsolectl: error: cannot write{where}: {os.strerror(e.errno).lower()}")
        code = 1
    else:
        return None
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return code


def info(message: str) -> None:
    err(f"netconsolectl: {message}")


def warn(message: str) -> None:
    err(f"netconsolectl: warning: {message}")


def report(e: NetconsoleError, context: str = "") -> int:
    """Print an error as one line (the hint rides on it); return its exit code.

    The only place a project error is printed. ``context`` names what failed when one command
    reports several (``apply``: the target).
    """
    err(f"netconsolectl: error: {context}{e}" + (f" (hint: {e.hint})" if e.hint else ""))
    return e.exit_code


def report_permission(e: PermissionError) -> int:
    from netconsolectl.errors import EXIT_NOPERM, RUN_AS_ROOT

    where = f": {e.filename}" if e.filename else ""
    err(f"netconsolectl: error: permission denied{where} (hint: {RUN_AS_ROOT})")
    return EXIT_NOPERM


def run_reporting(fn: Callable[[], object], *, debug: bool = False,
                  passthrough: tuple[type[BaseException], ...] = ()) -> int:
    """Run a command; any error becomes one line on stderr and its exit code (0: success).

    Used by every typer command and by the typer-free fast path alike. ``debug`` shows the
    traceback; ``passthrough`` exceptions (typer's own exits) are re-raised untouched.
    """
    _made_changes[0] = False
    try:
        fn()
    except passthrough:
        raise
    except NetconsoleError as e:
        if debug:
            import traceback

            traceback.print_exc()
        return report(e)
    except PermissionError as e:  # reading or writing somewhere only root may
        if debug:
            raise
        return report_permission(e)
    except Exception as e:  # the last line of defence: one line, no traceback
        if isinstance(e, OSError) and e.errno in OUTPUT_ERRNOS:
            code = output_failed(e)  # here rather than in main(): typer would make it exit 1
            if code is not None:
                return code
        if debug:
            raise
        err(f"netconsolectl: error: unexpected {type(e).__name__}: {e} "
            "(hint: run again with --debug for a traceback)")
        return 1
    return 0


def sandbox_note(fs: ConfigFS) -> str | None:
    """The one line that says a root is a sandbox (None for the kernel's configfs)."""
    if not fs.emulated:
        return None
    return (f"{fs.root} is not a configfs mount: using it as a sandbox that emulates the "
            f"netconsole of Linux {fs.kernel_release()} (NETCONSOLECTL_SANDBOX_KERNEL=6.1, "
            "6.12, 6.18 or 7.3 chooses another)")

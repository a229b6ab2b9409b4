"""Host utilities every layer uses, each written once: the atomic file writer, the runner of
system commands, and the kernel release.

Standard library and :mod:`netconsolectl.errors` only (the receiver uses them too, and it never
loads the sender's code). Failures are the typed errors of :mod:`netconsolectl.errors`, built
by :func:`~netconsolectl.errors.from_oserror` where an errno decides.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from netconsolectl.errors import (
    RUN_AS_ROOT,
    KernelRefused,
    NetconsoleError,
    PermissionDenied,
    Unavailable,
)

NEW_FILE_MODE = 0o644


def write_atomic(path: Path | str, data: str | bytes, *, mode: int | None = None,
                 keep_owner: bool = True) -> None:
    """Replace ``path`` with ``data`` whole or not at all.

    A temporary file in the same directory gets the data and is synced, renamed over ``path``,
    and the directory is synced, so a crash leaves either the old file or the new one, never a
    mix or nothing. ``mode``: the new file's (default: the old file's, 0644 for a new one, never
    the umask's). With ``keep_owner`` the old file's owner and group stay (when permitted);
    without, the file belongs to the writer (a configuration file written as root must be
    root's). Raises OSError; the temporary file never stays behind.
    """
    import tempfile

    p = Path(path)
    try:
        old: os.stat_result | None = p.stat()
    except FileNotFoundError:
        old = None
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode if mode is not None
                      else (old.st_mode & 0o7777 if old else NEW_FILE_MODE))
            if keep_owner and old is not None and (old.st_uid, old.st_gid) != (
                    os.geteuid(), os.getegid()):
                with contextlib.suppress(PermissionError):  # only root may give a file away
                    os.fchown(f.fileno(), old.st_uid, old.st_gid)
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _sync_dir(p.parent)


def _sync_dir(directory: Path) -> None:
    # The rename is durable once the directory's entry is on disk (fsync(2) of the directory).
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return  # a directory that cannot be opened for reading cannot be synced either
    try:
        with contextlib.suppress(OSError):  # some filesystems refuse fsync on a directory
            os.fsync(dfd)
    finally:
        os.close(dfd)


def update_file(path: Path | str, text: str, *, mode: int | None = None) -> bool:
    """Write ``text`` to ``path`` (creating its directory) unless it is there already.

    True when written. Atomic as :func:`write_atomic`; raises OSError.
    """
    p = Path(path)
    try:
        if p.read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    p.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(p, text, mode=mode)
    return True


def run_command(argv: Sequence[str], what: str, *, missing_hint: str | None = None,
                refused: type[NetconsoleError] = KernelRefused,
                hint: str | None = None) -> str:
    """Run a system command to its end; its standard output.

    ``what`` starts every message (``cannot load module netconsole``). A missing program is
    Unavailable (``missing_hint``); a failure is PermissionDenied when not run as root (the
    usual cause), else ``refused`` with ``hint``; the message ends with the command's stderr.
    """
    import subprocess  # only the commands that change things pay for it

    try:
        res = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise Unavailable(f"{what}: {argv[0]} not found", hint=missing_hint) from None
    if res.returncode != 0:
        msg = f"{what}: {res.stderr.strip() or f'{argv[0]} exit status {res.returncode}'}"
        if os.geteuid() != 0:
            raise PermissionDenied(msg, hint=RUN_AS_ROOT)
        raise refused(msg, hint=hint)
    return res.stdout


def kernel_release(proc: Path | str = "/proc") -> str | None:
    """The running kernel's release as ``uname -r`` prints it; None when unreadable.

    Read from ``proc`` (``sys/kernel/osrelease``, the string uname(2) returns) so that tests and
    sandboxes can inject it with the rest of /proc.
    """
    try:
        return (Path(proc) / "sys/kernel/osrelease").read_text().strip() or None
    except OSError:
        return None

"""Host utilities every layer uses, each written once: the atomic file writer, the runner of
system commands, the kernel release, and the rule for files root may trust.

Standard library and :mod:`netconsolectl.errors` only (the receiver uses them too, and it never
loads the sender's code). Failures are the typed errors of :mod:`netconsolectl.errors`, built
by :func:`~netconsolectl.errors.from_oserror` where an errno decides.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from netconsolectl.errors import (
    RUN_AS_ROOT,
    KernelRefused,
    NetconsoleError,
    PermissionDenied,
    Unavailable,
    UnsafeConfig,
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


# -- files root may trust -------------------------------------------------------------------
# Run as root, netconsolectl reads files that decide what runs and where the kernel log goes:
# apply's and watch's configuration, listen's configuration, its --on-crash executable, and the
# --output-dir and --spool-dir it creates files in. A local user who can write any of them, or
# replace one through a directory above it, could make root run a command, send the kernel log
# anywhere, append network text to a file of their choice through a planted symbolic link, or
# inject records that are forwarded as kernel messages. The rule is sshd's StrictModes: the path
# and every directory above it (symbolic links resolved, and the path as given) must be owned by
# root and not writable by group or others; a directory above may be world-writable with the
# sticky bit (/tmp), the one files are created in may not.


def _owner(uid: int) -> str:
    import pwd

    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def _refuse(what: str, path: Path, culprit: Path, st: os.stat_result, verb: str, why: str
            ) -> UnsafeConfig:
    """``refusing --config F: D is owned by uid 0 (root), mode 0777: others than
    root could replace it and ...``."""
    who = _owner(st.st_uid) + " could" if st.st_uid != 0 else "others than root could"
    place = "" if culprit == path else f"{culprit} is "
    return UnsafeConfig(
        f"refusing {what + ' ' if what else ''}{path}: {place}owned by {_owner(st.st_uid)}, "
        f"mode {stat.S_IMODE(st.st_mode):04o}{_writable_by(st)}: {who} {verb} and {why}",
        hint=f"chown root: {culprit}" if st.st_uid != 0 else f"chmod go-w {culprit}",
    )


def _writable_by(st: os.stat_result) -> str:
    g, o = st.st_mode & 0o020, st.st_mode & 0o002
    who = "group and others" if g and o else "others" if o else "its group" if g else ""
    return f" (writable by {who})" if who else ""


def _unsafe(st: os.stat_result, sticky_ok: bool) -> bool:
    writable = bool(st.st_mode & 0o022) and not (sticky_ok and st.st_mode & stat.S_ISVTX)
    return st.st_uid != 0 or writable


def _check_parents(what: str, path: Path, start: Path, why: str) -> None:
    for d in start.parents:
        st = os.stat(d)
        if _unsafe(st, sticky_ok=True):
            raise _refuse(what, path, d, st, "replace what is in it", why)


def check_root_owned(path: str | Path, what: str, why: str, *, creates_files: bool = False,
                     strict: bool | None = None) -> None:
    """Refuse (:class:`~netconsolectl.errors.UnsafeConfig`, exit 78) ``path`` when someone other
    than root could write it or a directory above it. ``what`` names the option (``--config``),
    ``why`` what such a user could then do. A path that does not exist yet is judged by the
    directories above it (the receiver creates it as root). Only as root, unless ``strict``."""
    if strict is None:
        strict = os.geteuid() == 0
    if not strict:
        return
    given = Path(os.path.abspath(path))
    real = Path(os.path.realpath(given))
    _check_parents(what, given, given, why)
    if real != given:
        _check_parents(what, given, real, why)
    try:
        st = os.stat(real)
    except FileNotFoundError:
        # The receiver creates it (and the directories missing on the way) in the nearest
        # one that exists: nobody else may create there first, sticky bit or not.
        d = next(p for p in real.parents if os.path.exists(p))
        st = os.stat(d)
        if _unsafe(st, sticky_ok=False):
            raise _refuse(what, given, d, st, "create it first", why) from None
        return
    is_dir = stat.S_ISDIR(st.st_mode)
    if _unsafe(st, sticky_ok=is_dir and not creates_files):
        verb = "plant files in it" if is_dir else "write it"
        raise _refuse(what, given, real if real != given else given, st, verb, why)

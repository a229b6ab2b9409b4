"""Files that decide what the receiver runs or where its data goes: trusted only when root's.

Running as root, ``listen`` reads a configuration file (it names the ``--on-crash`` command and
every output), runs the ``--on-crash`` executable, creates files in ``--output-dir`` and writes
and replays ``--spool-dir``. A local user who can write any of them, or replace one through a
directory above it, could make root run a command, append network text to a file of their
choice through a planted symbolic link, or inject records that are forwarded as kernel messages.
The rule is sshd's StrictModes, as for ``apply``'s configuration: the path and every directory
above it (symbolic links resolved, and the path as given) must be owned by root and not writable
by group or others; a directory above may be world-writable with the sticky bit (``/tmp``), the
one the receiver creates files in may not.

``--expect`` is not checked: it only lists addresses reported ``silent`` when never heard, it
neither runs anything nor routes data.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from netconsolectl.errors import UnsafeConfig


def _owner(uid: int) -> str:
    import pwd

    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def _refuse(what: str, path: Path, culprit: Path, st: os.stat_result, why: str) -> UnsafeConfig:
    shown = str(path) if culprit == path else f"{path} (via {culprit})"
    fix = f"chown root: {culprit}" if st.st_uid != 0 else f"chmod go-w {culprit}"
    return UnsafeConfig(
        f"refusing {what} {shown}: {culprit} is owned by {_owner(st.st_uid)}, mode "
        f"{stat.S_IMODE(st.st_mode):04o}: {why}",
        hint=fix,
    )


def _check_parents(what: str, path: Path, start: Path, why: str) -> None:
    for d in start.parents:
        st = os.stat(d)
        if st.st_uid != 0 or (st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX):
            raise _refuse(what, path, d, st, f"its owner or others could replace {why}")


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
        return
    sticky_ok = stat.S_ISDIR(st.st_mode) and not creates_files and st.st_mode & stat.S_ISVTX
    if st.st_uid != 0 or (st.st_mode & 0o022 and not sticky_ok):
        raise _refuse(what, given, real, st, f"that user could {why}")

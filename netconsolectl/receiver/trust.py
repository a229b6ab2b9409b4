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


def _refuse(what: str, path: Path, culprit: Path, st: os.stat_result, verb: str, why: str
            ) -> UnsafeConfig:
    """``refusing --config F: D is owned by uid 0 (root), mode 0777: others than
    root could replace it and ...``."""
    who = _owner(st.st_uid) + " could" if st.st_uid != 0 else "others than root could"
    place = "" if culprit == path else f"{culprit} is "
    return UnsafeConfig(
        f"refusing {what} {path}: {place}owned by {_owner(st.st_uid)}, mode "
        f"{stat.S_IMODE(st.st_mode):04o}: {who} {verb} and {why}",
        hint=f"chown root: {culprit}" if st.st_uid != 0 else f"chmod go-w {culprit}",
    )


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

"""Error tree: every failure the library raises carries an exit code, an errno and a hint.

The CLI prints ``str(error)`` as one line on stderr (plus the hint) and exits with
``error.exit_code``. Exit codes are part of the command-line contract:

====  =====================================================================
0     success
1     the kernel or the system refused (message says why and what to do)
2     invalid input; nothing was written
3     no such target
4     target already exists
69    netconsole/configfs unavailable (EX_UNAVAILABLE)
77    permission denied (EX_NOPERM)
78    unsafe configuration file: others could write it (EX_CONFIG)
====  =====================================================================
"""

from __future__ import annotations

import errno as _errno

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_INVALID = 2
EXIT_NO_TARGET = 3
EXIT_EXISTS = 4
EXIT_UNAVAILABLE = 69
EXIT_NOPERM = 77
EXIT_UNSAFE_CONFIG = 78

# The kernel's ENOTSUPP (include/linux/errno.h) is not in userspace errno tables;
# userspace sees it as "Unknown error 524".
ENOTSUPP = 524


class NetconsoleError(Exception):
    """Base of every error netconsolectl raises on purpose."""

    exit_code: int = EXIT_REFUSED

    def __init__(self, message: str, *, hint: str | None = None, errno: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.errno = errno

    def __str__(self) -> str:
        return self.message


class KernelRefused(NetconsoleError):
    """The kernel or the system refused an operation (exit 1)."""

    exit_code = EXIT_REFUSED


class InvalidInput(NetconsoleError):
    """A value failed validation before anything was written (exit 2)."""

    exit_code = EXIT_INVALID


class NoSuchTarget(NetconsoleError):
    """The named target does not exist under the configfs root (exit 3)."""

    exit_code = EXIT_NO_TARGET


class TargetExists(NetconsoleError):
    """``add`` was asked to create a target that already exists (exit 4)."""

    exit_code = EXIT_EXISTS


class Unavailable(NetconsoleError):
    """configfs or dynamic netconsole is not available on this kernel (exit 69)."""

    exit_code = EXIT_UNAVAILABLE


class PermissionDenied(NetconsoleError):
    """The operation needs privileges the caller lacks (exit 77)."""

    exit_code = EXIT_NOPERM


def errno_name(code: int | None) -> str:
    """``EINVAL`` for 22, ``ENOTSUPP`` for 524, ``errno N`` for anything unknown."""
    if code is None:
        return "no errno"
    if code == ENOTSUPP:
        return "ENOTSUPP"
    return _errno.errorcode.get(code, f"errno {code}")


class UnsafeConfig(NetconsoleError):
    """Run as root, a configuration file that someone else could have written (exit 78): it
    decides where every kernel message goes, so it is refused as sshd's StrictModes does."""

    exit_code = EXIT_UNSAFE_CONFIG


#: What to do about EACCES and EPERM, said here once for every place that meets them.
RUN_AS_ROOT = "run as root"
#: The errnos that mean "not allowed": the caller lacks a privilege root has.
DENIED = frozenset({_errno.EACCES, _errno.EPERM})
#: Writing a file: a read-only filesystem (EROFS) is met the same way as a refusal.
WRITE_DENIED = DENIED | {_errno.EROFS}


def from_oserror(e: OSError, message: str, *, hint: str | None = None,
                 otherwise: type[NetconsoleError] = KernelRefused,
                 denied: frozenset[int] = DENIED, root_hint: str = RUN_AS_ROOT,
                 ) -> NetconsoleError:
    """The typed error for ``e``, met while doing what ``message`` says.

    An errno in ``denied`` is PermissionDenied (exit 77) with ``root_hint``; any other is
    ``otherwise`` with ``hint``. The errno travels with the error. Raise the result
    ``from None``: the message already says what the OSError did.
    """
    if e.errno in denied:
        return PermissionDenied(message, hint=root_hint, errno=e.errno)
    return otherwise(message, hint=hint, errno=e.errno)

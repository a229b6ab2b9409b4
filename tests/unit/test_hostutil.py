"""The host utilities written once (netconsolectl.hostutil, errors.from_oserror), and that the
package keeps them once: one atomic writer, one "run as root", one kernel-release reader."""

from __future__ import annotations

import ast
import errno
import os
import stat
from pathlib import Path

import pytest

import netconsolectl
from netconsolectl import hostutil
from netconsolectl.errors import (
    RUN_AS_ROOT,
    WRITE_DENIED,
    KernelRefused,
    NetconsoleError,
    PermissionDenied,
    Unavailable,
    from_oserror,
)

PACKAGE = Path(netconsolectl.__file__).parent


def _sources() -> dict[Path, str]:
    return {p: p.read_text() for p in sorted(PACKAGE.rglob("*.py"))
            if p.relative_to(PACKAGE).as_posix() != "cli/tree.py"}  # generated help text


# -- write_atomic ---------------------------------------------------------------------------


def test_write_atomic_replaces_keeping_mode_and_leaves_nothing_behind(tmp_path: Path) -> None:
    f = tmp_path / "conf"
    f.write_text("old\n")
    f.chmod(0o640)
    hostutil.write_atomic(f, "new\n")
    assert f.read_text() == "new\n"
    assert stat.S_IMODE(f.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == ["conf"]


def test_write_atomic_new_file_is_0644_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        hostutil.write_atomic(tmp_path / "a", b"x")
        hostutil.write_atomic(tmp_path / "b", "x", mode=0o600)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="only root may give a file to another user")
def test_write_atomic_keeps_the_owner_unless_told(tmp_path: Path) -> None:
    f = tmp_path / "conf"
    f.write_text("old\n")
    os.chown(f, 12345, 23456)
    hostutil.write_atomic(f, "new\n")
    assert (f.stat().st_uid, f.stat().st_gid) == (12345, 23456)
    hostutil.write_atomic(f, "newer\n", keep_owner=False)
    assert (f.stat().st_uid, f.stat().st_gid) == (0, os.getegid())


def test_write_atomic_syncs_the_file_then_the_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    hostutil.write_atomic(tmp_path / "conf", "x")
    assert len(synced) == 2
    assert Path(synced[0]).parent == tmp_path and Path(synced[0]).name.startswith(".conf.")
    assert synced[1] == str(tmp_path)


def test_a_failed_write_keeps_the_old_file_and_no_temporary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "conf"
    f.write_text("old\n")

    def fail(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError):
        hostutil.write_atomic(f, "new\n")
    assert f.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["conf"]


def test_update_file_writes_only_a_change(tmp_path: Path) -> None:
    f = tmp_path / "d/e/unit"
    assert hostutil.update_file(f, "a\n") is True
    assert hostutil.update_file(f, "a\n") is False
    assert hostutil.update_file(f, "b\n") is True and f.read_text() == "b\n"


def test_one_atomic_writer_in_the_package() -> None:
    # Every file written whole goes through write_atomic. The receiver's spool cursor and
    # boot numbers are its running state, saved again every few seconds into its own state
    # directory: a sync per save would cost the receive path, and a lost save is redone.
    # receiver/names.py swaps a by-name symbolic link, not a file's contents.
    users = sorted(p.relative_to(PACKAGE).as_posix() for p, text in _sources().items()
                   if "mkstemp(" in text or "os.replace(" in text or ".rename(" in text)
    assert users == ["hostutil.py", "receiver/boots.py", "receiver/names.py",
                     "receiver/spool.py"]


# -- run_command ----------------------------------------------------------------------------


def test_run_command_returns_output_and_types_its_failures() -> None:
    assert hostutil.run_command(["echo", "hi"], "cannot echo") == "hi\n"
    with pytest.raises(Unavailable, match=r"^cannot x: no-such-program-here not found$"):
        hostutil.run_command(["no-such-program-here"], "cannot x", missing_hint="install it")
    expected = KernelRefused if os.geteuid() == 0 else PermissionDenied
    with pytest.raises(expected, match=r"^cannot list: ") as e:
        hostutil.run_command(["ls", "/no/such/dir"], "cannot list", hint="look")
    assert e.value.hint == ("look" if os.geteuid() == 0 else RUN_AS_ROOT)


# -- from_oserror ---------------------------------------------------------------------------


@pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM])
def test_from_oserror_denied_is_permission_with_the_root_hint(code: int) -> None:
    e = from_oserror(OSError(code, os.strerror(code)), "cannot write /x")
    assert type(e) is PermissionDenied and e.exit_code == 77
    assert (str(e), e.hint, e.errno) == ("cannot write /x", RUN_AS_ROOT, code)


def test_from_oserror_other_errnos() -> None:
    e = from_oserror(OSError(errno.ENOSPC, "No space"), "cannot write /x", hint="free some")
    assert type(e) is KernelRefused and (e.hint, e.errno) == ("free some", errno.ENOSPC)
    rofs = OSError(errno.EROFS, "Read-only file system")
    assert type(from_oserror(rofs, "w")) is KernelRefused
    assert type(from_oserror(rofs, "w", denied=WRITE_DENIED)) is PermissionDenied
    assert type(from_oserror(rofs, "w", otherwise=NetconsoleError)) is NetconsoleError


def test_run_as_root_is_written_once() -> None:
    # The hint as a string the code gives (docstrings apart), anywhere in the package.
    places = []
    for p, text in _sources().items():
        tree = ast.parse(text)
        docs = {id(n.body[0].value) for n in ast.walk(tree)
                if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef)
                and n.body and isinstance(n.body[0], ast.Expr)}
        places += [f"{p.relative_to(PACKAGE)}:{n.lineno}" for n in ast.walk(tree)
                   if isinstance(n, ast.Constant) and isinstance(n.value, str)
                   and "run as root" in n.value and id(n) not in docs]
    assert places == ["errors.py:104"]


# -- kernel release -------------------------------------------------------------------------


def test_one_kernel_release_reader(tmp_path: Path) -> None:
    (tmp_path / "sys/kernel").mkdir(parents=True)
    (tmp_path / "sys/kernel/osrelease").write_text("6.12.0-test\n")
    assert hostutil.kernel_release(tmp_path) == "6.12.0-test"
    assert hostutil.kernel_release(tmp_path / "none") is None
    assert hostutil.kernel_release() == os.uname().release
    readers = sorted(p.relative_to(PACKAGE).as_posix() for p, text in _sources().items()
                     if "osrelease" in text or "uname()" in text)
    assert readers == ["hostutil.py", "sender/configfs.py"]  # configfs: uname without /proc


def _string_constants(tree: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)]


def test_host_paths_are_facts() -> None:
    # /sys/class/net, configfs's mount point and systemd's directories: in facts.py only.
    facts = ("/sys/class/net", "/sys/kernel/config", "/etc/systemd/system",
             "/run/systemd/system")
    found = sorted(f"{p.relative_to(PACKAGE)}: {s}" for p, text in _sources().items()
                   for s in _string_constants(ast.parse(text)) if s in facts)
    assert found == ["facts.py: /etc/systemd/system", "facts.py: /run/systemd/system",
                     "facts.py: /sys/kernel/config"]

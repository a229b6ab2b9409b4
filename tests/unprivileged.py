"""Running netconsolectl as an unprivileged user (uid 65534) from any checkout.

A checkout (and the virtualenv in it) may sit in a directory only root can enter: ``mktemp -d``
makes one, and so does a clone under /root. An unprivileged process then cannot read the package
or even start the virtualenv's interpreter. :func:`nobody_python` returns an interpreter and an
environment that work for uid 65534: the ones in use when every directory above them is open to
others (nothing copied, the usual case), else the system interpreter the virtualenv was made
from with a world-readable copy of the virtualenv's packages and of netconsolectl, made once per
test session.
"""

from __future__ import annotations

import atexit
import os
import shutil
import stat
import sys
import sysconfig
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOBODY = 65534
_copy: tuple[list[str], dict[str, str]] | None = None


def _open_to_others(path: Path) -> bool:
    """Whether every directory from / down to ``path`` can be entered by others."""
    for d in [path, *path.parents]:
        try:
            if not os.stat(d).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    return True


def _site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def _runtime_files() -> set[Path]:
    """Files (relative to site-packages) of netconsolectl's runtime dependencies, recursively."""
    from importlib import metadata

    from packaging.requirements import Requirement

    seen: set[str] = set()
    files: set[Path] = set()
    todo = [r for r in metadata.requires("netconsolectl") or [] if "extra ==" not in r]
    while todo:
        req = Requirement(todo.pop())
        name = req.name.lower().replace("_", "-")
        if name in seen or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue
        for f in dist.files or []:
            if not str(f).startswith("..") and "__pycache__" not in f.parts:
                files.add(Path(f))
        todo += [r for r in dist.requires or [] if "extra ==" not in r]
    return files


def _system_python() -> str:
    """An interpreter of this Python version that others can run (the virtualenv's base may
    live under /root, as with pyenv)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
                  *(os.path.join(d, version) for d in ("/usr/local/bin", "/usr/bin", "/bin"))]
    for c in candidates:
        real = os.path.realpath(c)
        if os.path.isfile(real) and _open_to_others(Path(real).parent) and (
                os.stat(real).st_mode & stat.S_IXOTH):
            return real
    raise RuntimeError(f"no {version} that uid {NOBODY} can run (tried {candidates})")


def nobody_python() -> tuple[list[str], dict[str, str]]:
    """``(argv prefix, extra environment)`` to run ``python -m netconsolectl`` as uid 65534."""
    global _copy
    site = _site_packages()
    real = Path(os.path.realpath(sys.executable))
    if all(_open_to_others(p) for p in (REPO, site, Path(sys.executable).parent, real.parent)):
        return [sys.executable], {}
    if _copy is None:
        python = _system_python()
        top = Path(tempfile.mkdtemp(prefix="netconsolectl-nobody-"))
        os.chmod(top, 0o755)
        atexit.register(shutil.rmtree, top, True)
        for rel in _runtime_files():
            if (site / rel).is_file():
                (top / "site" / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(site / rel, top / "site" / rel)
        shutil.copytree(REPO / "netconsolectl", top / "src" / "netconsolectl",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for dirpath, dirnames, filenames in os.walk(top):
            for n in dirnames:
                os.chmod(os.path.join(dirpath, n), 0o755)
            for n in filenames:
                p = os.path.join(dirpath, n)
                if not os.path.islink(p):
                    os.chmod(p, 0o644)
        _copy = ([python], {"PYTHONPATH": f"{top / 'src'}:{top / 'site'}",
                          "PYTHONDONTWRITEBYTECODE": "1"})
    return _copy

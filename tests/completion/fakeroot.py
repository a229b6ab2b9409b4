"""A configfs root as completion sees it: ``ROOT/netconsole/<target>/`` with attribute files."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COMPLETIONS = REPO / "completions"

TARGETS = {
    "web": {
        "enabled": "1", "remote_ip": "192.0.2.1", "remote_port": "6666", "local_ip": "192.0.2.10",
        "local_port": "6665", "dev_name": "eth0", "remote_mac": "52:54:00:12:34:56",
    },
    "db": {"enabled": "0", "remote_ip": "0.0.0.0", "remote_port": "6666", "dev_name": ""},
    "cmdline0": {"enabled": "1", "remote_ip": "198.51.100.7", "remote_port": "514"},
}
USERDATA = {"web": {"host": "web01", "dc": "fra 1"}}


def make_root(base: Path) -> Path:
    """A fake configfs root with three targets (``web`` with two userdata entries)."""
    for name, attrs in TARGETS.items():
        d = base / "netconsole" / name
        (d / "userdata").mkdir(parents=True)
        for attr, value in attrs.items():
            (d / attr).write_text(value + "\n")
        for key, value in USERDATA.get(name, {}).items():
            (d / "userdata" / key).mkdir()
            (d / "userdata" / key / "value").write_text(value + "\n")
    return base


def interface_names() -> list[str]:
    """What completion must offer for --dev on this machine."""
    return sorted(os.listdir("/sys/class/net"))


def bin_dir() -> Path:
    """The virtualenv's bin directory, where the ``netconsolectl`` entry point is installed.

    Not resolved: the venv's python is a symlink to the base interpreter.
    """
    return Path(sys.executable).parent


def entry_point() -> Path | None:
    path = bin_dir() / "netconsolectl"
    return path if path.exists() else None


def shell_env(home: Path, root: Path | None = None, **extra: str) -> dict[str, str]:
    """A clean environment: the venv first on PATH, a scratch HOME, no user shell config."""
    env = {
        "PATH": f"{bin_dir()}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "TERM": "xterm",
        "LANG": "C.UTF-8",
    }
    if root is not None:
        env["NETCONSOLECTL_CONFIGFS_ROOT"] = str(root)
    env.update(extra)
    return env


def install_layout(prefix: Path) -> Path:
    """The shipped scripts where the wheel puts them under an install prefix: ``prefix/share``."""
    share = prefix / "share"
    for src, where in (
        ("netconsolectl", "bash-completion/completions"),
        ("_netconsolectl", "zsh/site-functions"),
        ("netconsolectl.fish", "fish/vendor_completions.d"),
    ):
        (share / where).mkdir(parents=True, exist_ok=True)
        shutil.copy(COMPLETIONS / src, share / where / src)
    return share


def fast_path_wired() -> bool:
    """Whether the console script hands completion requests to the fast path before typer."""
    import inspect

    import netconsolectl.cli

    return "fast_complete" in inspect.getsource(netconsolectl.cli)

"""Which commands import pyroute2 and scapy: only discovery does, and scapy only to probe.

Each command runs as a fresh process (the entry point, as a user starts it) and reports the
modules it imported; the discovery cases live in the netns tier (tests/netns).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from netconsolectl.sender.emulation import Emulation
from tests.conftest import Cli

EXPLICIT = ["--dev", "eth0", "--local-ip", "192.0.2.10", "--remote-mac", "02:00:00:00:00:01"]

# Runs the CLI, then prints the top-level packages of interest that ended up imported.
PROBE = """
import json, os, signal, sys, threading
if os.environ.get("STOP_AFTER"):
    threading.Timer(float(os.environ["STOP_AFTER"]),
                    lambda: os.kill(os.getpid(), signal.SIGINT)).start()
try:
    if os.environ.get("_NETCONSOLECTL_COMPLETE"):
        from netconsolectl.cli.complete import fast_complete
        fast_complete()
    else:
        from netconsolectl.cli import main
        main()
except (SystemExit, KeyboardInterrupt):
    pass
finally:
    sys.stderr.write("\\nMODULES " + json.dumps(sorted(
        {m.split(".")[0] for m in sys.modules} & {"pyroute2", "scapy"})) + "\\n")
"""


def imported(root: Path, *args: str, **env: str) -> tuple[list[str], str]:
    res = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                         timeout=60,
                         env={**os.environ, "NETCONSOLECTL_CONFIGFS_ROOT": str(root), **env})
    err, _, tail = res.stderr.rpartition("\nMODULES ")
    return json.loads(tail), err + res.stdout


@pytest.fixture
def tree(cli: Cli, kernel: Emulation) -> Emulation:
    for name in ("alpha", "beta", "gone"):
        assert cli("add", name, "--remote-ip", "192.0.2.1", *EXPLICIT).exit_code == 0
    return kernel


@pytest.mark.parametrize("args", [
    ["list"], ["list", "--json"], ["show", "alpha"], ["show", "alpha", "--json"],
    ["disable", "alpha"], ["enable", "alpha"], ["remove", "nosuch", "--missing-ok"],
])
def test_target_commands_import_neither(tree: Emulation, args: list[str]) -> None:
    mods, out = imported(tree.root, *args)
    assert mods == [], out


def test_remove_imports_neither(tree: Emulation) -> None:
    # A plain directory cannot play configfs's rmdir of a populated target: empty it first.
    target = tree.root / "netconsole" / "gone"
    for entry in sorted(target.rglob("*"), reverse=True):
        entry.rmdir() if entry.is_dir() else entry.unlink()
    mods, out = imported(tree.root, "remove", "gone")
    assert not target.exists(), out
    assert mods == [], out


def test_completion_imports_neither(tree: Emulation) -> None:
    mods, out = imported(tree.root, _NETCONSOLECTL_COMPLETE="complete_bash",
                         COMP_WORDS="netconsolectl\nshow\n", COMP_CWORD="2")
    assert "alpha" in out
    assert mods == [], out


def test_listen_imports_neither(tmp_path: Path) -> None:
    mods, out = imported(tmp_path, "listen", "--bind", "127.0.0.1", "--port", "0",
                         STOP_AFTER="1.5")
    assert mods == [], out

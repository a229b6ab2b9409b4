"""The package builds and works on a machine without a C compiler: the fast path's C loop is
optional, and the receiver then runs the same loop in Python."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CHECK = """
import sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from netconsolectl.receiver import fastpath
from netconsolectl.receiver.core import Processor
from netconsolectl.receiver.output import FdWriter
from netconsolectl.receiver.sinks.jsonl import JsonSink

assert fastpath.__file__.startswith(sys.argv[1]), fastpath.__file__
assert fastpath._common is None
sink = JsonSink(FdWriter(1))
fast = fastpath.JsonFastPath(Processor([sink]), sink, lambda key: key)
fast.feed_batch([b"6,%d,0,-;m%d\\n" % (s, s) for s in (1, 2, 3)], [("192.0.2.1", 6665)] * 3, 0.0)
sink.out.flush()
"""


def test_wheel_builds_and_runs_without_a_compiler(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.so", "__pycache__", "*_cache", ".hypothesis",
        "*.egg-info"))
    env = {**os.environ, "CC": "false", "CXX": "false", "LDSHARED": "false"}
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "wheel"),
         str(src)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    [wheel] = (tmp_path / "wheel").glob("netconsolectl-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        assert "netconsolectl/receiver/fastpath.py" in names
        assert not [n for n in names if n.endswith(".so")], names
        z.extractall(tmp_path / "installed")
    # Python without site (so the editable install of the checkout is not found), the wheel's
    # files first, the test environment's packages (typer, ...) after them.
    out = subprocess.run(
        [sys.executable, "-S", "-c", CHECK, str(tmp_path / "installed"),
         sysconfig.get_paths()["purelib"]],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 3 and all('"type":"message"' in x for x in lines), out.stdout

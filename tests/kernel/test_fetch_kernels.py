"""scripts/fetch-kernels without the Debian archive: its failure line and its offline cache.

The archive is replaced by a port on 127.0.0.1 where nothing listens, and the modules go to a
directory of the test's (``NETCONSOLECTL_MODULES_ROOT``), so nothing of the machine changes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.kernel.harness import REPO

SCRIPT = REPO / "scripts" / "fetch-kernels"
UNREACHABLE = "http://127.0.0.1:9/debian"  # the discard port: connection refused

pytestmark = pytest.mark.skipif(shutil.which("apt-get") is None or shutil.which("depmod") is None,
                                reason="needs apt-get and depmod (Debian)")


def _run(tmp_path: Path, *series: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETCONSOLECTL_VM_KERNEL")}
    env.update(NETCONSOLECTL_KERNEL_CACHE=str(tmp_path / "cache"),
               NETCONSOLECTL_MODULES_ROOT=str(tmp_path / "root" / "lib" / "modules"),
               NETCONSOLECTL_DEBIAN_MIRROR=UNREACHABLE)
    (tmp_path / "root" / "lib" / "modules").mkdir(parents=True, exist_ok=True)
    return subprocess.run([str(SCRIPT), *series], capture_output=True, text=True, env=env,
                          timeout=120)


def test_unreachable_archive_fails_with_one_line_naming_the_package(tmp_path: Path) -> None:
    r = _run(tmp_path, "7")
    assert r.returncode == 1, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("scripts/fetch-kernels: cannot fetch linux-binary-7.<n>+deb13-amd64")
    assert "Connection refused" in lines[0] or "Failed to fetch" in lines[0], lines[0]


def test_cached_kernel_is_used_offline_and_its_modules_placed(tmp_path: Path) -> None:
    rel = "6.18.99+deb13-amd64"
    tree = tmp_path / "cache" / rel
    (tree / "modules" / "kernel").mkdir(parents=True)
    for name in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        (tree / "modules" / name).touch()
    (tree / f"vmlinuz-{rel}").write_bytes(b"not a kernel")
    (tree / ".complete").write_text(f"linux-image-{rel}\n")
    r = _run(tmp_path, "6.18")
    assert r.returncode == 0, r
    assert r.stdout.strip() == f"scripts/fetch-kernels: 6.18: {tree}/vmlinuz-{rel}", r
    assert "unreachable" in r.stderr and f"using the cached {rel}" in r.stderr, r.stderr
    placed = tmp_path / "root" / "lib" / "modules" / rel
    assert (placed / "modules.dep").exists(), sorted(os.listdir(placed))
    assert (placed / ".netconsolectl-fetched").read_text() == f"linux-image-{rel}\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="the refusal is for root")
def test_root_refuses_a_cache_other_users_can_write(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache").chmod(0o777)
    r = _run(tmp_path, "6.18")
    assert r.returncode == 1, r
    assert r.stderr.strip() == (f"scripts/fetch-kernels: refusing the kernel cache "
                                f"{tmp_path / 'cache'}: {tmp_path / 'cache'} is writable by a "
                                "user other than root"), r.stderr
    assert not (tmp_path / "cache" / "apt" / "sources.list").exists()

"""Run as root, a configuration file others could write is refused (sshd's StrictModes)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from netconsolectl.declarative.config import check_safe, load
from netconsolectl.errors import EXIT_UNSAFE_CONFIG, UnsafeConfig
from netconsolectl.sender.emulation import Emulation
from tests.conftest import Cli

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown files")

CONFIG = """\
[targets.t1]
remote_ip = "192.0.2.1"
dev_name = "eth0"
local_ip = "192.0.2.10"
remote_mac = "02:00:00:00:00:01"
"""


def config_in(d: Path, mode: int = 0o644, uid: int = 0, dir_mode: int = 0o755) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, dir_mode)
    p = d / "netconsolectl.toml"
    p.write_text(CONFIG)
    os.chmod(p, mode)
    os.chown(p, uid, -1)
    return p


@pytest.mark.parametrize("mode, uid, dir_mode, hint", [
    (0o666, 0, 0o755, "chmod go-w"),
    (0o664, 0, 0o755, "chmod go-w"),
    (0o644, 65534, 0o755, "chown root:"),
    (0o644, 0, 0o777, "chmod go-w"),  # a directory anyone can write, not sticky
])
def test_apply_refuses_a_file_others_could_write(cli: Cli, kernel: Emulation, tmp_path: Path,
                                                 mode: int, uid: int, dir_mode: int, hint: str
                                                 ) -> None:
    os.chmod(tmp_path, 0o755)
    p = config_in(tmp_path / "etc", mode, uid, dir_mode)
    for args in (["apply", str(p)], ["apply", str(p), "--dry-run"],
                 ["cmdline", "--config", str(p)]):
        r = cli(*args)
        assert r.exit_code == EXIT_UNSAFE_CONFIG, r
        [line] = r.stderr.splitlines()
        assert line.startswith(f"netconsolectl: error: refusing {p}") and hint in line, line
    assert kernel.listdir() == []  # nothing changed


def test_sticky_directory_and_root_file_are_fine(cli: Cli, kernel: Emulation, tmp_path: Path
                                                 ) -> None:
    os.chmod(tmp_path, 0o755)
    p = config_in(tmp_path / "tmp", dir_mode=0o1777)
    r = cli("apply", str(p))
    assert r.exit_code == 0, r
    assert kernel.listdir() == ["t1"]
    check_safe(config_in(tmp_path / "private", mode=0o600, dir_mode=0o700))


def test_a_symlink_is_judged_by_what_it_points_to(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    target = config_in(tmp_path / "etc", mode=0o666)
    link = tmp_path / "link.toml"
    link.symlink_to(target)
    with pytest.raises(UnsafeConfig, match="writable by group and others"):
        check_safe(link)


def test_unprivileged_runs_are_not_judged(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    p = config_in(tmp_path / "etc", mode=0o666)
    assert [t.name for t in load(p, strict=False).targets] == ["t1"]
    with pytest.raises(UnsafeConfig):
        load(p, strict=True)


def test_export_o_writes_a_file_apply_accepts_as_root(cli: Cli, kernel: Emulation,
                                                      tmp_path: Path) -> None:
    r = cli("add", "t1", "--remote-ip", "192.0.2.1", "--dev", "eth0", "--local-ip",
            "192.0.2.10", "--remote-mac", "02:00:00:00:00:01", "--userdata", "rack=r7")
    assert r.exit_code == 0, r
    os.chmod(tmp_path, 0o755)
    out = tmp_path / "etc" / "netconsolectl.toml"
    out.parent.mkdir()
    out.write_text("old\n")
    os.chmod(out, 0o666)  # an unsafe file is replaced, not written through
    old = os.umask(0o000)
    try:
        r = cli("export", "-o", str(out))
    finally:
        os.umask(old)
    assert r.exit_code == 0, r
    assert r.stdout == "" and f"wrote {out} (1 target(s))" in r.stderr
    st = out.stat()
    assert (st.st_mode & 0o777, st.st_uid) == (0o644, 0)
    assert [p.name for p in out.parent.iterdir()] == ["netconsolectl.toml"]  # no temporary left
    assert cli("remove", "t1").exit_code == 0
    assert cli("apply", str(out)).exit_code == 0
    assert kernel.read("t1/userdata/rack/value") == "r7"
    as_json = tmp_path / "etc" / "c.json"
    assert cli("export", "--output", str(as_json)).exit_code == 0
    assert as_json.read_text().lstrip().startswith("{")
    r = cli("export", "-o", str(tmp_path / "missing" / "x.toml"))
    assert r.exit_code == 2 and "does not exist" in r.stderr

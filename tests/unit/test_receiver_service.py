"""The listen service unit: installed from the package, checked by systemd itself."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from netconsolectl.receiver import service

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd = pytest.mark.skipif(SYSTEMD_ANALYZE is None,
                                   reason="systemd-analyze is not installed (scripts/test "
                                   "installs the systemd package)")


def installed(tmp_path: Path) -> Path:
    done = service.install("/etc/netconsolectl/listen.toml", root=str(tmp_path))
    assert any("wrote" in d for d in done)
    return tmp_path / "etc/systemd/system" / service.UNIT_NAME


def test_install_writes_unit_and_starter_config_once(tmp_path: Path) -> None:
    unit = installed(tmp_path)
    text = unit.read_text()
    exec_line = next(x for x in text.splitlines() if x.startswith("ExecStart="))
    assert exec_line.endswith(" listen --config /etc/netconsolectl/listen.toml")
    conf = tmp_path / "etc/netconsolectl/listen.toml"
    assert 'output-dir = "/var/log/netconsolectl-listen"' in conf.read_text()
    conf.write_text("port = 514\n")
    again = service.install("/etc/netconsolectl/listen.toml", root=str(tmp_path))
    assert f"{unit} is up to date" in again and f"kept {conf}" in again
    assert conf.read_text() == "port = 514\n"


def test_starter_config_is_accepted_by_listen(tmp_path: Path) -> None:
    installed(tmp_path)
    conf = tmp_path / "etc/netconsolectl/listen.toml"
    logs = tmp_path / "logs"
    conf.write_text(conf.read_text().replace("/var/log/netconsolectl-listen", str(logs)))
    p = subprocess.Popen(
        [sys.executable, "-m", "netconsolectl", "listen", "--config", str(conf), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert p.stderr is not None
        line = p.stderr.readline()
        assert "listening on udp" in line, line + p.stderr.read()
    finally:
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=30)
    assert p.returncode == 0
    assert out == ""  # quiet = true
    assert logs.is_dir()  # output-dir was taken from the file


def test_relative_config_path_is_refused() -> None:
    from netconsolectl.errors import InvalidInput

    with pytest.raises(InvalidInput):
        service.render_unit(["/usr/bin/netconsolectl"], "listen.toml")


@needs_systemd
def test_systemd_analyze_verify_and_security(tmp_path: Path) -> None:
    unit = installed(tmp_path)
    r = subprocess.run([SYSTEMD_ANALYZE or "", "verify", "--man=no", str(unit)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([SYSTEMD_ANALYZE or "", "security", "--offline=true", "--no-pager",
                        str(unit)], capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    score = float(m.group(1))
    print(f"systemd-analyze security exposure: {score}")
    assert score <= 2.0, r.stdout


def test_shipped_unit_settings() -> None:
    text = service.shipped_unit()
    settings = dict(line.split("=", 1) for line in text.splitlines()
                    if "=" in line and not line.startswith("#"))
    assert settings["DynamicUser"] == "yes"
    assert settings["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    assert settings["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"
    assert settings["ProtectSystem"] == "strict"
    assert settings["StateDirectory"] == settings["LogsDirectory"] == "netconsolectl-listen"
    assert settings["RestrictAddressFamilies"] == "AF_INET AF_INET6 AF_UNIX"
    assert settings["ExecReload"] == "/bin/kill -HUP $MAINPID"

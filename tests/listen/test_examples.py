"""The example pipeline configurations in examples/ that can be checked here."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.listen.test_forward import RSYSLOGD

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MODULES = Path("/usr/lib/x86_64-linux-gnu/rsyslog")


def test_rsyslog_relay_example_is_a_valid_configuration(tmp_path: Path) -> None:
    """rsyslogd -N1 loads every module and checks every parameter (a wrong name is an error),
    without needing Kafka or Elasticsearch to be there."""
    if RSYSLOGD is None:
        pytest.skip("rsyslogd is not installed (Debian package rsyslog)")
    for module, package in (("imrelp", "rsyslog-relp"), ("omkafka", "rsyslog-kafka"),
                            ("omelasticsearch", "rsyslog-elasticsearch")):
        if not (MODULES / f"{module}.so").exists():
            pytest.skip(f"{module} is not installed (Debian package {package})")
    conf = tmp_path / "relay.conf"
    text = (EXAMPLES / "rsyslog-netconsole-relay.conf").read_text()
    assert 'workDirectory="/var/spool/rsyslog"' in text
    conf.write_text(text.replace("/var/spool/rsyslog", str(tmp_path)))
    r = subprocess.run([RSYSLOGD, "-N1", "-f", str(conf)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "error" not in (r.stdout + r.stderr).lower(), r.stdout + r.stderr
    # A misspelt parameter is caught (so the check above means something).
    conf.write_text(conf.read_text().replace('topic="netconsole"', 'topik="netconsole"'))
    r = subprocess.run([RSYSLOGD, "-N1", "-f", str(conf)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0

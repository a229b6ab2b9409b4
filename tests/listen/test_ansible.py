"""examples/ansible/netconsole.yml run by a real ansible-playbook (Debian package ansible-core)
on localhost, against a sandbox root (--configfs-root on a plain directory) inside a network
namespace of the test's own with one veth pair.

In a sandbox nothing is sent on the wire, so the delivery check cannot succeed here; what is
checked is that the play writes the file, applies it (changed once, then ok), runs the check and
fails with its reason. The check succeeding from a real kernel is
tests/kernel/guest/test_85_delivery.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.listen.conftest import free_port

PLAYBOOK = Path(__file__).resolve().parents[2] / "examples" / "ansible" / "netconsole.yml"
ANSIBLE = shutil.which("ansible-playbook")
pytestmark = [
    pytest.mark.skipif(ANSIBLE is None, reason="ansible-playbook is not installed (Debian "
                       "package ansible-core; scripts/test installs it)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a network namespace"),
]


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"nctl-ansible-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for cmd in (["link", "add", "veth0", "type", "veth", "peer", "name", "veth1"],
                    ["addr", "add", "192.0.2.10/24", "dev", "veth0"],
                    ["link", "set", "veth1", "up"], ["link", "set", "veth0", "up"],
                    ["link", "set", "lo", "up"]):
            subprocess.run(["ip", "-n", name, *cmd], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def play(netns: str, tmp: Path, **extra: Any) -> tuple[int, dict[str, dict[str, Any]]]:
    """Run the playbook; (exit code, task name -> its result on localhost)."""
    env = {**os.environ, "ANSIBLE_LOCAL_TEMP": str(tmp / "a"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_HOME": str(tmp / "ansible-home"), "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
           "ANSIBLE_CALLBACK_FORMAT_PRETTY": "false"}
    env = {k: v for k, v in env.items() if not k.startswith("NETCONSOLECTL_")}
    variables = {"netconsole_become": False, "netconsolectl": [sys.executable, "-m",
                 "netconsolectl"], "netconsolectl_root": str(tmp / "root"),
                 "netconsole_config": str(tmp / "netconsolectl.toml"), "console_loglevel": 0,
                 **extra}
    r = subprocess.run(["ip", "netns", "exec", netns, ANSIBLE or "ansible-playbook", "-i",
                        "localhost,", "-c", "local", "-v", str(PLAYBOOK), "-e",
                        json.dumps(variables)],
                       capture_output=True, text=True, env=env, cwd=tmp, timeout=600, check=False)
    # the default output with -v: "TASK [name] ***", then "ok|changed|fatal: [localhost]...
    # => {result as one line of JSON}"
    tasks: dict[str, dict[str, Any]] = {}
    for m in re.finditer(r"^TASK \[(.*?)\] \*+\n(?:.*\n)*?(ok|changed|fatal): \[localhost\]"
                         r".*?=> (\{.*\})$", r.stdout, re.M):
        tasks[m.group(1)] = {**json.loads(m.group(3)), "status": m.group(2)}
    assert tasks, r.stdout + r.stderr
    return r.returncode, tasks


def test_playbook_applies_and_runs_the_delivery_check(netns: str, tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    target = {"remote_ip": "192.0.2.1", "remote_port": 6666, "dev_name": "veth0",
              "local_ip": "192.0.2.10", "remote_mac": "02:00:00:00:00:01", "extended": True}
    url = f"http://127.0.0.1:{free_port(1)}"  # nobody answers there
    code, tasks = play(netns, tmp_path, collector_url=url, delivery_timeout=2,
                       netconsole_targets={"collector": target})
    names = list(tasks)
    apply = next(n for n in names if n.startswith("Apply"))
    check = next(n for n in names if n.startswith("Proof of delivery"))
    assert tasks[apply]["rc"] == 2 and tasks[apply]["changed"] is True, tasks[apply]
    assert (tmp_path / "root/netconsole/collector/enabled").read_text() == "1\n"
    assert (tmp_path / "root/netconsole/collector/remote_mac").read_text() == \
        "02:00:00:00:00:01\n"
    result = tasks[check]
    assert code == 2 and result["status"] == "fatal" and result["rc"] == 1, result
    assert f"cannot reach the receiver at {url}" in result["stderr"]
    assert result["cmd"][-4:] == ["--expect-listen", url, "--timeout", "2"]
    # idempotent: the second run changes nothing, and the check runs again
    code, tasks = play(netns, tmp_path, collector_url=url, delivery_timeout=2,
                       netconsole_targets={"collector": target})
    assert tasks[apply]["rc"] == 0 and tasks[apply]["changed"] is False, tasks[apply]
    assert not any(t["status"] == "changed" for t in tasks.values())
    assert code == 2 and tasks[check]["rc"] == 1

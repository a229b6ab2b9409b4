"""Every command that changes something says what it did, in words and with --json."""

from __future__ import annotations

import json
from pathlib import Path

from netconsolectl.host.system import System
from netconsolectl.sender.emulation import Emulation
from tests.conftest import Cli
from tests.unit.test_runbook_persist import kernel_tree, set_release

EXPLICIT = ["--dev", "eth0", "--local-ip", "192.0.2.10", "--remote-mac", "02:00:00:00:00:01"]
KEYS = ["action", "name", "changed", "dry_run", "changes", "operations", "notes", "target"]


def run_json(cli: Cli, *args: str) -> dict[str, object]:
    r = cli(*args, "--json")
    assert r.exit_code == 0, r
    data = json.loads(r.stdout)
    assert isinstance(data, dict)
    return data


def test_set_says_what_changed(cli: Cli) -> None:
    assert cli("add", "t1", "--remote-ip", "192.0.2.50", *EXPLICIT, "--userdata", "a=1"
               ).exit_code == 0
    r = cli("set", "t1", "--remote-ip", "192.0.2.1", "--remote-port", "7000",
            "--userdata", "a=2", "--userdata", "b=3", "--dev", "eth0", "--local-ip",
            "192.0.2.10", "--remote-mac", "02:00:00:00:00:01")
    assert r.exit_code == 0, r
    assert ("netconsolectl: updated t1: remote_ip 192.0.2.50 -> 192.0.2.1, "
            "remote_port 6666 -> 7000, userdata a 1 -> 2, userdata b added (enabled)"
            ) in r.stderr
    r = cli("set", "t1", "--disabled", "--dry-run")
    assert "would update t1: disabled" in r.stderr


def test_target_commands_json(cli: Cli, kernel: Emulation) -> None:
    added = run_json(cli, "add", "t1", "--remote-ip", "192.0.2.1", *EXPLICIT)
    assert list(added) == KEYS
    assert added["action"] == "add" and added["changed"] is True
    assert isinstance(added["target"], dict) and added["target"]["remote_ip"] == "192.0.2.1"
    assert f"mkdir {kernel.base}/t1" in added["operations"]  # type: ignore[operator]

    planned = run_json(cli, "set", "t1", "--remote-port", "7000", "--dry-run")
    assert (planned["changed"], planned["dry_run"]) == (False, True)
    assert planned["changes"] == ["remote_port 6666 -> 7000"]
    assert planned["target"]["remote_port"] == 6666  # type: ignore[index]
    done = run_json(cli, "set", "t1", "--remote-port", "7000")
    assert done["changed"] is True and done["target"]["remote_port"] == 7000  # type: ignore[index]
    same = run_json(cli, "set", "t1", "--remote-port", "7000")
    assert same["changed"] is False and same["operations"] == []

    assert run_json(cli, "disable", "t1")["changes"] == ["disabled"]
    assert run_json(cli, "disable", "t1")["changed"] is False
    assert run_json(cli, "enable", "t1")["target"]["enabled"] is True  # type: ignore[index]
    removed = run_json(cli, "remove", "t1")
    assert removed["changed"] is True and removed["target"] is None
    assert run_json(cli, "remove", "t1", "--missing-ok")["changed"] is False
    setup = run_json(cli, "setup")
    assert setup == {"action": "setup", "changed": False, "done": []}


def test_apply_json_plan_and_result(cli: Cli, kernel: Emulation, tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[targets.t1]\nremote_ip = "192.0.2.1"\ndev_name = "eth0"\n'
                 'local_ip = "192.0.2.10"\nremote_mac = "02:00:00:00:00:01"\n')
    plan = run_json(cli, "apply", str(p), "--dry-run")
    assert (plan["action"], plan["dry_run"], plan["changed"], plan["would_change"]) == (
        "apply", True, False, True)
    [t] = plan["targets"]  # type: ignore[misc]
    assert t["name"] == "t1" and t["action"] == "create"
    assert f"mkdir {kernel.base}/t1" in t["operations"]
    assert kernel.listdir() == []
    done = run_json(cli, "apply", str(p))
    assert done["changed"] is True and kernel.listdir() == ["t1"]
    again = run_json(cli, "apply", str(p))
    assert again["changed"] is False
    assert again["targets"][0]["action"] == "unchanged"  # type: ignore[index]


def test_persist_selects_targets_and_says_what_it_did(cli: Cli, system: System, tmp_path: Path
                                                      ) -> None:
    """Three targets with IPv6 addresses exceed the kernel's 255 bytes; two can be chosen."""
    v6 = ["--dev", "eth0", "--local-ip", "2001:db8:1234:5678:9abc:def0:1234:ff",
          "--remote-mac", "02:00:00:00:00:02"]
    for n, name in enumerate(("alpha", "beta", "gamma")):
        r = cli("add", name, "--remote-ip", f"2001:db8:1234:5678:9abc:def0:1234:{n}", *v6,
                "--extended", "--release")
        assert r.exit_code == 0, r
    root = tmp_path / "image"
    kernel_tree(root, "6.12.0-test", builtin=False)
    set_release(system, "6.12.0-test")
    assert cli("persist", "--root", str(root)).exit_code != 0  # all three: too long
    r = cli("persist", "gamma", "alpha", "--root", str(root))
    assert r.exit_code == 0, r
    assert "2001:db8:1234:5678:9abc:def0:1234:2" in r.stdout.split(";")[0]
    assert "beta" not in r.stderr and "cmdline0 (now gamma)" in r.stderr
    data = run_json(cli, "persist", "alpha", "--boot-param", "--write", "--root", str(root),
                    "--dry-run")
    assert data["action"] == "persist" and data["changed"] is False
    assert any("modprobe.d" in s for s in data["steps"])  # type: ignore[union-attr]
    assert not (root / "etc").exists()
    data = run_json(cli, "persist", "alpha", "--boot-param", "--write", "--root", str(root))
    assert data["changed"] is True and (root / "etc/modprobe.d/netconsolectl.conf").exists()

"""Privilege checks come late: an ordinary user can list and show, and a write says why not."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable

import pytest

from netconsolectl.sender.configfs import ConfigFS
from tests.kernel.guest import kfacts
from tests.kernel.guest.conftest import CONFIG, KERNEL, Cli, Wire, userdata_args, userdata_sent
from tests.kernel.guest.test_10_targets import explicit

pytestmark = pytest.mark.usefixtures("netconsole")

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


def as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    # The host prepared an interpreter and PYTHONPATH that uid 65534 can use even when the
    # checkout is in a directory only root can enter (tests/unprivileged.py).
    how = CONFIG["nobody"]
    return subprocess.run([*NOBODY, *how["argv"], "-m", "netconsolectl", *args],
                          capture_output=True, text=True, timeout=300, cwd="/",
                          env={**os.environ, **how["env"]})


def test_unprivileged_list_and_add(cli: Cli, wire: Wire, configfs: ConfigFS,
                                   names: Callable[[str], str]) -> None:
    name = names("priv")
    assert cli("add", name, *explicit(wire.port()), *userdata_args("a=1")).code == 0

    listed = as_nobody("list", "--json")
    assert listed.returncode == 0, listed
    entries = {e["name"]: e for e in json.loads(listed.stdout)}
    assert entries[name]["enabled"] is True
    # null where the kernel has no userdata/ (6.1), as list --json says for missing attributes
    has_userdata = kfacts.measure().userdata
    assert entries[name]["userdata"] == (userdata_sent({"a": "1"}) if has_userdata else None)
    assert ("cmdline0" in entries) == KERNEL.boot_targets_in_configfs, entries

    other = names("priv-add")
    added = as_nobody("add", other, *explicit(wire.port()))
    assert added.returncode == 77, added
    assert "root" in added.stderr, added
    assert not configfs.exists(other)

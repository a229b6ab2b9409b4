"""The configuration file: validation with file:line messages, and the TOML writer."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netconsolectl.declarative.config import (
    ConfigOptions,
    dumps,
    dumps_toml,
    export_data,
    load,
    loads,
    state_to_dict,
)
from netconsolectl.errors import InvalidInput
from netconsolectl.sender.target import TargetState

GOOD = """\
[options]
console_loglevel = 8
prune = true
absent = ["cmdline0"]
arp_timeout = 0.5
arp_retries = 2

[targets.collector]
remote_ip = "192.0.2.1"
remote_port = 514
dev_name = "eth0"
local_ip = "192.0.2.10"
remote_mac = "02:00:00:00:00:01"
extended = true

[targets.collector.userdata]
host = "web1"

[targets."v6.collector"]
remote_ip = "2001:db8::1"
release = true
enabled = false
"""


def test_good_file() -> None:
    c = loads(GOOD, source="f.toml")
    assert c.options == ConfigOptions(console_loglevel=8, prune=True, absent=("cmdline0",),
                                arp_timeout=0.5, arp_retries=2)
    assert c.names() == ["collector", "v6.collector"]
    t = c.targets[0]
    assert t.line == 8
    assert t.spec.remote_ip == ipaddress.ip_address("192.0.2.1")
    assert t.spec.remote_port == 514 and t.spec.extended is True
    assert t.spec.userdata == {"host": "web1"}
    assert t.spec.local_port is None  # not said: the kernel default applies
    v6 = c.targets[1]
    assert v6.spec.extended is True  # release implies extended
    assert v6.spec.enabled is False


def test_empty_file_is_an_empty_configuration() -> None:
    c = loads("")
    assert c.targets == () and c.options == ConfigOptions()


def err(text: str, *needles: str) -> str:
    with pytest.raises(InvalidInput) as e:
        loads(text, source="f.toml")
    msg = str(e.value)
    for n in needles:
        assert n in msg, msg
    return msg


def test_syntax_error_names_the_line() -> None:
    err('[targets.a]\nremote_ip = "192.0.2.1"\nremote_port = = 1\n', "f.toml:3:", "invalid TOML")


def test_bad_value_names_the_line_of_the_key() -> None:
    err('[targets.a]\nremote_ip = "192.0.2.1"\n\nlocal_ip = "300.1.1.1"\n',
        "f.toml:4:", "target 'a'", "300.1.1.1")


def test_bad_userdata_names_the_line_of_the_entry() -> None:
    text = '[targets.a]\nremote_ip = "192.0.2.1"\n[targets.a.userdata]\nok = "1"\n"a/b" = "x"\n'
    err(text, "f.toml:5:", "userdata key")


def test_empty_userdata_value_is_refused() -> None:
    err('[targets.a]\nremote_ip = "192.0.2.1"\nuserdata = { k = "" }\n', "f.toml:3:",
        "empty")


@pytest.mark.parametrize(("text", "needles"), [
    ('[targets.a]\nremote_port = 1\n', ["f.toml:1:", "remote_ip is required"]),
    ('[targets.a]\nremote_ip = "192.0.2.1"\nmtu = 1\n', ["f.toml:3:", "unknown key 'mtu'"]),
    ('[targets."a/b"]\nremote_ip = "192.0.2.1"\n', ["f.toml:1:", "invalid target name"]),
    ('[targets.a]\nremote_ip = "192.0.2.1"\nremote_port = "514"\n', ["must be an integer"]),
    ('[targets.a]\nremote_ip = "192.0.2.1"\nremote_port = 0\n', ["f.toml:3:", "port"]),
    ('[targets.a]\nremote_ip = "192.0.2.1"\nextended = "yes"\n', ["true or false"]),
    ('[targets.a]\nremote_ip = 1\n', ["must be a string"]),
    ('[targets.a]\nremote_ip = "192.0.2.1"\nlocal_ip = "2001:db8::1"\n',
     ["f.toml:1:", "different families"]),
    ('[targets.a]\nremote_ip = "192.0.2.1"\nrelease = true\nextended = false\n',
     ["release = true needs extended = true"]),
    ('[targets.a]\nremote_ip = "192.0.2.1"\ndev_name = "a-very-long-interface"\n',
     ["f.toml:3:", "interface name"]),
    ('[targets.a]\nremote_ip = "192.0.2.1"\nremote_mac = "aa-bb-cc-dd-ee-ff"\n',
     ["f.toml:3:", "MAC"]),
    ('[options]\nconsole_loglevel = 9\n', ["f.toml:2:", "1 to 8"]),
    ('[options]\nconsole_loglevel = true\n', ["1 to 8"]),
    ('[options]\nprune = 1\n', ["prune must be true or false"]),
    ('[options]\nabsent = "x"\n', ["absent must be a list"]),
    ('[options]\nabsent = ["../x"]\n', ["invalid target name"]),
    ('[options]\narp_timeout = 0\n', ["arp_timeout"]),
    ('[options]\narp_retries = 0\n', ["arp_retries"]),
    ('[options]\nverbose = 1\n', ["f.toml:2:", "unknown option 'verbose'"]),
    ('[target.a]\nremote_ip = "192.0.2.1"\n', ["unknown top-level key 'target'"]),
    ('targets = 1\n', ["targets must be a table"]),
    ('[targets]\na = 1\n', ["target 'a' must be a table"]),
    ('[options]\nabsent = ["a"]\n[targets.a]\nremote_ip = "192.0.2.1"\n',
     ["f.toml:2:", "both configured and listed in absent"]),
])
def test_validation_errors(text: str, needles: list[str]) -> None:
    err(text, *needles)


def test_json_configuration() -> None:
    c = loads('{"targets": {"a": {"remote_ip": "192.0.2.1", "remote_port": 514}}}')
    assert c.targets[0].spec.remote_port == 514
    with pytest.raises(InvalidInput, match=r"<config>:1: invalid JSON"):
        loads("{nope")
    with pytest.raises(InvalidInput, match="target 'a': remote_ip is required"):
        loads('{"targets": {"a": {}}}')


def test_load_reads_files_and_reports_a_missing_one(tmp_path: Path) -> None:
    p = tmp_path / "c.json"
    p.write_text('{"targets": {}}')
    assert load(p).targets == ()
    with pytest.raises(InvalidInput, match="no such configuration file"):
        load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(InvalidInput, match="not UTF-8"):
        load(bad)


def test_export_data_from_live_state() -> None:
    s = TargetState(
        name="t1", enabled=False, dev_name="eth0", local_ip="0.0.0.0", local_port=6665,
        remote_ip="192.0.2.1", remote_port=6666, local_mac="ff:ff:ff:ff:ff:ff",
        remote_mac="FF:FF:FF:FF:FF:FF", extended=False, release=None, transmit_errors=3,
        userdata={"k": "v"},
    )
    d = state_to_dict(s)
    assert d == {"remote_ip": "192.0.2.1", "remote_port": 6666, "dev_name": "eth0",
                 "local_port": 6665, "remote_mac": "ff:ff:ff:ff:ff:ff", "extended": False,
                 "enabled": False, "userdata": {"k": "v"}}
    text = dumps(export_data([s]), header="hello")
    assert text.startswith("# hello\n")
    again = loads(text)
    assert again.names() == ["t1"] and again.targets[0].spec.userdata == {"k": "v"}


_names = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,20}", fullmatch=True)
_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\0"),
    min_size=1, max_size=40,
).filter(lambda v: len(v.encode()) <= 199)
_keys = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="/="),
    min_size=1, max_size=53,
).filter(lambda k: k not in (".", ".."))


@given(st.dictionaries(_names, st.fixed_dictionaries(
    {"remote_ip": st.ip_addresses(v=4).filter(lambda a: not a.is_unspecified and not a.is_multicast
                                            and str(a) != "255.255.255.255").map(str),
     "remote_port": st.integers(1, 65535),
     "enabled": st.booleans()},
    optional={"userdata": st.dictionaries(_keys, _values, min_size=1, max_size=4),
              "extended": st.booleans()},
), max_size=4))
def test_toml_writer_round_trips(targets: dict[str, dict[str, object]]) -> None:
    text = dumps_toml({"targets": targets})
    c = loads(text)
    assert c.names() == list(targets)
    for t in c.targets:
        want = targets[t.name]
        assert str(t.spec.remote_ip) == want["remote_ip"]
        assert t.spec.userdata == want.get("userdata", {})
        assert t.spec.enabled == want["enabled"]


# -- issue 23 item 13: what apply must not take as its file -----------------------------------


def test_fifo_or_device_as_configuration_is_refused_not_waited_on(tmp_path: Path) -> None:
    """A FIFO made `apply` wait forever for a writer (run in a child so that the old hang
    fails the test instead of stopping the run)."""
    import os
    import subprocess
    import sys

    fifo = tmp_path / "nc.toml"
    os.mkfifo(fifo, 0o644)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETCONSOLECTL_")}
    p = subprocess.run([sys.executable, "-m", "netconsolectl", "--configfs-root",
                        str(tmp_path / "root"), "apply", str(fifo), "--dry-run"],
                       capture_output=True, text=True, timeout=120, env=env, check=False)
    assert p.returncode == 2, p.stderr
    assert f"{fifo} is a FIFO, not a regular file" in p.stderr
    with pytest.raises(InvalidInput, match="/dev/zero is a device, not a regular file"):
        load("/dev/zero", strict=False)  # (as root, StrictModes refuses it first: mode 0666)


def test_line_numbers_of_many_targets() -> None:
    """The line index behind every message (built once: planning 200,000 targets was
    quadratic); bench/apply.py measures the time."""
    text = "".join(f'[targets.t{i}]\nremote_ip = "192.0.2.1"\n' for i in range(3))
    text += '[targets.t3]\nremote_ip = "192.0.2.999"\n'
    with pytest.raises(InvalidInput, match=r"^<config>:8: target 't3'"):
        loads(text)
    lines = '[options]\nprune = true\n[targets.a]\nremote_ip = "x"\n'
    lines = 'targets.b.remote_ip = "y"\n' + lines
    from netconsolectl.declarative.config import _Lines

    index = _Lines(lines)
    assert index.of_table("options") == 2 and index.of_key(("options",), "prune") == 3
    assert index.of_table("targets", "a") == 4 and index.of_table("targets", "b") == 1
    assert index.of_key(("targets", "a"), "remote_ip") == 5
    assert index.of_key(("targets", "a"), "missing") == 4 and index.of_table("nope") is None


def test_more_targets_than_netconsole_can_sensibly_send_to_are_refused() -> None:
    from netconsolectl.declarative.config import MAX_TARGETS

    text = "".join(f'[targets.t{i}]\nremote_ip = "192.0.2.1"\n' for i in range(MAX_TARGETS))
    assert len(loads(text).targets) == MAX_TARGETS
    text += '[targets.extra]\nremote_ip = "192.0.2.1"\n'
    with pytest.raises(InvalidInput, match=f"{MAX_TARGETS + 1} targets; at most {MAX_TARGETS}"):
        loads(text)

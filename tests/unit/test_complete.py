"""Completion: what the machine knows, the fast path, and that it agrees with typer."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netconsolectl.cli import complete
from tests.completion.fakeroot import fast_path_wired, make_root

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    r = make_root(tmp_path / "root")
    monkeypatch.setenv("NETCONSOLECTL_CONFIGFS_ROOT", str(r))
    return r


@pytest.fixture
def sysnet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake /sys/class/net: eth0 (up), br0 with its port eth1, lo."""
    net = tmp_path / "sys-class-net"
    for name, state in (("eth0", "up"), ("br0", "up"), ("eth1", "up"), ("lo", "unknown")):
        (net / name).mkdir(parents=True)
        (net / name / "operstate").write_text(state + "\n")
    (net / "eth1" / "master").symlink_to(net / "br0")
    monkeypatch.setattr(complete, "SYS_CLASS_NET", str(net))
    return net


def bash_env(line: str, **extra: str) -> dict[str, str]:
    """A bash completion request for ``line``, cursor at its end, split as bash splits."""
    words = line.replace("=", " = ").replace(":", " : ").split()
    if line.endswith(" "):
        words.append("")
    return {"_NETCONSOLECTL_COMPLETE": "complete_bash", "COMP_WORDS": "\n".join(words),
            "COMP_CWORD": str(len(words) - 1), **extra}


def bash(line: str) -> list[str]:
    found = complete.answer(bash_env(line))
    assert found is not None, f"fast path deferred {line!r} to typer"
    return [x for x in found[0].split("\n") if x]


# -- the machine ------------------------------------------------------------------------------


def test_default_root_is_the_products() -> None:
    from netconsolectl.sender.configfs import DEFAULT_ROOT as PRODUCT_DEFAULT

    default = complete.DEFAULT_ROOT
    assert str(PRODUCT_DEFAULT) == default


def test_root_in_effect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NETCONSOLECTL_CONFIGFS_ROOT", raising=False)
    assert complete.configfs_root() == "/sys/kernel/config"
    monkeypatch.setenv("NETCONSOLECTL_CONFIGFS_ROOT", "/env")
    assert complete.configfs_root() == "/env"
    assert complete.configfs_root("/line") == "/line"
    assert complete.configfs_root("~/x") == os.path.expanduser("~/x")


def test_targets_are_described(root: Path) -> None:
    assert complete.targets(str(root)) == [
        ("cmdline0", "enabled, 198.51.100.7:514"),
        ("db", "disabled, no remote yet"),
        ("web", "enabled, 192.0.2.1:6666 via eth0"),
    ]


@pytest.mark.parametrize("where", ["missing", "file", "no-netconsole"])
def test_no_targets_without_a_root(tmp_path: Path, where: str) -> None:
    path = tmp_path / "r"
    if where == "file":
        path.write_text("")
    elif where == "no-netconsole":
        path.mkdir()
    assert complete.targets(str(path)) == []
    assert complete.values("userdata", "", str(path), "web") == []


def test_interfaces_name_the_master_of_a_port(sysnet: Path) -> None:
    assert complete.interfaces() == [
        ("br0", "up"), ("eth0", "up"), ("eth1", "up, port of br0 (use br0)"), ("lo", "unknown"),
    ]


def test_interfaces_without_sysfs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import socket

    monkeypatch.setattr(complete, "SYS_CLASS_NET", str(tmp_path / "nothing"))
    assert [n for n, _ in complete.interfaces()] == sorted(n for _, n in socket.if_nameindex())


def test_userdata(root: Path) -> None:
    r = str(root)
    assert [v for v, _ in complete.values("userdata", "", r, "web")] == ["dc=", "host="]
    # one key: its current value too, so that the shell stops after the = (KEY= removes KEY)
    assert [v for v, _ in complete.values("userdata", "h", r, "web")] == ["host=", "host=web01"]
    assert [v for v, _ in complete.values("userdata", "d", r, "web")] == ["dc=", "dc=fra 1"]
    assert complete.values("userdata", "host=", r, "web") == [("host=web01", "current value")]
    assert complete.values("userdata", "", r, "../web") == []


def test_config_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for f in ("a.toml", "b.txt", ".hidden.toml", "conf/lab/x.toml", "conf/lab/y.toml"):
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text("")
    assert complete.config_file_paths("") == ["a.toml", "conf/"]
    # a lone directory opens (down to where there is a choice): the word does not end there
    assert complete.config_file_paths("c") == ["conf/lab/x.toml", "conf/lab/y.toml"]
    assert complete.config_file_paths("conf/lab/y") == ["conf/lab/y.toml"]
    assert complete.config_file_paths(".") == [".hidden.toml"]
    assert complete.config_file_paths(f"{tmp_path}/a") == [f"{tmp_path}/a.toml"]
    assert complete.config_file_paths("nowhere/") == []


# -- the table and the fast path ---------------------------------------------------------------


def test_table_is_current() -> None:
    """The table, the scripts and the man page follow the command line."""
    out = subprocess.run([sys.executable, str(REPO / "scripts/gen_completions.py"), "--check"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def walk(node: dict[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...],
                                                                              dict[str, Any]]]:
    yield path, node
    for name, sub in node.get("commands", {}).items():
        yield from walk(sub, (*path, name))


def test_every_completer_is_answered_without_typer() -> None:
    """A callback outside complete.py would send every <TAB> through typer (slow)."""
    slow = [
        f"{' '.join(path)} {p['opts'][0] if 'opts' in p else p['name'].upper()}"
        for path, node in walk(complete.TREE)
        for p in (*node["options"], *node.get("arguments", []))
        if p.get("complete") == "typer"
    ]
    assert not slow, (f"{slow}: autocompletion callbacks outside netconsolectl.cli.complete; "
                      "add them there (COMPLETERS) so the fast path can answer")
    kinds = {p.get("complete", "") for _, node in walk(complete.TREE)
             for p in (*node["options"], *node.get("arguments", []))}
    assert kinds <= {*complete.COMPLETERS, "choices", ""}


TARGET_COMMANDS = ("enable", "disable", "set", "show", "remove", "test", "cmdline")


@pytest.mark.parametrize("command", TARGET_COMMANDS)
def test_commands_naming_a_target_complete_targets(command: str) -> None:
    node = complete.TREE["commands"].get(command)
    if node is None:
        pytest.skip(f"no {command} command yet")
    names = [a for a in node.get("arguments", []) if a["name"] in ("name", "names")]
    assert names and names[0].get("complete") == "targets", (
        f"`{command}` NAME: add autocompletion=complete.target_names to its typer.Argument")


def test_wiring_of_dev_userdata_and_apply() -> None:
    commands = complete.TREE["commands"]
    for command in ("add", "set", "resolve"):
        dev = [o for o in commands.get(command, {"options": []})["options"] if "--dev" in o["opts"]]
        assert not dev or dev[0].get("complete") == "interfaces", (
            f"`{command} --dev`: add autocompletion=complete.interface_names to its typer.Option")
    userdata = [o for o in commands["set"]["options"] if "--userdata" in o["opts"]]
    assert userdata[0].get("complete") == "userdata"
    if "apply" in commands:
        kinds = [a.get("complete") for a in commands["apply"].get("arguments", [])]
        assert "config_files" in kinds, "apply FILE: autocompletion=complete.config_files"


@pytest.mark.usefixtures("root")
def test_fast_path_answers(sysnet: Path) -> None:
    assert bash("netconsolectl en") == ["enable"]
    assert bash("netconsolectl show ") == ["cmdline0", "db", "web"]
    assert bash("netconsolectl --debug show --json w") == ["web"]
    assert bash("netconsolectl add x --dev ") == ["br0", "eth0", "eth1", "lo"]
    assert bash("netconsolectl set web --userdata ") == ["dc=", "host="]
    assert bash("netconsolectl show web ") == []  # nothing more to name
    assert bash("netconsolectl show -- ") == ["cmdline0", "db", "web"]


def test_configfs_root_on_the_line(root: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    (other / "netconsole" / "lab").mkdir(parents=True)
    assert bash(f"netconsolectl --configfs-root {other} show ") == ["lab"]
    assert bash(f"netconsolectl --configfs-root={other} show ") == ["lab"]
    assert bash(f"netconsolectl --configfs-root {tmp_path}/nowhere show ") == []


@pytest.mark.usefixtures("root")
def test_options_given_once_are_not_offered_again() -> None:
    got = bash("netconsolectl set web --dry-run --userdata a=b --")
    assert "--dry-run" not in got and "--userdata" in got  # --userdata repeats
    assert "--no-extended" in got


@pytest.mark.usefixtures("root", "sysnet")
def test_bash_word_breaks() -> None:
    """bash splits at = and : and replaces only the part after the last one."""
    assert bash("netconsolectl add x --dev=e") == ["eth0", "eth1"]
    # The cursor right after a break: readline replaces only what follows it, so the
    # candidates leave the break out (issue 23 item 18: '=eth0' made '--dev==eth0').
    assert bash("netconsolectl add x --dev=") == ["br0", "eth0", "eth1", "lo"]
    assert bash("netconsolectl set web --userdata host=") == ["web01"]
    assert bash("netconsolectl set web --userdata dc=f") == [r"fra\ 1"]
    assert bash("netconsolectl --configfs-root=") == []


def test_colon_words(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(complete.TREE, "commands", {"set": {
        "help": "", "options": [{"name": "remote_mac", "opts": ["--remote-mac"],
                                 "complete": "attr:remote_mac", "help": ""}],
        "arguments": [{"name": "name", "nargs": 1, "complete": "targets"}],
    }})
    assert bash("netconsolectl set web --remote-mac ") == ["52:54:00:12:34:56"]
    assert bash("netconsolectl set web --remote-mac 52:54:") == ["00:12:34:56"]


@pytest.mark.usefixtures("root")
def test_zsh_and_fish_formats() -> None:
    zsh = {"_NETCONSOLECTL_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "netconsolectl show "}
    assert complete.answer(zsh) == (
        "_arguments '*: :((\"cmdline0\":\"enabled, 198.51.100.7\\\\:514\"\n"
        "\"db\":\"disabled, no remote yet\"\n\"web\":\"enabled, 192.0.2.1\\\\:6666 via eth0\"))'",
        0,
    )
    assert complete.answer({**zsh, "_TYPER_COMPLETE_ARGS": "netconsolectl add "}) == ("_files", 0)
    fish = {"_NETCONSOLECTL_COMPLETE": "complete_fish", "_TYPER_COMPLETE_ARGS": "netconsolectl sh",
            "_TYPER_COMPLETE_FISH_ACTION": "get-args"}
    text, status = complete.answer(fish) or ("", -1)
    assert text.startswith("show\tEvery attribute") and status == 0
    assert complete.answer({**fish, "_TYPER_COMPLETE_FISH_ACTION": "is-args"}) == ("", 0)
    nothing = {**fish, "_TYPER_COMPLETE_ARGS": "netconsolectl add ",
               "_TYPER_COMPLETE_FISH_ACTION": "is-args"}
    assert complete.answer(nothing) == ("", 1)  # fish completes files instead
    eq = {**fish, "_TYPER_COMPLETE_ARGS": "netconsolectl --configfs-root=/x sh"}
    assert complete.answer(eq) is not None
    assert complete.answer({**zsh, "_TYPER_COMPLETE_ARGS": "netconsolectl show --json=x"}) == (
        "_files", 0)


@pytest.mark.parametrize("line", [
    "netconsolectl frobnicate ",  # a command the table does not know
    "netconsolectl show --frobnicate ",  # an option it does not know
])
def test_unknown_words_go_to_typer(line: str) -> None:
    assert complete.answer(bash_env(line)) is None


@pytest.mark.parametrize("env", [
    {},
    {"_NETCONSOLECTL_COMPLETE": "source_bash"},
    {"_NETCONSOLECTL_COMPLETE": "complete_powershell"},
    {"_NETCONSOLECTL_COMPLETE": "complete_bash", "COMP_WORDS": "x", "COMP_CWORD": "one"},
])
def test_other_requests_go_to_typer(env: dict[str, str]) -> None:
    assert complete.answer(env) is None
    complete.fast_complete(env)  # returns instead of exiting


def test_fast_complete_prints_and_exits(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        complete.fast_complete(bash_env("netconsolectl show "))
    assert exit_.value.code == 0
    assert capsys.readouterr().out == "cmdline0\ndb\nweb\n"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="ab -=:'\"\\$", max_size=6), max_size=6),
       st.sampled_from(["bash", "zsh", "fish"]))
def test_never_raises(words: list[str], shell: str) -> None:
    line = " ".join(["netconsolectl", *words])
    env = {"_NETCONSOLECTL_COMPLETE": f"complete_{shell}", "_TYPER_COMPLETE_ARGS": line,
           "COMP_WORDS": line, "COMP_CWORD": str(len(words)),
           "NETCONSOLECTL_CONFIGFS_ROOT": "/nonexistent"}
    complete.answer(env)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="ab \t'\"\\", max_size=12))
def test_split_words_is_shlex(line: str) -> None:
    lex = shlex.shlex(line, posix=True)
    lex.whitespace_split, lex.commenters = True, ""
    try:
        expected = list(lex)
    except ValueError:
        return  # unterminated: click keeps the partial word, so do we (not compared)
    assert complete.split_words(line) == expected


# -- agreement with typer ---------------------------------------------------------------------


def corpus() -> Iterator[tuple[list[str], str]]:
    """Command lines covering every command, option and argument in the table."""
    yield [], ""
    yield [], "-"
    yield [], "--"
    yield [], "s"
    yield ["--debug"], ""
    for name, node in complete.TREE["commands"].items():
        yield [], name[:2]
        yield [name], ""
        yield [name], "-"
        yield [name], "--"
        yield [name], "--d"
        for opt in node["options"]:
            if opt.get("nargs", 1) >= 1 and opt.get("complete") != "userdata":
                yield [name, opt["opts"][0]], ""
        for arg in node.get("arguments", []):
            if arg["name"] == "name":
                yield [name], "w"
                yield [name, "web"], ""
                yield [name, "web", "--dry-run"] if any(
                    "--dry-run" in o["opts"] for o in node["options"]) else [name, "web"], "--"


def test_same_answers_as_typer(root: Path, sysnet: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """For every line of the corpus the fast path offers exactly what typer offers."""
    import typer.main
    from typer._completion_classes import BashComplete, completion_init

    from netconsolectl.cli import app

    completion_init()
    cli = typer.main.get_command(app)
    differ = []
    for args, incomplete in corpus():
        found = complete.complete_line(list(args), incomplete)
        if found is None:
            continue
        # the order of -h/--help changes from one process to the next (click keeps them in a set)
        ours = sorted(v for v, _ in found[0])
        comp = BashComplete(cli, {}, "netconsolectl", "_NETCONSOLECTL_COMPLETE")
        theirs = sorted(i.value for i in comp.get_completions(list(args), incomplete)
                        if i.type == "plain")
        if ours != theirs:
            differ.append((args, incomplete, ours, theirs))
    assert not differ, json.dumps(differ, indent=1)


# -- the process ------------------------------------------------------------------------------

HEAVY = ("typer", "click", "pydantic", "rich", "pyroute2", "scapy", "shlex",
         "netconsolectl.receiver", "netconsolectl.discover", "netconsolectl.cli.targets")

PROBE = """
import json, sys
from netconsolectl.cli.complete import fast_complete
try:
    fast_complete()
finally:
    sys.stderr.write(json.dumps(sorted(sys.modules)))
"""


def test_fast_path_imports_nothing_heavy(root: Path) -> None:
    env = {**os.environ, **bash_env("netconsolectl show ")}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.stdout == "cmdline0\ndb\nweb\n"
    loaded = json.loads(out.stderr)
    assert [m for m in loaded if m.startswith(HEAVY)] == []


@pytest.mark.skipif(not fast_path_wired(), reason="completion fast path not wired into main()")
def test_entry_point_answers_without_typer(root: Path) -> None:
    env = {**os.environ, **bash_env("netconsolectl show "), "PYTHONPROFILEIMPORTTIME": "1"}
    out = subprocess.run([sys.executable, "-m", "netconsolectl"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.stdout == "cmdline0\ndb\nweb\n"
    loaded = [ln.rsplit("|", 1)[-1].strip() for ln in out.stderr.splitlines() if "|" in ln]
    assert [m for m in loaded if m.startswith(HEAVY)] == []


def test_typer_callbacks(root: Path, sysnet: Path) -> None:
    """The same answers through typer's callbacks (used when the fast path steps aside)."""

    class Ctx:
        params: ClassVar[dict[str, str]] = {"name": "web"}

        def find_root(self) -> Any:
            return type("Root", (), {"params": {"configfs_root": None}})()

    assert [v for v, _ in complete.target_names(Ctx(), "")] == ["cmdline0", "db", "web"]
    assert [v for v, _ in complete.interface_names("e")] == ["eth0", "eth1"]
    assert [v for v, _ in complete.userdata_items(Ctx(), "")] == ["dc=", "host="]
    assert complete.remote_ip_value(Ctx(), "") == [("192.0.2.1", "current value of web")]
    assert complete.target_names(None, "") == complete.target_names(object(), "")


def test_typer_callbacks_find_the_name_on_the_line(root: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """click never parses the name when an option waits for its value: read the line."""
    for k, v in bash_env("netconsolectl set web --userdata ").items():
        monkeypatch.setenv(k, v)

    class Ctx:
        params: ClassVar[dict[str, str]] = {}

    assert [v for v, _ in complete.userdata_items(Ctx(), "")] == ["dc=", "host="]


def test_version() -> None:
    from importlib.metadata import version

    import netconsolectl

    out = subprocess.run([sys.executable, "-m", "netconsolectl", "--version"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert out.stdout == f"netconsolectl {netconsolectl.__version__}\n"
    assert version("netconsolectl") == netconsolectl.__version__

"""The fast read-only path answers exactly as the typer commands do."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from netconsolectl.cli.readonly import fast_main
from netconsolectl.cli.render import LIST_COLUMNS, list_rows, plain_table, show_rows
from netconsolectl.sender.emulation import Emulation
from netconsolectl.sender.target import Target
from tests.conftest import Cli

EXPLICIT = ["--dev", "eth0", "--local-ip", "192.0.2.10", "--remote-mac", "02:00:00:00:00:01"]


@pytest.fixture
def populated(cli: Cli, kernel: Emulation) -> Emulation:
    for name, extra in [("alpha", ["--extended", "--userdata", "rack=r7"]),
                        ("beta", ["--release", "--disabled"]), ("gamma", [])]:
        assert cli("add", name, "--remote-ip", "192.0.2.1", *EXPLICIT, *extra).exit_code == 0
    return kernel


def run_entry_point(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from netconsolectl.cli import main; main()", *args],
        capture_output=True, text=True, check=False,
        # The sandbox emulates the same kernel as the injected fake (the 6.12 profile).
        env={**os.environ, "NETCONSOLECTL_CONFIGFS_ROOT": str(root),
             "NETCONSOLECTL_SANDBOX_KERNEL": "6.12"},
    )


@pytest.mark.parametrize(
    "args",
    [["list"], ["list", "--json"], ["show", "alpha"], ["show", "beta", "--json"],
     ["show", "nope"], ["show", "a/b"]],
)
def test_fast_path_matches_typer(populated: Emulation, cli: Cli, args: list[str]) -> None:
    via_typer = cli(*args)
    fast = run_entry_point(populated.root, *args)
    # The root given by the environment is a plain directory: a sandbox, said once first.
    note, _, rest = fast.stderr.partition("\n")
    assert "is not a configfs mount: using it as a sandbox" in note
    assert (fast.returncode, fast.stdout, rest) == (
        via_typer.exit_code, via_typer.stdout, via_typer.stderr)


def test_fast_path_does_not_import_typer(populated: Emulation) -> None:
    code = ("import sys; from netconsolectl.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('typer', 'rich', 'pyroute2', 'scapy')), file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code, "list"], capture_output=True, text=True,
                       env={**os.environ, "NETCONSOLECTL_CONFIGFS_ROOT": str(populated.root)},
                       check=True)
    assert r.stderr.strip().splitlines()[-1] == "[]"
    assert "alpha" in r.stdout


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["list", "--help"], ["list", "-h"], ["show"], ["show", "a", "b"],
     ["list", "--bogus"], ["--version"], ["add", "x"], [], ["--configfs-root"],
     ["show", "--json"]],
)
def test_fast_path_declines_everything_else(argv: list[str]) -> None:
    assert fast_main(argv) is None


def test_fast_path_global_options(populated: Emulation, capsys: pytest.CaptureFixture[str]
                                  ) -> None:
    assert fast_main(["--configfs-root", str(populated.root), "list", "--json"]) == 0
    assert '"alpha"' in capsys.readouterr().out
    assert fast_main([f"--configfs-root={populated.root}", "--debug", "show", "gamma"]) == 0
    assert fast_main(["--configfs-root", str(populated.root), "show", "nope"]) == 3


def test_plain_rendering_is_what_rich_prints(populated: Emulation) -> None:
    from rich.console import Console
    from rich.table import Table

    states = [Target(populated, n).state() for n in populated.listdir()]
    for rows, header in [(list_rows(states), LIST_COLUMNS), (show_rows(states[0]), None)]:
        table = Table(box=None, show_header=header is not None)
        for col in header or ["", ""]:
            table.add_column(col)
        for r in rows:
            table.add_row(*r)
        buf = io.StringIO()
        Console(file=buf, width=10_000, markup=False, highlight=False,
                color_system=None).print(table)
        # The same text, without the trailing spaces rich pads the last column with.
        rich_text = "".join(line.rstrip() + "\n" for line in buf.getvalue().splitlines())
        assert plain_table(rows, header) == rich_text


V6 = ["--dev", "eth0", "--local-ip", "2001:db8::10", "--remote-mac", "02:00:00:00:00:02"]


def run_on_terminal(root: Path, columns: int, *args: str) -> str:
    """The entry point on a pseudo-terminal ``columns`` wide; what it printed."""
    import pty

    pid, master = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.environ.update(COLUMNS=str(columns), LINES="50", TERM="xterm",
                          NETCONSOLECTL_CONFIGFS_ROOT=str(root))
        os.environ.pop("NO_COLOR", None)
        os.execv(sys.executable, [sys.executable, "-c",
                                  "from netconsolectl.cli import main; main()", *args])
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return b"".join(chunks).decode().replace("\r\n", "\n")


def without_sandbox_note(text: str) -> str:
    """The output minus the one line saying the root is a sandbox (a plain directory)."""
    return "".join(line for line in text.splitlines(keepends=True)
                   if "is not a configfs mount: using it as a sandbox" not in line)


def test_list_at_80_columns_never_cuts_an_address(populated: Emulation, cli: Cli) -> None:
    assert cli("add", "v6-collector-long-name", "--remote-ip", "2001:db8:1234:5678:9abc:def0:1:2",
               *V6).exit_code == 0
    out = without_sandbox_note(run_on_terminal(populated.root, 80, "list"))
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", out)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    for whole in ("192.0.2.10:6665", "192.0.2.1:6666", "02:00:00:00:00:01",
                  "[2001:db8::10]:6665", "[2001:db8:1234:5678:9abc:def0:1:2]:6666",
                  "02:00:00:00:00:02", "v6-collector-long-name", "extended+release"):
        assert whole in text, whole
    # a terminal wide enough keeps the table
    wide = re.sub(r"\x1b\[[0-9;]*m", "",
                  without_sandbox_note(run_on_terminal(populated.root, 200, "list")))
    assert wide.split()[:3] == ["NAME", "STATE", "DEV"]


def test_ipv6_endpoints_are_bracketed(cli: Cli) -> None:
    r = cli("add", "v6", "--remote-ip", "2001:db8::1", *V6)
    assert r.exit_code == 0, r
    assert "added v6: [2001:db8::10]:6665 -> [2001:db8::1]:6666 " in r.stderr
    listed = cli("list")
    assert "[2001:db8::10]:6665" in listed.stdout and "[2001:db8::1]:6666" in listed.stdout


OUTPUT_COMMANDS = [["list"], ["list", "--json"], ["show", "alpha"], ["export"], ["--help"]]


@pytest.mark.parametrize("args", OUTPUT_COMMANDS)
def test_closed_pipe_ends_quietly(populated: Emulation, args: list[str]) -> None:
    """`netconsolectl list | true`: no traceback, nothing on stderr, the SIGPIPE status."""
    r, w = os.pipe()
    os.close(r)  # the reader is gone before the first write
    try:
        p = subprocess.run(
            [sys.executable, "-c", "from netconsolectl.cli import main; main()", *args],
            stdout=w, stderr=subprocess.PIPE, text=True, check=False,
            env={**os.environ, "NETCONSOLECTL_CONFIGFS_ROOT": str(populated.root)},
        )
    finally:
        os.close(w)
    assert without_sandbox_note(p.stderr) == ""
    assert p.returncode == 141  # as if killed by SIGPIPE, like `ls | true`


@pytest.mark.parametrize("args", OUTPUT_COMMANDS)
def test_full_disk_is_one_line(populated: Emulation, args: list[str]) -> None:
    with open("/dev/full", "wb") as full:
        p = subprocess.run(
            [sys.executable, "-c", "from netconsolectl.cli import main; main()", *args],
            stdout=full, stderr=subprocess.PIPE, text=True, check=False,
            env={**os.environ, "NETCONSOLECTL_CONFIGFS_ROOT": str(populated.root)},
        )
    assert without_sandbox_note(p.stderr) == (
        "netconsolectl: error: cannot write output: no space left on device\n")
    assert p.returncode == 1


INTERRUPTED_IMPORT = """
import builtins, sys
real = builtins.__import__
def ctrl_c_in(name, *args, **kwargs):  # the moment a Ctrl-C arrives while typer loads
    if name == "typer":
        raise KeyboardInterrupt
    return real(name, *args, **kwargs)
builtins.__import__ = ctrl_c_in
from netconsolectl.cli import main
main()
"""


def test_ctrl_c_while_the_command_line_loads_is_one_line(populated: Emulation) -> None:
    p = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_IMPORT, "add", "x", "--remote-ip", "192.0.2.1"],
        capture_output=True, text=True, check=False,
        env={**os.environ, "NETCONSOLECTL_CONFIGFS_ROOT": str(populated.root)},
    )
    assert without_sandbox_note(p.stderr) == "netconsolectl: interrupted\n"
    assert p.returncode == 130  # the shell's status for SIGINT


def test_show_fits_80_columns_and_shows_no_python_repr(populated: Emulation) -> None:
    """Issue 23 item 15: sysdata printed as a dict, rows padded past 80 columns, ``:None``."""
    from dataclasses import replace

    s = Target(populated, populated.listdir()[0]).state()
    s = replace(s, userdata={"long": "x" * 150, "rack": "a1"}, local_port=None,
                sysdata={"cpu_nr": True, "taskname": False, "release": None, "msgid": False})
    text = plain_table(show_rows(s))
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert not any(line != line.rstrip() for line in text.splitlines())
    assert "{" not in text and "None" not in text and "True" not in text, text
    assert "cpu_nr (release unreadable)" in text
    xs = [line.split()[-1] for line in text.splitlines() if set(line.split()[-1]) == {"x"}]
    assert "".join(xs) == "x" * 150  # wrapped, nothing cut
    table = plain_table(list_rows([s]), LIST_COLUMNS)
    assert ":None" not in table

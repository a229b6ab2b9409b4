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
from netconsolectl.sender.target import Target
from tests.conftest import Cli
from tests.fakekernel import FakeKernel

EXPLICIT = ["--dev", "eth0", "--local-ip", "192.0.2.10", "--remote-mac", "02:00:00:00:00:01"]


@pytest.fixture
def populated(cli: Cli, kernel: FakeKernel) -> FakeKernel:
    for name, extra in [("alpha", ["--extended", "--userdata", "rack=r7"]),
                        ("beta", ["--release", "--disabled"]), ("gamma", [])]:
        assert cli("add", name, "--remote-ip", "192.0.2.1", *EXPLICIT, *extra).exit_code == 0
    return kernel


def run_entry_point(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from netconsolectl.cli import main; main()", *args],
        capture_output=True, text=True, check=False,
        env={**os.environ, "NETCONSOLECTL_CONFIGFS_ROOT": str(root)},
    )


@pytest.mark.parametrize(
    "args",
    [["list"], ["list", "--json"], ["show", "alpha"], ["show", "beta", "--json"],
     ["show", "nope"], ["show", "a/b"]],
)
def test_fast_path_matches_typer(populated: FakeKernel, cli: Cli, args: list[str]) -> None:
    via_typer = cli(*args)
    fast = run_entry_point(populated.root, *args)
    assert (fast.returncode, fast.stdout, fast.stderr) == (
        via_typer.exit_code, via_typer.stdout, via_typer.stderr)


def test_fast_path_does_not_import_typer(populated: FakeKernel) -> None:
    code = ("import sys; from netconsolectl.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('typer', 'rich', 'pyroute2', 'scapy')), file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code, "list"], capture_output=True, text=True,
                       env={**os.environ, "NETCONSOLECTL_CONFIGFS_ROOT": str(populated.root)},
                       check=True)
    assert r.stderr.strip() == "[]"
    assert "alpha" in r.stdout


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["list", "--help"], ["list", "-h"], ["show"], ["show", "a", "b"],
     ["list", "--bogus"], ["--version"], ["add", "x"], [], ["--configfs-root"],
     ["show", "--json"]],
)
def test_fast_path_declines_everything_else(argv: list[str]) -> None:
    assert fast_main(argv) is None


def test_fast_path_global_options(populated: FakeKernel, capsys: pytest.CaptureFixture[str]
                                  ) -> None:
    assert fast_main(["--configfs-root", str(populated.root), "list", "--json"]) == 0
    assert '"alpha"' in capsys.readouterr().out
    assert fast_main([f"--configfs-root={populated.root}", "--debug", "show", "gamma"]) == 0
    assert fast_main(["--configfs-root", str(populated.root), "show", "nope"]) == 3


def test_plain_rendering_is_what_rich_prints(populated: FakeKernel) -> None:
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
        assert plain_table(rows, header) == buf.getvalue()

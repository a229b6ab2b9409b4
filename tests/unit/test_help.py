"""What a newcomer reads first: --help and the man page."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import Cli

REPO = Path(__file__).resolve().parents[2]
EVERYDAY = ["add", "list", "show", "set", "enable", "disable", "remove", "listen"]


def commands() -> list[str]:
    import typer.main

    from netconsolectl.cli import app

    group = typer.main.get_command(app)
    return list(group.list_commands(None))  # type: ignore[attr-defined, arg-type]


def test_help_lists_everyday_commands_first(cli: Cli) -> None:
    out = cli("--help").stdout
    listed = re.findall(r"^  ([a-z]+) ", out.split("Commands:", 1)[1], re.M)
    assert listed[: len(EVERYDAY)] == EVERYDAY
    assert sorted(listed) == sorted(commands())


@pytest.mark.parametrize("name", [None, *EVERYDAY, "apply", "persist", "test", "resolve"])
def test_one_metavar_style(cli: Cli, name: str | None) -> None:
    """Placeholders are upper-case words (NAME, IP, SECONDS, toml|json), never typer's
    <int range>, <str> or {name}."""
    out = cli(*([name] if name else []), "--help", env={"COLUMNS": "200"}).stdout
    assert not re.search(r"<[a-z ]+>|\{[a-zA-Z_]+\}", out), out
    for line in out.splitlines():
        m = re.match(r"^  (?:-[a-z], )?(--[a-z-]+) (\S+)\s", line)
        if m:
            assert m.group(2) == m.group(2).upper() or "|" in m.group(2), line


def test_man_page_has_examples_and_files() -> None:
    man = (REPO / "completions/netconsolectl.1").read_text()
    sections = re.findall(r"^\.SH (.+)$", man, re.M)
    assert {"EXAMPLES", "FILES"} <= set(sections)
    files = man.split(".SH FILES", 1)[1].split(".SH", 1)[0]
    for path in ("/etc/netconsolectl.toml", "netconsolectl.service", "/etc/modprobe.d/",
                 "/etc/default/grub.d/"):
        assert path.replace("-", r"\-") in files, path


def test_man_page_examples_are_valid_command_lines() -> None:
    """Every example names a real command and only options it has."""
    import typer.main

    from netconsolectl.cli import app
    from scripts.gen_completions import EXAMPLES

    group = typer.main.get_command(app)
    for _, lines in EXAMPLES:
        for line in lines:
            words = shlex.split(line.split(">", 1)[0])
            words = words[words.index("netconsolectl") + 1 :]
            cmd = group.commands[words[0]]  # type: ignore[attr-defined]
            known = {o for p in [*cmd.params, *group.params] for o in [*p.opts, *p.secondary_opts]}
            for w in words[1:]:
                if w.startswith("-"):
                    assert w.split("=", 1)[0] in known, (line, w)


def test_every_option_in_help_is_in_the_readme() -> None:
    """Issue 23 item 20: an option a command's --help offers is documented in README.md
    (typer's --help and completion installers aside)."""
    import re
    from pathlib import Path

    from netconsolectl.cli.complete import TREE

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    generic = {"--help", "--show-completion", "--install-completion"}
    missing = []

    def walk(node: dict[str, object], path: list[str]) -> None:
        for opt in node.get("options", []):  # type: ignore[attr-defined]
            for o in opt["opts"]:
                if (o.startswith("--") and o not in generic and not opt.get("hidden")
                        and not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", readme)):
                    missing.append(f"{' '.join(path) or 'netconsolectl'} {o}")
        for name, sub in (node.get("commands") or {}).items():  # type: ignore[attr-defined]
            walk(sub, [*path, name])

    walk(TREE, [])
    assert missing == []

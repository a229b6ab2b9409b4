"""bash loads the shipped script and completes against a fake configfs root.

Each case sets COMP_WORDS/COMP_CWORD the way bash's readline splits the line (``=`` and ``:``
are word breaks: ``--dev=e`` arrives as ``--dev`` ``=`` ``e``), calls the completion function
the script registers, and reads COMPREPLY. The function runs the installed ``netconsolectl``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.completion.fakeroot import (
    COMPLETIONS,
    entry_point,
    fast_path_wired,
    install_layout,
    interface_names,
    make_root,
    shell_env,
)

pytestmark = [
    pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed"),
    pytest.mark.skipif(entry_point() is None, reason="netconsolectl not installed in this venv"),
]

BASH_COMPLETION = Path("/usr/share/bash-completion/bash_completion")


def complete(words: list[str], env: dict[str, str], *, prelude: str = "") -> list[str]:
    """COMPREPLY for the line ``words`` with the cursor on the last word."""
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    script = f"""
{prelude or f"source '{COMPLETIONS / 'netconsolectl'}'"}
COMP_WORDS=({quoted})
COMP_CWORD={len(words) - 1}
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
fn=$(complete -p netconsolectl | sed -n 's/.*-F \\([^ ]*\\).*/\\1/p')
"$fn" netconsolectl "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    out = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script], env=env, capture_output=True,
        text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return [line for line in out.stdout.splitlines() if line]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return shell_env(tmp_path / "home", make_root(tmp_path / "root"))


def test_commands(env: dict[str, str]) -> None:
    assert complete(["netconsolectl", "en"], env) == ["enable"]
    assert {"add", "set", "show", "list", "remove"} <= set(complete(["netconsolectl", ""], env))


@pytest.mark.parametrize("command", ["enable", "disable", "set", "show", "remove"])
def test_target_names(env: dict[str, str], command: str) -> None:
    assert complete(["netconsolectl", command, ""], env) == ["cmdline0", "db", "web"]
    assert complete(["netconsolectl", command, "w"], env) == ["web"]


def test_configfs_root_on_the_line_wins(env: dict[str, str], tmp_path: Path) -> None:
    other = tmp_path / "other"
    (other / "netconsole" / "lab").mkdir(parents=True)
    line = ["netconsolectl", "--configfs-root", str(other), "show", ""]
    assert complete(line, env) == ["lab"]


def test_interfaces_for_dev(env: dict[str, str]) -> None:
    assert complete(["netconsolectl", "add", "x", "--dev", ""], env) == interface_names()
    assert complete(["netconsolectl", "set", "web", "--dev", "lo"], env) == ["lo"]


def test_userdata_keys_of_the_named_target(env: dict[str, str]) -> None:
    assert complete(["netconsolectl", "set", "web", "--userdata", ""], env) == ["dc=", "host="]
    assert complete(["netconsolectl", "set", "db", "--userdata", ""], env) == []
    assert complete(["netconsolectl", "set", "web", "--userdata", "h"], env) == [
        "host=", "host=web01"]


def test_options(env: dict[str, str]) -> None:
    got = complete(["netconsolectl", "show", "--"], env)
    assert "--json" in got and "--help" in got


@pytest.mark.skipif(not fast_path_wired(), reason="completion fast path not wired into main()")
def test_word_breaks(env: dict[str, str]) -> None:
    """``=`` and ``:`` split words in bash; candidates go back without what bash keeps."""
    assert complete(["netconsolectl", "add", "x", "--dev", "=", "l"], env) == ["lo"]
    # The cursor right after '=': readline replaces only what follows it (issue 23 item 18:
    # '=web01' made 'host==web01').
    assert complete(["netconsolectl", "set", "web", "--userdata", "host", "="], env) == ["web01"]
    after = complete(["netconsolectl", "add", "x", "--dev", "="], env)
    assert "lo" in after and not any(c.startswith("=") for c in after)
    assert complete(["netconsolectl", "set", "web", "--userdata", "dc", "=", "f"], env) == [
        r"fra\ 1"
    ]


@pytest.mark.skipif(not BASH_COMPLETION.exists(), reason="bash-completion not installed")
def test_bash_completion_finds_the_installed_script(env: dict[str, str], tmp_path: Path) -> None:
    """bash-completion loads share/bash-completion/completions/netconsolectl on first use."""
    share = install_layout(tmp_path / "prefix")
    env = {**env, "XDG_DATA_DIRS": str(share)}
    prelude = f"source '{BASH_COMPLETION}'\n__load_completion netconsolectl || exit 3"
    assert complete(["netconsolectl", "show", ""], env, prelude=prelude) == [
        "cmdline0", "db", "web"
    ]

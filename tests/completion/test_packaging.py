"""What ships: the man page renders cleanly, the wheel maps every file, --install-completion."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from netconsolectl.cli import complete
from tests.completion.fakeroot import COMPLETIONS, REPO, entry_point, make_root, shell_env

MAN = COMPLETIONS / "netconsolectl.1"


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff not installed")
def test_man_page_renders_without_warnings() -> None:
    out = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(MAN)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and out.stderr == ""


@pytest.mark.skipif(shutil.which("man") is None, reason="man not installed")
def test_man_page_documents_every_command() -> None:
    out = subprocess.run(["man", "-l", str(MAN)], capture_output=True, text=True, timeout=60,
                         env={"MANPAGER": "cat", "MANWIDTH": "100", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for section in ("NAME", "SYNOPSIS", "GLOBAL OPTIONS", "COMMANDS", "EXIT STATUS",
                    "ENVIRONMENT"):
        assert f"\n{section}\n" in text
    for name, node in complete.TREE["commands"].items():
        if not node.get("hidden"):
            assert f"netconsolectl {name} " in text or f"netconsolectl {name}\n" in text
    assert "--configfs-root" in text and "NETCONSOLECTL_CONFIGFS_ROOT" in text
    assert "\n       77" in text  # exit codes as a list


def test_wheel_installs_scripts_and_man_page() -> None:
    data_files = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "data-files"]
    assert data_files == {
        "share/bash-completion/completions": ["completions/netconsolectl"],
        "share/zsh/site-functions": ["completions/_netconsolectl"],
        "share/fish/vendor_completions.d": ["completions/netconsolectl.fish"],
        "share/man/man1": ["completions/netconsolectl.1"],
    }
    for files in data_files.values():
        assert all((REPO / f).is_file() for f in files)


@pytest.mark.skipif(entry_point() is None, reason="netconsolectl not installed in this venv")
@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_install_completion_still_works(tmp_path: Path) -> None:
    """typer's --install-completion (shell detected from the parent) sets up a new bash."""
    home = tmp_path / "home"
    home.mkdir()
    env = shell_env(home, make_root(tmp_path / "root"))
    out = subprocess.run(["bash", "--norc", "-c", "netconsolectl --install-completion"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    installed = home / ".bash_completions" / "netconsolectl.sh"
    assert installed.read_text().strip() == (COMPLETIONS / "netconsolectl").read_text().strip()
    # a new interactive bash reads ~/.bashrc, which now sources the script
    out = subprocess.run(
        ["bash", "-i", "-c", 'COMP_WORDS=(netconsolectl show ""); COMP_CWORD=2; '
         "_netconsolectl_completion netconsolectl; echo ${COMPREPLY[*]}"],
        env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert out.stdout.strip() == "cmdline0 db web", out.stderr

"""zsh and fish load the shipped scripts from where the wheel installs them and complete.

zsh: compinit autoloads ``share/zsh/site-functions/_netconsolectl``; here the completion
builtins it would call (``_arguments``, ``_files``) print what they were given, so the function
runs as zsh runs it without a terminal. fish: ``complete -C`` asks fish's real completion
machinery, which finds ``share/fish/vendor_completions.d/netconsolectl.fish`` on its own.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.completion.fakeroot import (
    entry_point,
    install_layout,
    interface_names,
    make_root,
    shell_env,
)

pytestmark = pytest.mark.skipif(
    entry_point() is None, reason="netconsolectl not installed in this venv"
)

ZSH_STUBS = """
_arguments() { print -r -- "ARGS $*" }
_files() { print -r -- FILES }
compdef() { print -r -- "COMPDEF $*" }
"""


def zsh_values(output: str) -> list[list[str]]:
    """The candidate values of each ``_arguments '*: :((...))'`` call in ``output``."""
    calls = []
    for line in output.split("ARGS ")[1:]:
        spec = line.split(":((", 1)[1].rsplit("))", 1)[0]
        calls.append([m.group(1) for m in re.finditer(r'"((?:[^"]|"")*)"(?::"(?:[^"]|"")*")?',
                                                      spec)])
    return calls


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return shell_env(tmp_path / "home", make_root(tmp_path / "root"))


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed")
def test_zsh_autoloaded_from_site_functions(env: dict[str, str], tmp_path: Path) -> None:
    share = install_layout(tmp_path / "prefix")
    script = f"""
fpath=({share}/zsh/site-functions $fpath)
{ZSH_STUBS}
autoload -Uz _netconsolectl
words=(netconsolectl show ""); CURRENT=3; _netconsolectl
words=(netconsolectl add x --dev ""); CURRENT=5; _netconsolectl
words=(netconsolectl en); CURRENT=2; _netconsolectl
words=(netconsolectl add ""); CURRENT=3; _netconsolectl
"""
    out = subprocess.run(["zsh", "-f", "-c", script], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    # every call completes, the first (which loads the file) included; no re-registration
    assert "COMPDEF" not in out.stdout
    assert zsh_values(out.stdout) == [["cmdline0", "db", "web"], interface_names(), ["enable"]]
    assert out.stdout.rstrip().endswith("FILES")  # nothing to offer: zsh completes files


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed")
def test_zsh_sourced_registers_with_compdef(env: dict[str, str], tmp_path: Path) -> None:
    share = install_layout(tmp_path / "prefix")
    script = f"{ZSH_STUBS}\nsource {share}/zsh/site-functions/_netconsolectl"
    out = subprocess.run(["zsh", "-f", "-c", script], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "COMPDEF _netconsolectl_completion netconsolectl"


def fish_complete(line: str, env: dict[str, str], share: Path) -> list[str]:
    out = subprocess.run(
        ["fish", "-c", f"complete -C {line!r}"], env={**env, "XDG_DATA_DIRS": str(share)},
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return [ln.split("\t")[0] for ln in out.stdout.splitlines()]


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish not installed")
def test_fish_vendor_completions(env: dict[str, str], tmp_path: Path) -> None:
    share = install_layout(tmp_path / "prefix")
    assert fish_complete("netconsolectl en", env, share) == ["enable"]
    assert fish_complete("netconsolectl show ", env, share) == ["cmdline0", "db", "web"]
    assert fish_complete("netconsolectl add x --dev ", env, share) == interface_names()
    assert fish_complete("netconsolectl set web --userdata ", env, share) == ["dc=", "host="]
    other = tmp_path / "other"
    (other / "netconsole" / "lab").mkdir(parents=True)
    assert fish_complete(f"netconsolectl --configfs-root {other} disable ", env, share) == ["lab"]

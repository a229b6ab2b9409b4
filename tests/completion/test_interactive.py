"""<TAB> in interactive shells, driven through tmux: what a user at a root shell sees.

bash runs with bash-completion loading the script from share/bash-completion/completions (as
after ``pip install``), zsh with compinit loading it from share/zsh/site-functions.
"""

from __future__ import annotations

import itertools
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.completion.fakeroot import (
    entry_point,
    install_layout,
    interface_names,
    make_root,
    shell_env,
)

BASH_COMPLETION = Path("/usr/share/bash-completion/bash_completion")

pytestmark = [
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed"),
    pytest.mark.skipif(entry_point() is None, reason="netconsolectl not installed in this venv"),
]


_sockets = itertools.count()


class Terminal:
    """One shell in a private tmux server (its socket in the test's directory)."""

    def __init__(self, socket: Path, command: list[str], env: dict[str, str]) -> None:
        self.socket = str(socket)
        line = "env -i " + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items())
        line += " " + " ".join(map(shlex.quote, command))
        self.tmux("new-session", "-d", "-x", "200", "-y", "50", line)

    def tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-S", self.socket, "-f", "/dev/null", *args], check=True,
            capture_output=True, text=True, timeout=30,
        ).stdout

    def type(self, *keys: str) -> None:
        self.tmux("send-keys", *keys)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p")

    def wait(self, ok: Callable[[str], bool], what: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if ok(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; screen:\n{text}")
            time.sleep(0.1)

    def close(self) -> None:
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True)
        Path(self.socket).unlink(missing_ok=True)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Callable[..., Terminal]]:
    opened: list[Terminal] = []

    def open_(command: list[str], env: dict[str, str]) -> Terminal:
        t = Terminal(tmp_path / f"tmux-{next(_sockets)}", command, env)
        opened.append(t)
        return t

    yield open_
    for t in opened:
        t.close()


@pytest.mark.skipif(not BASH_COMPLETION.exists(), reason="bash-completion not installed")
def test_bash_tab(terminal: Callable[..., Terminal], tmp_path: Path) -> None:
    share = install_layout(tmp_path / "prefix")
    env = shell_env(tmp_path / "home", make_root(tmp_path / "root"), XDG_DATA_DIRS=str(share))
    t = terminal(["bash", "--norc", "--noprofile", "-i"], env)
    t.type(f"PS1='READY$ '; source {BASH_COMPLETION}; clear", "Enter")
    t.wait(lambda s: s.strip().startswith("READY$"), "the prompt")

    t.type("netconsolectl en", "Tab", "X")  # X shows where the cursor ended: after a space
    t.wait(lambda s: "netconsolectl enable X" in s, "`en` completed to `enable `")

    t.type("C-u", "clear", "Enter")
    t.type("netconsolectl show ", "Tab", "Tab")
    t.wait(lambda s: all(n in s for n in ("cmdline0", "db", "web")), "the target list")

    t.type("C-u", "clear", "Enter")
    # Right after '=': the value goes after it (issue 23 item 18: it gave '--remote-port==').
    t.type("netconsolectl set web --userdata host=", "Tab", "X")
    t.wait(lambda s: "--userdata host=web01" in s and "==" not in s,
           "`host=` completed to `host=web01`")

    t.type("C-u", "clear", "Enter")
    names = interface_names()
    t.type("netconsolectl add x --dev ", "Tab", "Tab")
    if len(names) == 1:
        t.wait(lambda s: f"--dev {names[0]}" in s, "the only interface")
    else:
        t.wait(lambda s: all(n in s.split() for n in names), "the interface list")


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed")
def test_zsh_tab(terminal: Callable[..., Terminal], tmp_path: Path) -> None:
    share = install_layout(tmp_path / "prefix")
    env = shell_env(tmp_path / "home", make_root(tmp_path / "root"))
    t = terminal(["zsh", "-f", "-i"], env)
    t.type(f"fpath=({share}/zsh/site-functions $fpath); autoload -Uz compinit; compinit -u; "
           "PS1='READY%% '; clear", "Enter")
    t.wait(lambda s: s.strip().startswith("READY%"), "the prompt")

    t.type("netconsolectl en", "Tab")
    t.wait(lambda s: "netconsolectl enable" in s, "`en` completed to `enable`")

    t.type("C-u", "clear", "Enter")
    t.type("netconsolectl show ", "Tab")
    t.wait(lambda s: all(n in s for n in ("cmdline0", "db", "web")), "the target list")

"""Regenerate what is derived from the command line: completion scripts, table, man page.

    scripts/gen-completions            write the files
    scripts/gen-completions --check    exit 1 (and say which) when a file is stale

Outputs, all from the typer app:

* ``completions/netconsolectl`` (bash), ``completions/_netconsolectl`` (zsh) and
  ``completions/netconsolectl.fish``: typer's own scripts (``_NETCONSOLECTL_COMPLETE=source_SHELL
  netconsolectl``), which call back into the program on every <TAB>. The zsh one is made loadable
  from ``site-functions`` (see :func:`zsh_script`).
* the ``TREE`` table at the end of ``netconsolectl/cli/complete.py``, from which the fast path
  answers those calls without importing typer;
* ``completions/netconsolectl.1``, the man page.

The wheel installs the scripts and the man page under ``share/`` (see pyproject.toml).
"""

from __future__ import annotations

import argparse
import os
import pprint
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PROG = "netconsolectl"
COMPLETE_VAR = "_NETCONSOLECTL_COMPLETE"
COMPLETIONS = REPO / "completions"
TABLE_FILE = REPO / "netconsolectl" / "cli" / "complete.py"
BEGIN, END = "# BEGIN GENERATED\n", "# END GENERATED\n"
REGENERATE = "scripts/gen-completions"

sys.path.insert(0, str(REPO))


# -- completion scripts -------------------------------------------------------------------------


def typer_script(shell: str) -> str:
    """The script typer prints for ``shell``, exactly what ``--show-completion`` would give."""
    env = {**os.environ, COMPLETE_VAR: f"source_{shell}"}
    env.pop("NETCONSOLECTL_CONFIGFS_ROOT", None)
    out = subprocess.run(
        [sys.executable, "-m", "netconsolectl"], env=env, cwd=REPO, check=True,
        capture_output=True, text=True,
    ).stdout
    return out.strip() + "\n"


ZSH_REGISTER = f"compdef _{PROG}_completion {PROG}\n"
ZSH_AUTOLOAD = f"""\
# In an $fpath directory (site-functions), compinit makes this file the body of the function
# _{PROG}, run on every <TAB>: complete. Sourced or eval'ed: register for later.
if [[ $zsh_eval_context[-1] == (loadautofunc|shfunc) ]]; then
  _{PROG}_completion "$@"
else
  compdef _{PROG}_completion {PROG}
fi
"""


def zsh_script() -> str:
    """typer's zsh script, made to work from ``site-functions`` as well as when sourced.

    typer's script only registers its function with ``compdef``, which suits ``source``; loaded
    from ``$fpath`` by compinit (how ``share/zsh/site-functions`` works) the first <TAB> would
    then complete nothing. ``#compdef`` must be the very first line for compinit to see the file.
    """
    script = typer_script("zsh")
    if not script.startswith(f"#compdef {PROG}\n") or not script.endswith(ZSH_REGISTER):
        raise SystemExit("typer's zsh completion script changed shape; update zsh_script()")
    return script[: -len(ZSH_REGISTER)] + ZSH_AUTOLOAD


# -- the completion table ---------------------------------------------------------------------


def _help(text: str | None) -> str:
    return " ".join((text or "").split())


def _complete_kind(param: Any, ctx: Any) -> dict[str, Any]:
    """How ``param`` completes: one of our callbacks (by key), choices, nothing, or typer."""
    from netconsolectl.cli import complete

    complete._probe = True
    try:
        items = param.shell_complete(ctx, "")
    finally:
        complete._probe = False
    keys = [i.value[1:] for i in items if i.value.startswith("\0")]
    if keys:
        return {"complete": keys[0]}
    if getattr(param, "_custom_shell_complete", None) is not None:
        return {"complete": "typer"}  # a callback from elsewhere: the fast path defers to typer
    choices = [i.value for i in items if i.type == "plain"]
    if choices:
        return {"complete": "choices", "choices": choices}
    return {}


def params(cmd: Any, ctx: Any) -> list[Any]:
    """``cmd``'s parameters; the help option's names in a stable order.

    click builds the help option from a set, so its names come in a different order in every
    process; the generated files must not change with it.
    """
    names = list(ctx.help_option_names)
    found = cmd.get_params(ctx)
    for p in found:
        if p.opts and set(p.opts) <= set(names):
            p.opts = sorted(p.opts, key=names.index)
    return found  # type: ignore[no-any-return]


OPTION_DEFAULTS: dict[str, object] = {"nargs": 1, "multiple": False, "hidden": False}


def _node(cmd: Any, ctx: Any) -> dict[str, Any]:
    from typer.core import TyperArgument

    options: list[dict[str, Any]] = []
    arguments: list[dict[str, Any]] = []
    for p in params(cmd, ctx):
        if isinstance(p, TyperArgument):
            arguments.append({"name": p.name, "nargs": p.nargs, **_complete_kind(p, ctx)})
            continue
        flag = bool(getattr(p, "is_flag", False) or getattr(p, "count", False))
        option = {
            "name": p.name,
            "opts": [*p.opts, *p.secondary_opts],
            "nargs": 0 if flag else p.nargs,
            "multiple": bool(p.multiple),
            "hidden": bool(getattr(p, "hidden", False)),
            **(_complete_kind(p, ctx) if not flag else {}),
            "help": _help(getattr(p, "help", "")),
        }
        # defaults left out keep the table small: it is loaded on every <TAB>
        options.append({k: v for k, v in option.items() if OPTION_DEFAULTS.get(k, ...) != v})
    node: dict[str, Any] = {"options": options}
    if arguments:
        node["arguments"] = arguments
    if hasattr(cmd, "list_commands"):
        commands = {}
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            sub_ctx = type(ctx)(sub, info_name=name, parent=ctx, resilient_parsing=True)
            commands[name] = {
                "help": sub.get_short_help_str(),
                **({"hidden": True} if sub.hidden else {}),
                **_node(sub, sub_ctx),
            }
        node["commands"] = commands
    return node


def click_command() -> tuple[Any, Any]:
    import typer.main

    from netconsolectl.cli import app

    cmd = typer.main.get_command(app)
    ctx = cmd.make_context(PROG, [], resilient_parsing=True)
    return cmd, ctx


def literal(obj: Any, indent: int = 0, used: int = 0, width: int = 96) -> str:
    """``repr`` of nested lists and dicts, broken one item per line where a line would be long.

    ``indent`` is the indentation of the line ``obj`` starts on, ``used`` how much of that line
    is taken already.
    """
    flat = repr(obj)
    if used + len(flat) <= width:
        return flat
    if isinstance(obj, str):
        return pprint.pformat(obj, width=width - used).replace("\n", "\n" + " " * used)
    pad = " " * (indent + 4)
    if isinstance(obj, dict):
        lines = [f"{pad}{k!r}: " + literal(v, indent + 4, indent + 4 + len(repr(k)) + 2, width)
                 for k, v in obj.items()]
        return "{\n" + "".join(ln + ",\n" for ln in lines) + " " * indent + "}"
    lines = [pad + literal(v, indent + 4, indent + 4, width) for v in obj]
    return "[\n" + "".join(ln + ",\n" for ln in lines) + " " * indent + "]"


def table() -> str:
    cmd, ctx = click_command()
    return f"{BEGIN}TREE: dict[str, Any]\nTREE = {literal(_node(cmd, ctx), 0, 7)}\n{END}"


def with_table(source: str, generated: str) -> str:
    start, end = source.index(BEGIN), source.index(END) + len(END)
    return source[:start] + generated + source[end:]


# -- man page ---------------------------------------------------------------------------------


def roff(text: str) -> str:
    """Escape text for roff: backslashes, dashes, quotes, and control characters at line start."""
    text = text.replace("\\", r"\e").replace("-", r"\-").replace("'", r"\(aq")
    text = text.replace("`", r"\(ga").replace('"', r"\(dq")
    return "\n".join(r"\&" + ln if ln.startswith((".", "'")) else ln for ln in text.split("\n"))


def paragraphs(text: str | None) -> list[str]:
    paras = [p.strip("\n") for p in re.split(r"\n\s*\n", (text or "").strip())]
    return [p for p in paras if p]


def body(text: str | None) -> list[str]:
    out: list[str] = []
    for para in paragraphs(text):
        if out:
            out.append(".PP")
        if para.startswith("\b"):  # click's marker for a paragraph kept as written
            out += [".nf", roff(para[1:].strip("\n")), ".fi"]
        else:
            out.append(roff(" ".join(para.split())))
    return out


def option_entries(cmd: Any, ctx: Any) -> list[str]:
    out: list[str] = []
    for p in params(cmd, ctx):
        record = p.get_help_record(ctx)
        if record is None:
            continue
        names, help_text = record
        out += [".TP", rf"\fB{roff(names)}\fR", roff(" ".join(help_text.split())) or r"\&"]
    return out


def exit_status(text: str) -> list[str]:
    """``Exit codes: 0 success; 1 ...`` from the app's help as a list of codes."""
    out: list[str] = []
    for part in text.split("Exit codes:", 1)[-1].strip().rstrip(".").split(";"):
        code, _, meaning = part.strip().partition(" ")
        if not code.isdigit():
            return [roff(" ".join(text.split()))]
        out += [".TP", rf"\fB{code}\fR", roff(meaning)]
    return out


def man_page() -> str:
    from netconsolectl import __version__

    cmd, ctx = click_command()
    app_paras = paragraphs(cmd.help)
    codes = [p for p in app_paras if p.startswith("Exit codes:")]
    summary = " ".join(app_paras[0].split()).rstrip(".")
    summary = summary[0].lower() + summary[1:]
    lines = [
        rf'.\" Generated by {REGENERATE} from the {PROG} command line; do not edit.',
        rf'.TH {PROG.upper()} 1 "" "{PROG} {__version__}" "User Commands"',
        ".nh",  # no hyphenation: option names and URLs stay whole
        ".ad l",
        ".SH NAME",
        rf"{PROG} \- {roff(summary)}",
        ".SH SYNOPSIS",
        rf"\fB{PROG}\fR [\fIGLOBAL OPTIONS\fR] \fICOMMAND\fR [\fIARGS\fR]...",
        ".SH DESCRIPTION",
        *body("\n\n".join(p for p in app_paras if p not in codes)),
        ".SH GLOBAL OPTIONS",
        *option_entries(cmd, ctx),
        ".SH COMMANDS",
    ]
    envvars: list[tuple[str, str]] = []
    for p in cmd.get_params(ctx):
        if getattr(p, "envvar", None):
            envvars.append((p.envvar, f"Default for {p.opts[-1]}: {_help(p.help)}"))
    for name in cmd.list_commands(ctx):
        sub = cmd.get_command(ctx, name)
        if sub is None or sub.hidden:
            continue
        sub_ctx = type(ctx)(sub, info_name=name, parent=ctx, resilient_parsing=True)
        usage = " ".join(sub.collect_usage_pieces(sub_ctx))
        lines += [f'.SS "{roff(f"{PROG} {name} {usage}")}"', *body(sub.help)]
        lines += option_entries(sub, sub_ctx)
    lines += [".SH EXIT STATUS", *(exit_status(codes[0]) if codes else [])]
    envvars.append(("NETCONSOLECTL_DEBUG", "When set and not empty, same as --debug."))
    lines.append(".SH ENVIRONMENT")
    for var, text in envvars:
        lines += [".TP", rf"\fB{var}\fR", roff(text)]
    lines += [
        ".SH FILES",
        ".TP",
        r"\fI/sys/kernel/config/netconsole/\fR",
        roff("One directory per target (the kernel's dynamic netconsole configuration)."),
        ".SH SEE ALSO",
        r".BR dmesg (1),",
        r".BR modprobe (8);",
        roff("the kernel's Documentation/networking/netconsole.rst."),
    ]
    return "\n".join(lines) + "\n"


# -- main -------------------------------------------------------------------------------------


def outputs() -> dict[Path, str]:
    return {
        COMPLETIONS / PROG: typer_script("bash"),
        COMPLETIONS / f"_{PROG}": zsh_script(),
        COMPLETIONS / f"{PROG}.fish": typer_script("fish"),
        COMPLETIONS / f"{PROG}.1": man_page(),
        TABLE_FILE: with_table(TABLE_FILE.read_text(), table()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    check = parser.parse_args(argv).check
    stale = []
    for path, text in outputs().items():
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        stale.append(path.relative_to(REPO))
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if check and stale:
        print(
            "stale (the command line changed since they were generated): "
            + ", ".join(map(str, stale)) + f"\nregenerate with: {REGENERATE}",
            file=sys.stderr,
        )
        return 1
    for path in stale:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

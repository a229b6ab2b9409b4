"""Shell completion that knows the machine: targets, interfaces, userdata keys, config files.

Two ways in, one set of answers:

* typer calls the ``autocompletion=`` callbacks (:func:`target_names`, :func:`interface_names`,
  :func:`userdata_items`, :func:`config_files` and the ``*_value`` ones for ``set``) while it
  resolves a completion request through the typer app;
* :func:`fast_complete` answers the same request (the ``_NETCONSOLECTL_COMPLETE=complete_<shell>``
  protocol of typer's completion scripts) from :data:`TREE`, a table of the command line that
  ``scripts/gen-completions`` generates from the typer app. It imports neither typer nor the
  command modules, so one <TAB> costs little more than starting Python. Whatever the table does
  not know (a command or option added since it was generated, a callback of another module) makes
  it step aside and typer answers.

This module runs on every <TAB>: standard library only, no root needed, and nothing raises. An
unreadable root, a missing directory or a garbled command line completes nothing.
"""

from __future__ import annotations

import os
import sys

from netconsolectl.cli.argv import find_option
from netconsolectl.cli.tree import TREE
from netconsolectl.facts import CONFIGFS_ROOT, SYS_CLASS_NET, is_unset

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs every <TAB> a few ms
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    Candidate = tuple[str, str]  # (value, description)

#: ``netconsolectl.sender.configfs.DEFAULT_ROOT`` as a string: that module pulls in pathlib.
DEFAULT_ROOT = CONFIGFS_ROOT
ROOT_ENV = "NETCONSOLECTL_CONFIGFS_ROOT"
COMPLETE_VAR = "_NETCONSOLECTL_COMPLETE"
CONFIG_SUFFIX = ".toml"

# Characters bash splits words at during completion (part of COMP_WORDBREAKS) that occur in
# our values: ``--opt=value``, ``KEY=VALUE`` and MAC addresses.
_BASH_BREAKS = "=:"


# -- what the machine knows ----------------------------------------------------------------


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(4096).strip()
    except OSError:
        return ""


def _subdirs(path: str) -> list[str]:
    try:
        with os.scandir(path) as it:
            return sorted(e.name for e in it if e.is_dir(follow_symlinks=False))
    except OSError:
        return []


def configfs_root(cli_value: object = None, environ: Mapping[str, str] | None = None) -> str:
    """The root in effect: ``--configfs-root`` on the line, then the environment, then default."""
    env = os.environ if environ is None else environ
    value = str(cli_value) if cli_value not in (None, "") else ""
    return os.path.expanduser(value or env.get(ROOT_ENV) or DEFAULT_ROOT)


def targets(root: str) -> list[Candidate]:
    """Targets under ``root``, each described as ``enabled, 192.0.2.1:6666 via eth0``."""
    base = os.path.join(root, "netconsole")
    out = []
    for name in _subdirs(base):
        d = os.path.join(base, name)
        state = "enabled" if _read(os.path.join(d, "enabled")) == "1" else "disabled"
        ip, port = _read(os.path.join(d, "remote_ip")), _read(os.path.join(d, "remote_port"))
        dev = _read(os.path.join(d, "dev_name"))
        where = "no remote yet" if is_unset(ip) else f"{ip}:{port}"
        out.append((name, f"{state}, {where}" + (f" via {dev}" if dev else "")))
    return out


def target_attribute(root: str, target: str, attribute: str) -> str:
    """One attribute file of a target, '' when unreadable (or the target is missing)."""
    if not target or "/" in target or target in (".", ".."):
        return ""
    return _read(os.path.join(root, "netconsole", target, attribute))


def userdata(root: str, target: str) -> dict[str, str]:
    """Userdata entries of a target: key -> value."""
    if not target or "/" in target or target in (".", ".."):
        return {}
    base = os.path.join(root, "netconsole", target, "userdata")
    return {k: _read(os.path.join(base, k, "value")) for k in _subdirs(base)}


def interfaces() -> list[Candidate]:
    """Network interfaces of this namespace (sysfs; the kernel's interface list as fallback).

    The description says whether the link is up, and names the master of a bridge or bond port:
    netconsole refuses a port with EBUSY, the master is the device to use.
    """
    try:
        names = sorted(os.listdir(SYS_CLASS_NET))
    except OSError:
        names = []
    if not names:
        try:
            import socket

            names = sorted(name for _, name in socket.if_nameindex())
        except OSError:
            return []
    out = []
    for name in names:
        d = os.path.join(SYS_CLASS_NET, name)
        desc = _read(os.path.join(d, "operstate"))
        try:
            master = os.path.basename(os.readlink(os.path.join(d, "master")))
        except OSError:
            master = ""
        if master:
            desc = f"{desc}, port of {master} (use {master})" if desc else f"port of {master}"
        out.append((name, desc))
    return out


def config_file_paths(incomplete: str) -> list[str]:
    """Directories (ending in /) and ``*.toml`` files that start with ``incomplete``.

    A lone directory is opened, so that the shell goes on into it instead of ending the word.
    """
    for _ in range(8):  # descend through directories that are the only candidate
        found = _config_candidates(incomplete)
        if len(found) != 1 or not found[0].endswith("/"):
            return found
        inner = _config_candidates(found[0])
        if not inner:
            return found
        incomplete = found[0]
        if len(inner) > 1 or not inner[0].endswith("/"):
            return inner
    return found


def _config_candidates(incomplete: str) -> list[str]:
    head, tail = os.path.split(incomplete)
    where = os.path.expanduser(head) if head else "."
    try:
        with os.scandir(where) as it:
            entries = [(e.name, e.is_dir()) for e in it]
    except OSError:
        return []
    out = []
    for name, is_dir in sorted(entries):
        if not name.startswith(tail) or (name.startswith(".") and not tail.startswith(".")):
            continue
        if is_dir:
            out.append(os.path.join(head, name) + "/")
        elif name.endswith(CONFIG_SUFFIX):
            out.append(os.path.join(head, name))
    return out


# -- values per completer, shared by both ways in -------------------------------------------

# Attribute files of a target that the ``set`` options with the same name change.
ATTRIBUTES = ("remote_ip", "remote_port", "local_ip", "local_port", "remote_mac")


def values(kind: str, incomplete: str, root: str, target: str) -> list[Candidate]:
    """Candidates of completer ``kind`` that start with ``incomplete``.

    ``root`` is the configfs root in effect and ``target`` the target named on the line ('' if
    none); ``kind`` is a key of :data:`COMPLETERS`.
    """
    items: list[Candidate]
    if kind == "targets":
        items = targets(root)
    elif kind == "interfaces":
        items = interfaces()
    elif kind == "config_files":
        items = [(p, "") for p in config_file_paths(incomplete)]
    elif kind == "userdata":
        entries = userdata(root, target)
        if "=" in incomplete:  # KEY=<TAB> offers the current value, to edit
            items = [(f"{k}={v}", "current value") for k, v in entries.items()]
        else:
            items = [(f"{k}=", f"now {v!r}; {k}= alone removes it") for k, v in entries.items()]
            matching = [k for k in entries if k.startswith(incomplete)]
            if len(matching) == 1 and entries[matching[0]]:
                # Alone, KEY= would be followed by a space, and `--userdata KEY=` removes KEY;
                # with the current value as a second candidate the shell stops after the =.
                k = matching[0]
                items.append((f"{k}={entries[k]}", "current value"))
    elif kind.startswith("attr:"):
        current = target_attribute(root, target, kind[5:])
        items = [(current, f"current value of {target}")] if current else []
    else:
        items = []
    return [(v, h) for v, h in items if v.startswith(incomplete)]


# -- typer callbacks --------------------------------------------------------------------------
#
# typer finds ``ctx`` and ``incomplete`` by name and evaluates the annotations at run time (a
# failure there breaks the whole command line), so they use builtins only. While
# ``scripts/gen-completions`` probes the app, :data:`_probe` is set and every callback returns
# its own key, which is how the table learns which parameter completes what.

_probe = False


def _root_of(ctx: object) -> str:
    find_root = getattr(ctx, "find_root", None)
    top = find_root() if find_root is not None else None
    return configfs_root(getattr(top, "params", {}).get("configfs_root"))


def _target_of(ctx: object) -> str:
    name = getattr(ctx, "params", {}).get("name")
    if name:
        return str(name)
    # click stops parsing at an option still waiting for its value (``set web --userdata
    # <TAB>``) and never sees the name; read it from the shell's command line instead.
    found = _request(os.environ)
    if found is None:
        return ""
    state = _resolve(found[1], found[2])
    return state.target if state is not None else ""


def _typer(kind: str, ctx: object, incomplete: str) -> list[Candidate]:
    if _probe:
        return [(f"\0{kind}", "")]
    try:
        return values(kind, incomplete, _root_of(ctx), _target_of(ctx) if ctx else "")
    except Exception:  # a <TAB> never shows a traceback
        return []


def target_names(ctx: object, incomplete: str) -> list[tuple[str, str]]:
    """Targets under the configfs root in effect (including ``--configfs-root``)."""
    return _typer("targets", ctx, incomplete)


def interface_names(incomplete: str) -> list[tuple[str, str]]:
    """Interfaces of this network namespace, readable without root."""
    return _typer("interfaces", None, incomplete)


def userdata_items(ctx: object, incomplete: str) -> list[tuple[str, str]]:
    """``KEY=`` for each userdata key of the target named on the line; ``KEY=<TAB>``: its value."""
    return _typer("userdata", ctx, incomplete)


def config_files(incomplete: str) -> list[tuple[str, str]]:
    """``*.toml`` files and directories, for ``apply``."""
    return _typer("config_files", None, incomplete)


def remote_ip_value(ctx: object, incomplete: str) -> list[tuple[str, str]]:
    """The target's current remote_ip (``set NAME --remote-ip <TAB>``)."""
    return _typer("attr:remote_ip", ctx, incomplete)


def remote_port_value(ctx: object, incomplete: str) -> list[tuple[str, str]]:
    """The target's current remote_port."""
    return _typer("attr:remote_port", ctx, incomplete)


def local_ip_value(ctx: object, incomplete: str) -> list[tuple[str, str]]:
    """The target's current local_ip."""
    return _typer("attr:local_ip", ctx, incomplete)


def local_port_value(ctx: object, incomplete: str) -> list[tuple[str, str]]:
    """The target's current local_port."""
    return _typer("attr:local_port", ctx, incomplete)


def remote_mac_value(ctx: object, incomplete: str) -> list[tuple[str, str]]:
    """The target's current remote_mac."""
    return _typer("attr:remote_mac", ctx, incomplete)


#: Completer key -> typer callback.
COMPLETERS: dict[str, Callable[..., list[Candidate]]] = {
    "targets": target_names,
    "interfaces": interface_names,
    "userdata": userdata_items,
    "config_files": config_files,
    **{f"attr:{a}": f for a, f in zip(ATTRIBUTES, (
        remote_ip_value, remote_port_value, local_ip_value, local_port_value, remote_mac_value,
    ), strict=True)},
}


# -- the fast path ----------------------------------------------------------------------------


def split_words(line: str) -> list[str]:
    """Split like ``shlex.split`` (POSIX), keeping a partial last word (an open quote is fine).

    This is what click does with the command line a completion script passes; written out to
    spare every <TAB> the import of shlex and re.
    """
    words: list[str] = []
    word: list[str] = []
    in_word = False
    quote = ""
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if quote == "'":
            if c == "'":
                quote = ""
            else:
                word.append(c)
        elif quote == '"':
            if c == '"':
                quote = ""
            elif c == "\\" and i + 1 < n and line[i + 1] in '"\\':
                i += 1
                word.append(line[i])
            else:
                word.append(c)
        elif c in " \t\n\r":
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
        elif c in "'\"":
            quote, in_word = c, True
        elif c == "\\":
            in_word = True
            if i + 1 < n:
                i += 1
                word.append(line[i])
        else:
            word.append(c)
            in_word = True
        i += 1
    if in_word:
        words.append("".join(word))
    return words


class _State:
    """Where a command line stands: the command, what was given, what the cursor is on."""

    def __init__(self) -> None:
        self.node: dict[str, Any] = TREE
        self.root_value = ""  # --configfs-root given on the line
        self.positionals: list[str] = []
        self.used: set[str] = set()  # option names given for the current command
        self.dashdash = False
        self.target = ""  # the target named on the line (the argument called ``name``)
        self.pending: dict[str, Any] | None = None  # option still waiting for its value


def _resolve(args: list[str], incomplete: str) -> _State | None:
    """Walk ``args`` through :data:`TREE`; None when the table does not know a word."""
    st = _State()
    pending: dict[str, Any] | None = None
    missing = 0
    for word in args:
        if pending is not None:
            if pending["name"] == "configfs_root" and st.node is TREE:
                st.root_value = word
            missing -= 1
            if missing == 0:
                pending = None
            continue
        if word == "--" and not st.dashdash:
            st.dashdash = True
            continue
        if word.startswith("-") and word != "-" and not st.dashdash:
            name, eq, value = word.partition("=") if word.startswith("--") else (word, "", "")
            opt = find_option(st.node, name)
            if opt is None and not word.startswith("--") and len(word) > 2:
                opt = find_option(st.node, word[:2])  # -xVALUE
                eq, value = "=", word[2:]
            if opt is None:
                return None
            st.used.add(opt["name"])
            if opt.get("nargs", 1) == 0:
                continue
            if eq:
                if opt["name"] == "configfs_root" and st.node is TREE:
                    st.root_value = value
                continue
            pending, missing = opt, opt.get("nargs", 1)
            continue
        commands = st.node.get("commands")
        if commands is not None:
            sub = commands.get(word)
            if sub is None:
                return None
            st.node, st.positionals, st.used, st.dashdash = sub, [], set(), False
            continue
        st.positionals.append(word)
    st.target = _named_target(st)
    st.pending = pending
    return st


def _named_target(st: _State) -> str:
    """The positional given for the argument called ``name`` ("" when there is none yet)."""
    for i, arg in enumerate(st.node.get("arguments", [])):
        if arg["name"] == "name" and i < len(st.positionals):
            return str(st.positionals[i])
    return ""


def complete_line(args: list[str], incomplete: str) -> tuple[list[Candidate], str] | None:
    """Candidates for ``incomplete`` after ``args`` (the words between the program and it).

    Returns (items, prefix): ``prefix`` is ``--opt=`` when the word being completed has that
    form and belongs in front of each value. None means "ask typer".
    """
    prefix = ""
    if incomplete == "=":
        incomplete = ""
    elif incomplete.startswith("-") and "=" in incomplete:
        name, _, incomplete = incomplete.partition("=")
        args = [*args, name]
        prefix = name + "="
    st = _resolve(args, incomplete)
    if st is None:
        return None
    node = st.node
    pending = st.pending
    if pending is None and prefix:
        return [], prefix  # --flag=... has no values
    if "--" not in args and incomplete.startswith("-") and pending is None:
        items: list[Candidate] = []
        for opt in node["options"]:
            if opt.get("hidden") or (not opt.get("multiple") and opt["name"] in st.used):
                continue
            items.extend((o, opt["help"]) for o in opt["opts"] if o.startswith(incomplete))
        return items, ""
    param = pending
    if param is None:
        commands = node.get("commands")
        if commands is not None:
            return [
                (name, sub["help"]) for name, sub in commands.items()
                if name.startswith(incomplete) and not sub.get("hidden")
            ], ""
        filled = len(st.positionals)
        for arg in node.get("arguments", []):
            if arg["nargs"] == -1 or filled < arg["nargs"]:
                param = arg
                break
            filled -= arg["nargs"]
        if param is None:
            return [], ""
    kind = param.get("complete", "")
    if kind == "typer":
        return None
    if kind == "choices":
        return [(c, "") for c in param["choices"] if c.startswith(incomplete)], prefix
    return values(kind, incomplete, configfs_root(st.root_value), st.target), prefix


def _request(environ: Mapping[str, str]) -> tuple[str, list[str], str] | None:
    """(shell, args, incomplete) of the completion request in ``environ``, as typer reads it."""
    instruction = environ.get(COMPLETE_VAR, "")
    if not instruction.startswith("complete_"):
        return None
    shell = instruction[len("complete_"):]
    if shell == "bash":
        words = split_words(environ.get("COMP_WORDS", ""))
        try:
            cword = int(environ.get("COMP_CWORD", ""))
        except ValueError:
            return None
        args = words[1:cword]
        incomplete = words[cword] if cword < len(words) else ""
        return shell, args, incomplete
    if shell in ("zsh", "fish"):
        line = environ.get("_TYPER_COMPLETE_ARGS", "")
        words = split_words(line)[1:]
        if words and not line.endswith(" "):
            return shell, words[:-1], words[-1]
        return shell, words, ""
    return None


def _join_bash_breaks(args: list[str], incomplete: str) -> tuple[list[str], str, str]:
    """Undo bash's splitting at ``=`` and ``:`` (``--dev=eth0`` arrives as ``--dev = eth0``).

    Returns (args, incomplete, typed): ``typed`` is the start of the joined word under the
    cursor that bash keeps on the line (it replaces only its current word, ``incomplete``), so
    candidates go back without it.
    """
    out: list[str] = []
    glue_next = False
    for word in [*args, incomplete]:
        is_break = bool(word) and all(c in _BASH_BREAKS for c in word)
        if out and (glue_next or is_break):
            out[-1] += word
        else:
            out.append(word)
        glue_next = is_break
    joined = out[-1]
    if incomplete and all(c in _BASH_BREAKS for c in incomplete):
        # The cursor right after ``--dev=``: COMP_WORDS ends with "=", but readline replaces
        # only the text after the break (nothing), so the candidates leave out the "=" too
        # (keeping it gave ``--dev==eth0``).
        return out[:-1], joined, joined
    return out[:-1], joined, joined[: len(joined) - len(incomplete)]


def _bash_quote(value: str) -> str:
    # not ~: a leading one was typed by the user (and expands), others are literal anyway
    return "".join("\\" + c if c in " \t\n\"'\\$`!&;|<>()*?[]{}#" else c for c in value)


def _zsh_escape(s: str) -> str:
    return (s.replace('"', '""').replace("'", "''").replace("$", "\\$").replace("`", "\\`")
            .replace(":", r"\\:"))


def answer(environ: Mapping[str, str]) -> tuple[str, int] | None:
    """Output and exit status for the completion request in ``environ``; None: ask typer."""
    request = _request(environ)
    if request is None:
        return None
    shell, args, incomplete = request
    typed = ""
    if shell == "bash":
        args, incomplete, typed = _join_bash_breaks(args, incomplete)
    found = complete_line(args, incomplete)
    if found is None:
        return None
    items, prefix = found
    if shell == "bash":
        full = [prefix + v for v, _ in items]
        return "\n".join(_bash_quote(v[len(typed):]) for v in full if v.startswith(typed)), 0
    if shell == "zsh":
        if not items:
            return "_files", 0
        specs = [
            f'"{_zsh_escape(prefix + v)}":"{_zsh_escape(" ".join(h.split()))}"' if h
            else f'"{_zsh_escape(prefix + v)}"'
            for v, h in items
        ]
        return "_arguments '*: :((" + "\n".join(specs) + "))'", 0
    # fish asks twice: whether we have candidates (else it completes files), then for them
    if environ.get("_TYPER_COMPLETE_FISH_ACTION") == "is-args":
        return "", 0 if items else 1
    return "\n".join(prefix + v + ("\t" + " ".join(h.split()) if h else "") for v, h in items), 0


def fast_complete(environ: Mapping[str, str] | None = None) -> None:
    """Answer a shell's completion request and exit, or return to let typer answer it."""
    env = os.environ if environ is None else environ
    try:
        result = answer(env)
    except Exception:  # typer gets its chance; a <TAB> never shows a traceback
        return
    if result is None:
        return
    text, status = result
    if text or status == 0:
        sys.stdout.write(text + "\n")
    sys.stdout.flush()
    raise SystemExit(status)


# -- the table --------------------------------------------------------------------------------
# Everything below is generated by scripts/gen-completions from the typer app: do not edit.
# A test fails when it is stale; run scripts/gen-completions to regenerate.

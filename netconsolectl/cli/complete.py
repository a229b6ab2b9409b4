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

from netconsolectl.endpoint import endpoint

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs every <TAB> a few ms

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    Item = tuple[str, str]  # (value, description)

#: Same as ``netconsolectl.sender.configfs.DEFAULT_ROOT`` (a test keeps them equal); not imported
#: from there because that pulls in pathlib.
DEFAULT_ROOT = "/sys/kernel/config"
ROOT_ENV = "NETCONSOLECTL_CONFIGFS_ROOT"
COMPLETE_VAR = "_NETCONSOLECTL_COMPLETE"
SYS_CLASS_NET = "/sys/class/net"
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


def targets(root: str) -> list[Item]:
    """Targets under ``root``, each described as ``enabled, 192.0.2.1:6666 via eth0``."""
    base = os.path.join(root, "netconsole")
    out = []
    for name in _subdirs(base):
        d = os.path.join(base, name)
        state = "enabled" if _read(os.path.join(d, "enabled")) == "1" else "disabled"
        ip, port = _read(os.path.join(d, "remote_ip")), _read(os.path.join(d, "remote_port"))
        dev = _read(os.path.join(d, "dev_name"))
        where = endpoint(ip, port) if ip and ip not in ("0.0.0.0", "::") else "no remote yet"
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


def interfaces() -> list[Item]:
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


def values(kind: str, incomplete: str, root: str, target: str) -> list[Item]:
    """Candidates of completer ``kind`` that start with ``incomplete``.

    ``root`` is the configfs root in effect and ``target`` the target named on the line ('' if
    none); ``kind`` is a key of :data:`COMPLETERS`.
    """
    items: list[Item]
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


def _typer(kind: str, ctx: object, incomplete: str) -> list[Item]:
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
COMPLETERS: dict[str, Callable[..., list[Item]]] = {
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


def _find_option(node: Mapping[str, Any], word: str) -> dict[str, Any] | None:
    for opt in node["options"]:
        if word in opt["opts"]:
            return opt  # type: ignore[no-any-return]
    return None


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
            opt = _find_option(st.node, name)
            if opt is None and not word.startswith("--") and len(word) > 2:
                opt = _find_option(st.node, word[:2])  # -xVALUE
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
    arguments = st.node.get("arguments", [])
    for i, arg in enumerate(arguments):
        if arg["name"] == "name" and i < len(st.positionals):
            st.target = st.positionals[i]
    st.pending = pending
    return st


def complete_line(args: list[str], incomplete: str) -> tuple[list[Item], str] | None:
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
        items: list[Item] = []
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

# BEGIN GENERATED
TREE: dict[str, Any]
TREE = {
    'options': [
        {
            'name': 'configfs_root',
            'opts': ['--configfs-root'],
            'help': ('configfs mount point (a sandbox directory for tests); also accepted '
                     'after the command name.'),
        },
        {
            'name': 'debug',
            'opts': ['--debug'],
            'nargs': 0,
            'help': 'Show tracebacks on errors (anywhere on the line).',
        },
        {'name': 'version', 'opts': ['--version'], 'nargs': 0, 'help': 'Print the version.'},
        {
            'name': 'install_completion',
            'opts': ['--install-completion'],
            'nargs': 0,
            'help': 'Install completion for the current shell.',
        },
        {
            'name': 'show_completion',
            'opts': ['--show-completion'],
            'nargs': 0,
            'help': ('Show completion for the current shell, to copy it or customize the '
                     'installation.'),
        },
        {
            'name': 'help',
            'opts': ['-h', '--help'],
            'nargs': 0,
            'help': 'Show this message and exit.',
        },
    ],
    'commands': {
        'listen': {
            'help': 'Receive netconsole messages: parse,...',
            'options': [
                {
                    'name': 'bind',
                    'opts': ['--bind'],
                    'help': 'Address to listen on [all, IPv4 and IPv6].',
                },
                {
                    'name': 'port',
                    'opts': ['--port'],
                    'help': 'UDP port; 0 picks a free one (see the ready line).',
                },
                {
                    'name': 'json_out',
                    'opts': ['--json'],
                    'nargs': 0,
                    'help': 'One JSON object per line on standard output.',
                },
                {
                    'name': 'output_dir',
                    'opts': ['--output-dir'],
                    'help': 'Append to one log file per host here.',
                },
                {
                    'name': 'forward',
                    'opts': ['--forward'],
                    'multiple': True,
                    'help': ('Also hand every message to syslog+udp://HOST[:PORT], '
                             'syslog+tcp://HOST[:PORT] (RFC 5424), relp://HOST[:PORT] (RFC '
                             '5424 over RELP, acknowledged), otlp+http[s]://HOST:PORT/v1/logs '
                             '(OpenTelemetry) or journald[:///SOCKET] (repeatable). '
                             'syslog+tcp, relp and otlp go through the spool.'),
                },
                {
                    'name': 'spool_dir',
                    'opts': ['--spool-dir'],
                    'help': ('Keep what syslog+tcp, relp and otlp forwarders have not '
                             'delivered here, so a pipeline outage or a restart loses nothing '
                             '[a temporary directory, removed at exit].'),
                },
                {
                    'name': 'spool_max_mib',
                    'opts': ['--spool-max-mib'],
                    'help': ('Disk per forwarder (and worker) for the spool; when full, the '
                             'oldest messages are dropped and counted (spool_dropped).'),
                },
                {
                    'name': 'allow',
                    'opts': ['--allow'],
                    'multiple': True,
                    'help': ('Accept datagrams only from these networks; others are dropped '
                             'and counted (repeatable).'),
                },
                {
                    'name': 'quiet',
                    'opts': ['--quiet', '-q'],
                    'nargs': 0,
                    'help': ('Nothing on standard output (with --output-dir or --forward; not '
                             'with --json).'),
                },
                {
                    'name': 'color',
                    'opts': ['--color'],
                    'help': ('Colour the lines by level: auto (on a terminal, unless NO_COLOR '
                             'is set), always or never.'),
                },
                {
                    'name': 'timeout',
                    'opts': ['--timeout'],
                    'help': ('Seconds to wait for missing fragments or reordered messages '
                             'before reporting them incomplete or lost.'),
                },
                {
                    'name': 'max_sources',
                    'opts': ['--max-sources'],
                    'help': ('Sources tracked (in total over the workers); the least recent is '
                             'evicted.'),
                },
                {
                    'name': 'max_pending',
                    'opts': ['--max-pending'],
                    'help': 'Fragmented messages held for reassembly (in total).',
                },
                {
                    'name': 'max_pending_mib',
                    'opts': ['--max-pending-mib'],
                    'help': 'Memory for pending fragments, MiB (in total).',
                },
                {
                    'name': 'rcvbuf_mib',
                    'opts': ['--rcvbuf-mib'],
                    'help': 'Socket receive buffer, MiB (beyond rmem_max as root).',
                },
                {
                    'name': 'workers',
                    'opts': ['--workers'],
                    'help': ('Receiving processes sharing the port (SO_REUSEPORT; each source '
                             'stays with one); 0 means one per CPU, at most 4.'),
                },
                {
                    'name': 'ignore',
                    'opts': ['--ignore'],
                    'multiple': True,
                    'help': ('Drop messages whose text matches (Python regular expression); '
                             "counted as 'ignored' (repeatable)."),
                },
                {
                    'name': 'on_crash',
                    'opts': ['--on-crash'],
                    'help': ('Run CMD (split like a shell would, run without one) for each '
                             "crash report, the event's JSON on its standard input."),
                },
                {
                    'name': 'on_crash_timeout',
                    'opts': ['--on-crash-timeout'],
                    'help': 'Seconds before an --on-crash command is killed.',
                },
                {
                    'name': 'silence',
                    'opts': ['--silence'],
                    'help': ('Report a host silent after SECONDS without a message, and again '
                             'when it resumes.'),
                },
                {
                    'name': 'expect',
                    'opts': ['--expect'],
                    'help': ('Addresses (one per line) counted as heard at start, so a host '
                             'that never reports is reported silent too.'),
                },
                {
                    'name': 'metrics',
                    'opts': ['--metrics'],
                    'help': 'Serve Prometheus metrics on http://ADDR:PORT/metrics.',
                },
                {
                    'name': 'max_hosts',
                    'opts': ['--max-hosts'],
                    'help': ('Hosts with metric series and silence tracking of their own, the '
                             "most recently heard; the others add up in host 'other'."),
                },
                {
                    'name': 'config',
                    'opts': ['--config'],
                    'help': ('Read options from this TOML file (same names, e.g. output-dir = '
                             '"/var/log/netconsole"); the command line wins.'),
                },
                {
                    'name': 'install_service',
                    'opts': ['--install-service'],
                    'nargs': 0,
                    'help': ('Install the systemd unit netconsolectl-listen.service running '
                             "'listen --config' (with --config FILE, or "
                             '/etc/netconsolectl/listen.toml), then exit.'),
                },
                {
                    'name': 'help',
                    'opts': ['-h', '--help'],
                    'nargs': 0,
                    'help': 'Show this message and exit.',
                },
            ],
        },
        'resolve': {
            'help': 'Show the interface, source address, next...',
            'options': [
                {
                    'name': 'dev',
                    'opts': ['--dev'],
                    'complete': 'interfaces',
                    'help': 'Egress interface [from the route].',
                },
                {
                    'name': 'local_ip',
                    'opts': ['--local-ip'],
                    'help': 'Source address [from the route].',
                },
                {
                    'name': 'arp_timeout',
                    'opts': ['--arp-timeout'],
                    'help': 'Seconds to wait for an answer after each ARP/NDP request.',
                },
                {
                    'name': 'arp_retries',
                    'opts': ['--arp-retries'],
                    'help': ('ARP/NDP requests to send before giving up (each waits '
                             '--arp-timeout).'),
                },
                {
                    'name': 'broadcast',
                    'opts': ['--broadcast'],
                    'nargs': 0,
                    'help': ("Send to ff:ff:ff:ff:ff:ff instead of the next hop's MAC (no "
                             'probe; the collector must be on-link).'),
                },
                {
                    'name': 'json_out',
                    'opts': ['--json'],
                    'nargs': 0,
                    'help': 'Machine-readable output.',
                },
                {
                    'name': 'help',
                    'opts': ['-h', '--help'],
                    'nargs': 0,
                    'help': 'Show this message and exit.',
                },
            ],
            'arguments': [{'name': 'remote_ip', 'nargs': 1}],
        },
        'apply': {
            'help': 'Make the live targets equal FILE: create,...',
            'options': [
                {
                    'name': 'prune',
                    'opts': ['--prune'],
                    'nargs': 0,
                    'help': 'Remove live targets the file does not list (never cmdlineN ones).',
                },
                {
                    'name': 'dry_run',
                    'opts': ['--dry-run'],
                    'nargs': 0,
                    'help': 'Print the plan and the configfs operations; change nothing.',
                },
                {
                    'name': 'detailed_exitcode',
                    'opts': ['--detailed-exitcode'],
                    'nargs': 0,
                    'help': ('Exit 0 when nothing had to change, 2 when something changed (or '
                             'would), 1 on any failure, invalid file included.'),
                },
                {
                    'name': 'arp_timeout',
                    'opts': ['--arp-timeout'],
                    'help': 'Seconds to wait for each ARP/NDP reply [options.arp_timeout, 1.0].',
                },
                {
                    'name': 'arp_retries',
                    'opts': ['--arp-retries'],
                    'help': 'ARP/NDP probes before giving up [options.arp_retries, 3].',
                },
                {
                    'name': 'userdata_hostname',
                    'opts': ['--userdata-hostname'],
                    'nargs': 0,
                    'help': ("Give every target of FILE the userdata hostname=<this machine's "
                             "name> (listen shows it as the sender's name), in addition to its "
                             'userdata table.'),
                },
                {
                    'name': 'help',
                    'opts': ['-h', '--help'],
                    'nargs': 0,
                    'help': 'Show this message and exit.',
                },
            ],
            'arguments': [{'name': 'file', 'nargs': 1, 'complete': 'config_files'}],
        },
        'export': {
            'help': 'Print the live targets as a configuration...',
            'options': [
                {
                    'name': 'format_',
                    'opts': ['--format'],
                    'complete': 'choices',
                    'choices': ['toml', 'json'],
                    'help': 'Output format.',
                },
                {
                    'name': 'help',
                    'opts': ['-h', '--help'],
                    'nargs': 0,
                    'help': 'Show this message and exit.',
                },
            ],
        },
        'cmdline': {
            'help': 'Print the netconsole= boot parameter for...',
            'options': [
                {
                    'name': 'parse',
                    'opts': ['--parse'],
                    'help': ('Check a netconsole= value the way the kernel parses it and '
                             'explain each field.'),
                },
                {
                    'name': 'config',
                    'opts': ['--config'],
                    'complete': 'config_files',
                    'help': 'Use the targets of a configuration file instead of the live ones.',
                },
                {
                    'name': 'module',
                    'opts': ['--module'],
                    'nargs': 0,
                    'help': ('Print the modprobe.d line (options netconsole netconsole=...) '
                             'for a modular netconsole instead of the kernel parameter.'),
                },
                {
                    'name': 'value_only',
                    'opts': ['--value'],
                    'nargs': 0,
                    'help': 'Print the value only.',
                },
                {
                    'name': 'json_',
                    'opts': ['--json'],
                    'nargs': 0,
                    'help': 'Machine-readable output.',
                },
                {
                    'name': 'help',
                    'opts': ['-h', '--help'],
                    'nargs': 0,
                    'help': 'Show this message and exit.',
                },
            ],
            'arguments': [{'name': 'names', 'nargs': -1, 'complete': 'targets'}],
        },
        'loglevel': {
            'help': 'Show the console loglevel, or set it (as...',
            'options': [
                {
                    'name': 'json_',
                    'opts': ['--json'],
                    'nargs': 0,
                    'help': 'Machine-readable output.',
                },
                {
                    'name': 'help',
                    'opts': ['-h', '--help'],
                    'nargs': 0,
                    'help': 'Show this message and exit.',
                },
            ],
            'arguments': [{'name': 'level', 'nargs': 1}],
        },
        'persist': {
            'help': 'Make the configuration survive a reboot:...',
            'options': [
                {
                    'name': 'service',
                    'opts': ['--service'],
                    'nargs': 0,
                    'help': ('Install and enable the systemd unit that runs `watch` from boot '
                             'on (apply the file, then keep it delivering while the network '
                             'changes).'),
                },
                {
                    'name': 'oneshot',
                    'opts': ['--oneshot'],
                    'nargs': 0,
                    'help': ('With --service: install netconsolectl-apply.service, which only '
                             'runs `apply` once at boot, instead.'),
                },
                {
                    'name': 'boot_param',
                    'opts': ['--boot-param'],
                    'nargs': 0,
                    'help': ('Print the netconsole= boot parameter and where it goes (the '
                             'default when neither --service nor --boot-param is given).'),
                },
                {
                    'name': 'write',
                    'opts': ['--write'],
                    'nargs': 0,
                    'help': ('With --boot-param: write it (modprobe.d + modules-load.d for a '
                             'module, a GRUB drop-in when built in) instead of only printing '
                             'it.'),
                },
                {
                    'name': 'config',
                    'opts': ['--config'],
                    'complete': 'config_files',
                    'help': ('Configuration the service applies [/etc/netconsolectl.toml]; '
                             'with --boot-param, take the targets from it instead of the live '
                             'ones.'),
                },
                {
                    'name': 'from_live',
                    'opts': ['--from-live'],
                    'nargs': 0,
                    'help': ('With --service: (re)write the configuration file from the live '
                             'targets (it is written anyway when it does not exist).'),
                },
                {
                    'name': 'enable',
                    'opts': ['--enable', '--no-enable'],
                    'nargs': 0,
                    'help': 'With --service: enable the unit.',
                },
                {
                    'name': 'root',
                    'opts': ['--root'],
                    'help': 'Write into this root directory (an image) instead of /.',
                },
                {
                    'name': 'kind',
                    'opts': ['--kind'],
                    'complete': 'choices',
                    'choices': ['auto', 'module', 'builtin'],
                    'help': ('How netconsole is built for the boot parameter [auto: from '
                             '/lib/modules of the running kernel].'),
                },
                {
                    'name': 'dry_run',
                    'opts': ['--dry-run'],
                    'nargs': 0,
                    'help': 'Print what would be written and run; change nothing.',
                },
                {
                    'name': 'help',
                    'opts': ['-h', '--help'],
                    'nargs': 0,
                    'help': 'Show this message and exit.',
                },
            ],
        },
        'test': {
            'help': 'Write a unique marker line to /dev/kmsg...',
            'options': [
                {
                    'name': 'expect_listen',
                    'opts': ['--expect-listen'],
                    'help': ('Confirm arrival: the --output-dir of a `netconsolectl listen` '
                             'readable from here, or a UDP port on this machine where the '
                             'packets arrive.'),
                },
                {
                    'name': 'timeout',
                    'opts': ['--timeout'],
                    'help': 'Seconds to wait for the message with --expect-listen.',
                },
                {
                    'name': 'level',
                    'opts': ['--level'],
                    'help': ('Message level 0-7 [the least severe one that passes the console '
                             'loglevel].'),
                },
                {
                    'name': 'help',
                    'opts': ['-h', '--help'],
                    'nargs': 0,
                    'help': 'Show this message and exit.',
                },
            ],
            'arguments': [{'name': 'names', 'nargs': -1, 'complete': 'targets'}],
        },
        'doctor': {
            'help': 'Check everything netconsole needs, one...',
            'options': [
                {
                    'name': 'json_',
                    'opts': ['--json'],
                    'nargs': 0,
                    'help': 'Machine-readable output.',
                },
                {
                    'name': 'help',
                    'opts': ['-h', '--help'],
                    'nargs': 0,
                    'help': 'Show this message and exit.',
                },
            ],
        },
        'setup': {
            'help': 'Load the configfs and netconsole modules...',
            'options': [
                {
                    'name': 'help',
                    'opts': ['-h', '--help'],
                    'nargs': 0,
                    'help': 'Show this message and exit.',
                },
            ],
        },
        'add': {
            'help': 'Create a target and enable it (unless...',
            'options': [
                {'name': 'remote_ip', 'opts': ['--remote-ip'], 'help': 'Collector address.'},
                {
                    'name': 'remote_port',
                    'opts': ['--remote-port'],
                    'complete': 'attr:remote_port',
                    'help': 'Collector UDP port [add: 6666].',
                },
                {
                    'name': 'local_ip',
                    'opts': ['--local-ip'],
                    'complete': 'attr:local_ip',
                    'help': 'Source address [discovered from the route].',
                },
                {
                    'name': 'local_port',
                    'opts': ['--local-port'],
                    'complete': 'attr:local_port',
                    'help': 'Source UDP port [add: 6665].',
                },
                {
                    'name': 'dev',
                    'opts': ['--dev'],
                    'complete': 'interfaces',
                    'help': 'Egress interface [discovered from the route].',
                },
                {
                    'name': 'remote_mac',
                    'opts': ['--remote-mac'],
                    'complete': 'attr:remote_mac',
                    'help': 'Next-hop MAC aa:bb:cc:dd:ee:ff [discovered by ARP/NDP].',
                },
                {
                    'name': 'extended',
                    'opts': ['--extended', '--no-extended'],
                    'nargs': 0,
                    'help': 'Extended format (level, sequence, userdata).',
                },
                {
                    'name': 'release',
                    'opts': ['--release', '--no-release'],
                    'nargs': 0,
                    'help': 'Prepend the kernel release (implies --extended).',
                },
                {
                    'name': 'userdata',
                    'opts': ['--userdata'],
                    'multiple': True,
                    'complete': 'userdata',
                    'help': ('Userdata line appended to each message (repeatable; set: KEY= '
                             'removes KEY).'),
                },
                {
                    'name': 'userdata_hostname',
                    'opts': ['--userdata-hostname'],
                    'nargs': 0,
                    'help': ("Add userdata hostname=<this machine's name>, which listen shows "
                             "as the sender's name."),
                },
                {
                    'name': 'disabled',
                    'opts': ['--disabled'],
                    'nargs': 0,
                    'help': 'Leave the target disabled.',
                },
                {
                    'name': 'dry_run',
                    'opts': ['--dry-run'],
                    'nargs': 0,
                    'help': 'Print the configfs operations; change nothing.',
                },
                {
                    'name': 'arp_timeout',
                    'opts': ['--arp-timeout'],
                    'help': 'Seconds to wait for an answer after each ARP/NDP request.',
                },
                {
                    'name': 'arp_retries',
                    'opts': ['--arp-retries'],
                    'help': ('ARP/NDP requests to send before giving up (each waits '
                             '--arp-timeout).'),
                },
                {
                    'name': 'broadcast',
                    'opts': ['--broadcast'],
                    'nargs': 0,
                    'help': ("Send to ff:ff:ff:ff:ff:ff instead of the next hop's MAC (no "
                             'probe; the collector must be on-link).'),
                },
                {
                    'name': 'help',
                    'opts': ['-h', '--help'],
                    'nargs': 0,
                    'help': 'Show this message and exit.',
                },
            ],
            'arguments': [{'name': 'name', 'nargs': 1}],
        },
        'set': {
            'help': 'Change an existing target, even an enabled...',
            'options': [
                {
                    'name': 'remote_ip',
                    'opts': ['--remote-ip'],
                    'complete': 'attr:remote_ip',
                    'help': 'Collector address.',
                },
                {
                    'name': 'remote_port',
                    'opts': ['--remote-port'],
                    'complete': 'attr:remote_port',
                    'help': 'Collector UDP port [add: 6666].',
                },
                {
                    'name': 'local_ip',
                    'opts': ['--local-ip'],
                    'complete': 'attr:local_ip',
                    'help': 'Source address [discovered from the route].',
                },
                {
                    'name': 'local_port',
                    'opts': ['--local-port'],
                    'complete': 'attr:local_port',
                    'help': 'Source UDP port [add: 6665].',
                },
                {
                    'name': 'dev',
                    'opts': ['--dev'],
                    'complete': 'interfaces',
                    'help': 'Egress interface [discovered from the route].',
                },
                {
                    'name': 'remote_mac',
                    'opts': ['--remote-mac'],
                    'complete': 'attr:remote_mac',
                    'help': 'Next-hop MAC aa:bb:cc:dd:ee:ff [discovered by ARP/NDP].',
                },
                {
                    'name': 'extended',
                    'opts': ['--extended', '--no-extended'],
                    'nargs': 0,
                    'help': 'Extended format (level, sequence, userdata).',
                },
                {
                    'name': 'release',
                    'opts': ['--release', '--no-release'],
                    'nargs': 0,
                    'help': 'Prepend the kernel release (implies --extended).',
                },
                {
                    'name': 'userdata',
                    'opts': ['--userdata'],
                    'multiple': True,
                    'complete': 'userdata',
                    'help': ('Userdata line appended to each message (repeatable; set: KEY= '
                             'removes KEY).'),
                },
                {
                    'name': 'disabled',
                    'opts': ['--disabled'],
                    'nargs': 0,
                    'help': 'Leave the target disabled.',
                },
                {
                    'name': 'dry_run',
                    'opts': ['--dry-run'],
                    'nargs': 0,
                    'help': 'Print the configfs operations; change nothing.',
                },
                {
                    'name': 'arp_timeout',
                    'opts': ['--arp-timeout'],
                    'help': 'Seconds to wait for an answer after each ARP/NDP request.',
                },
                {
                    'name': 'arp_retries',
                    'opts': ['--arp-retries'],
                    'help': ('ARP/NDP requests to send before giving up (each waits '
                             '--arp-timeout).'),
                },
                {
                    'name': 'broadcast',
                    'opts': ['--broadcast'],
                    'nargs': 0,
                    'help': ("Send to ff:ff:ff:ff:ff:ff instead of the next hop's MAC (no "
                             'probe; the collector must be on-link).'),
                },
                {
                    'name': 'help',
                    'opts': ['-h', '--help'],
                    'nargs': 0,
                    'help': 'Show this message and exit.',
                },
            ],
            'arguments': [{'name': 'name', 'nargs': 1, 'complete': 'targets'}],
        },
        'enable': {
            'help': 'Start sending to a target (success if it...',
            'options': [
                {
                    'name': 'dry_run',
                    'opts': ['--dry-run'],
                    'nargs': 0,
                    'help': 'Print the configfs operations; change nothing.',
                },
                {
                    'name': 'help',
                    'opts': ['-h', '--help'],
                    'nargs': 0,
                    'help': 'Show this message and exit.',
                },
            ],
            'arguments': [{'name': 'name', 'nargs': 1, 'complete': 'targets'}],
        },
        'disable': {
            'help': 'Stop sending to a target (success if it...',
            'options': [
                {
                    'name': 'dry_run',
                    'opts': ['--dry-run'],
                    'nargs': 0,
                    'help': 'Print the configfs operations; change nothing.',
                },
                {
                    'name': 'help',
                    'opts': ['-h', '--help'],
                    'nargs': 0,
                    'help': 'Show this message and exit.',
                },
            ],
            'arguments': [{'name': 'name', 'nargs': 1, 'complete': 'targets'}],
        },
        'remove': {
            'help': 'Remove a target (its userdata entries first).',
            'options': [
                {
                    'name': 'missing_ok',
                    'opts': ['--missing-ok'],
                    'nargs': 0,
                    'help': 'Succeed when the target does not exist.',
                },
                {
                    'name': 'dry_run',
                    'opts': ['--dry-run'],
                    'nargs': 0,
                    'help': 'Print the configfs operations; change nothing.',
                },
                {
                    'name': 'help',
                    'opts': ['-h', '--help'],
                    'nargs': 0,
                    'help': 'Show this message and exit.',
                },
            ],
            'arguments': [{'name': 'name', 'nargs': 1, 'complete': 'targets'}],
        },
        'list': {
            'help': 'List all targets, including boot-time...',
            'options': [
                {
                    'name': 'json_',
                    'opts': ['--json'],
                    'nargs': 0,
                    'help': 'Machine-readable output.',
                },
                {
                    'name': 'help',
                    'opts': ['-h', '--help'],
                    'nargs': 0,
                    'help': 'Show this message and exit.',
                },
            ],
        },
        'show': {
            'help': 'Every attribute of one target: userdata,...',
            'options': [
                {
                    'name': 'json_',
                    'opts': ['--json'],
                    'nargs': 0,
                    'help': 'Machine-readable output.',
                },
                {
                    'name': 'help',
                    'opts': ['-h', '--help'],
                    'nargs': 0,
                    'help': 'Show this message and exit.',
                },
            ],
            'arguments': [{'name': 'name', 'nargs': 1, 'complete': 'targets'}],
        },
        'watch': {
            'help': 'Apply FILE, then keep its targets...',
            'options': [
                {
                    'name': 'json_',
                    'opts': ['--json'],
                    'nargs': 0,
                    'help': ('One JSON object per action on stderr (time, target, action, '
                             'changes, why, error).'),
                },
                {
                    'name': 'heartbeat',
                    'opts': ['--heartbeat'],
                    'help': ('Write `netconsolectl: heartbeat N` to /dev/kmsg this often, at a '
                             'level that passes the console loglevel (0: off).'),
                },
                {
                    'name': 'revalidate',
                    'opts': ['--revalidate'],
                    'help': ("Probe each target's next hop this often even without events, to "
                             'catch a replaced gateway (0: off).'),
                },
                {
                    'name': 'arp_timeout',
                    'opts': ['--arp-timeout'],
                    'help': 'Seconds to wait for each ARP/NDP reply [options.arp_timeout, 1.0].',
                },
                {
                    'name': 'arp_retries',
                    'opts': ['--arp-retries'],
                    'help': 'ARP/NDP probes before giving up [options.arp_retries, 3].',
                },
                {
                    'name': 'help',
                    'opts': ['-h', '--help'],
                    'nargs': 0,
                    'help': 'Show this message and exit.',
                },
            ],
            'arguments': [{'name': 'file', 'nargs': 1, 'complete': 'config_files'}],
        },
    },
}
# END GENERATED

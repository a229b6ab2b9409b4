"""The package's import graph: the subpackages form a DAG, no module imports in a circle, and
the receiver stands apart from the sender's side (function-level imports included).

A *unit* is a subpackage (``sender``, ``host``, ...) or a module at the top of the package
(``errors``, ``facts``, ...). ``ALLOWED`` says which units each one may import; a new module
needs no change here, its folder decides. From the bottom: the facts, errors and host
utilities; the sender (configfs, the kernel's rules, plans, the boot parameter); discovery;
the host (its seam, loglevel, persistence, doctor); the declarative layer; ``watch``; the
command line. The receiver stands on the bottom floor only: a collector never needs the
configfs code. A newcomer can trust the tree: a change to a lower unit never needs to know
about a higher one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import netconsolectl

PACKAGE = Path(netconsolectl.__file__).parent
ROOT = "netconsolectl"

#: the bottom floor: imports nothing of the package but itself
BASE = frozenset({ROOT, "errors", "facts", "endpoint", "hostutil"})
ALLOWED: dict[str, frozenset[str]] = {
    ROOT: frozenset(),  # the package's __init__: its docstring and version
    "errors": frozenset(),
    "facts": frozenset(),
    "endpoint": frozenset(),
    "hostutil": frozenset({"errors", "facts"}),
    "sender": BASE,
    "discover": BASE | {"sender"},
    "host": BASE | {"sender", "discover"},
    "declarative": BASE | {"sender", "discover", "host"},
    "watch": BASE | {"sender", "discover", "host", "declarative"},
    "receiver": BASE | {"host"},  # host.persist for the service unit; never the sender
    "cli": BASE | {"sender", "discover", "host", "declarative", "watch", "receiver"},
    "__main__": frozenset({"cli"}),
}
#: what the receiver must never reach, not even through another unit (see below)
RECEIVER_APART = ("sender", "discover", "declarative", "watch", "cli")


@dataclass(frozen=True)
class Edge:
    """One import: ``source`` (a module, in ``path`` at ``line``) imports ``target``."""

    source: str
    target: str
    path: Path
    line: int

    def __str__(self) -> str:
        try:
            where = self.path.relative_to(PACKAGE.parent)
        except ValueError:
            where = self.path
        return f"{where}:{self.line}: {unit(self.source)} -> {unit(self.target)} ({self.target})"


def unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    parts[-1] = parts[-1].split(".")[0]  # a compiled module: _fastjson.cpython-311-...
    return ".".join(parts)


def package_files(package: Path = PACKAGE) -> dict[Path, str]:
    """Every module of the package (compiled ones by their stub) with its dotted name."""
    return {p: module_name(p, package) for p in sorted(package.rglob("*.py*"))
            if p.suffix in (".py", ".pyi")}


def _resolve(name: str, modules: set[str]) -> str | None:
    """The module a dotted name lives in (``a.b.func`` -> ``a.b``); None outside the package."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports(path: Path, module: str, modules: set[str]) -> Iterator[Edge]:
    """Every import of the package in one file, wherever it stands (functions, TYPE_CHECKING).

    ``from a import b`` imports the module ``a.b`` when there is one, else the module ``a``.
    """
    package = module if path.stem == "__init__" else module.rpartition(".")[0]
    seen: set[tuple[str, int]] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                     for a in node.names]
        for name in names:
            target = _resolve(name, modules) if name.split(".")[0] == ROOT else None
            if target is not None and target != module and (target, node.lineno) not in seen:
                seen.add((target, node.lineno))
                yield Edge(module, target, path, node.lineno)


def graph(files: dict[Path, str]) -> list[Edge]:
    modules = set(files.values())
    return [e for path, module in files.items() for e in imports(path, module, modules)]


def forbidden(edges: Iterable[Edge]) -> list[str]:
    """Every import of a unit its unit may not import, as ``file:line: from -> to (module)``."""
    return [str(e) for e in edges
            if unit(e.target) != unit(e.source)
            and unit(e.target) not in ALLOWED.get(unit(e.source), frozenset())]


def cycles(edges: Iterable[Edge]) -> list[list[Edge]]:
    """The import circles among modules, each as the edges that close it (Tarjan's SCCs)."""
    out: dict[str, list[Edge]] = {}
    for e in edges:
        out.setdefault(e.source, []).append(e)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[Edge]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for e in out.get(v, []):
            if e.target not in index:
                visit(e.target)
                low[v] = min(low[v], low[e.target])
            elif e.target in stack:
                low[v] = min(low[v], index[e.target])
        if low[v] == index[v]:
            members = set()
            while (w := stack.pop()) != v:
                members.add(w)
            members.add(v)
            if len(members) > 1:
                found.append([e for m in sorted(members) for e in out.get(m, [])
                              if e.target in members])

    for v in sorted(out):
        if v not in index:
            visit(v)
    return found


def reaches(edges: Iterable[Edge], start: Iterable[str]) -> dict[str, Edge]:
    """Every module imported from ``start``, directly or not, with the import that first got it."""
    out: dict[str, list[Edge]] = {}
    for e in edges:
        out.setdefault(e.source, []).append(e)
    seen: dict[str, Edge] = {}
    todo = list(start)
    while todo:
        for e in out.get(todo.pop(), []):
            if e.target not in seen:
                seen[e.target] = e
                todo.append(e.target)
    return seen


EDGES = graph(package_files())


def test_every_module_has_a_unit_with_rules() -> None:
    units = {unit(m) for m in package_files().values()}
    assert sorted(units - ALLOWED.keys()) == []


def test_the_allowed_dependencies_form_a_dag() -> None:
    edges = [Edge(a, b, PACKAGE, 0) for a, bs in ALLOWED.items() for b in bs]
    assert cycles(edges) == []
    assert all(b in ALLOWED for bs in ALLOWED.values() for b in bs)


def test_no_module_imports_outside_its_allowed_units() -> None:
    assert forbidden(EDGES) == []


def test_no_import_cycle_between_modules() -> None:
    assert [[str(e) for e in c] for c in cycles(EDGES)] == []


def test_the_receiver_stands_apart_from_the_sender() -> None:
    assert not set(RECEIVER_APART) & ALLOWED["receiver"]
    receiver = [m for m in package_files().values() if unit(m) == "receiver"]
    reached = reaches(EDGES, receiver)
    assert [f"{m} through {e}" for m, e in sorted(reached.items())
            if unit(m) in RECEIVER_APART] == []


def test_the_check_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    # cli/apply.py imports declarative.apply inside the command: the check must see it.
    modules = set(package_files().values())
    assert "netconsolectl.declarative.apply" in {
        e.target for e in imports(PACKAGE / "cli/apply.py", "netconsolectl.cli.apply", modules)}
    fake = tmp_path / "m.py"
    fake.write_text("def f():\n    from ..cli import base\n")
    assert [e.target for e in imports(fake, "netconsolectl.sender.m", modules)] == [
        "netconsolectl.cli.base"]


def _inject(tmp_path: Path, files: dict[str, str]) -> list[Edge]:
    """The package's graph with extra modules (``receiver/x.py`` -> text) laid beside it."""
    extra = {}
    for rel, text in files.items():
        path = tmp_path / ROOT / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        extra[path] = module_name(path, tmp_path / ROOT)
    everything = package_files() | extra
    modules = set(everything.values())
    return EDGES + [e for p, m in extra.items() for e in imports(p, m, modules)]


def test_an_injected_receiver_to_sender_import_fails_naming_file_line_and_edge(
        tmp_path: Path) -> None:
    edges = _inject(tmp_path, {"receiver/injected.py": (
        '"""A receiver module that reaches for the configfs code."""\n\n'
        "def f() -> None:\n"
        "    from netconsolectl.sender.plan import apply  # noqa\n")})
    assert forbidden(edges) == [
        f"{tmp_path}/{ROOT}/receiver/injected.py:4: receiver -> sender (netconsolectl.sender.plan)"]
    # and the path the receiver would take to the sender is named as well
    reached = reaches(edges, ["netconsolectl.receiver.injected"])
    assert str(reached["netconsolectl.sender.plan"]).endswith(
        "injected.py:4: receiver -> sender (netconsolectl.sender.plan)")


def test_an_injected_cycle_fails(tmp_path: Path) -> None:
    edges = _inject(tmp_path, {"sender/ping.py": "from netconsolectl.sender import pong\n",
                               "sender/pong.py": "import netconsolectl.sender.ping\n"})
    assert [sorted(str(e).rpartition(": ")[2] for e in c) for c in cycles(edges)] == [
        ["sender -> sender (netconsolectl.sender.ping)",
         "sender -> sender (netconsolectl.sender.pong)"]]


def test_an_upward_import_between_subpackages_fails(tmp_path: Path) -> None:
    edges = _inject(tmp_path, {"sender/up.py": "from netconsolectl.host.system import System\n"})
    assert forbidden(edges) == [
        f"{tmp_path}/{ROOT}/sender/up.py:1: sender -> host (netconsolectl.host.system)"]

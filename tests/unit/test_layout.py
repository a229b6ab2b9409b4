"""The package's layers: no module imports one above it (function-level imports included).

From the bottom: facts and errors; the two seams (configfs, the host); the sender's configfs
side with the boot parameter; discovery; what is built on them (the host's services, the
declarative layer); the receiver; the command line. A newcomer can trust the tree: a change to
a lower layer never needs to know about a higher one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import netconsolectl

PACKAGE = Path(netconsolectl.__file__).parent

LAYERS: list[tuple[str, ...]] = [
    ("netconsolectl.errors", "netconsolectl.facts", "netconsolectl.endpoint"),
    ("netconsolectl.sender.configfs",),
    ("netconsolectl.host.system",),
    ("netconsolectl.sender", "netconsolectl.bootparam"),
    ("netconsolectl.discover",),
    # The verbs complete a target with discovery and keep watch's disable marks.
    ("netconsolectl.host", "netconsolectl.declarative", "netconsolectl.watch",
     "netconsolectl.sender.verbs"),
    ("netconsolectl.receiver",),
    ("netconsolectl.cli", "netconsolectl.__main__"),
]


def _layer(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, layer): the longest prefix decides
    for rank, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > best[0]):
                best = (len(p), rank)
    return None if best is None else best[1]


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str) -> set[str]:
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in found if m.startswith("netconsolectl.")}


def test_every_module_has_a_layer() -> None:
    missing = [_module_name(p) for p in PACKAGE.rglob("*.py")
               if _module_name(p) != "netconsolectl" and _layer(_module_name(p)) is None]
    assert missing == []


def test_no_module_imports_upward() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        own = _layer(module)
        if own is None:
            continue
        for imported in _imports(path, module):
            theirs = _layer(imported)
            if theirs is not None and theirs > own:
                upward.append(f"{module} imports {imported}")
    assert upward == []


def test_the_check_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    # cli/apply.py imports declarative.apply inside the command: the check must see it.
    assert "netconsolectl.declarative.apply" in _imports(PACKAGE / "cli/apply.py",
                                                         "netconsolectl.cli.apply")
    fake = tmp_path / "m.py"
    fake.write_text("def f():\n    from ..cli import base\n")
    assert "netconsolectl.cli.base" in _imports(fake, "netconsolectl.sender.m")
    assert _layer("netconsolectl.cli.base") > _layer("netconsolectl.sender.m")  # type: ignore[operator]

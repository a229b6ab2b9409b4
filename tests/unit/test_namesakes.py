"""A name means one thing package-wide: no two modules define a class or a type alias of the
same name (``Options`` of the receiver and of the configuration file, ``Event`` of a netlink
message and of a received record were such namesakes).

Private names (a leading underscore) are local to their module by convention and are left out;
so are names a module imports (one definition, used in many places).
"""

from __future__ import annotations

import ast
from pathlib import Path

import netconsolectl

PACKAGE = Path(netconsolectl.__file__).parent


def _is_type_expr(node: ast.expr) -> bool:
    """``tuple[str, int]``, ``A | B``, ``Literal[...]``, ``Annotated[...]``, ``NewType(...)``
    (Python 3.11 has no ``type X = ...`` statement)."""
    if isinstance(node, ast.Subscript | ast.BinOp):
        return True
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in (
        "NewType", "TypeVar", "namedtuple", "NamedTuple", "TypedDict")


def definitions(path: Path) -> dict[str, int]:
    """The public classes and type aliases a module defines (anywhere in it), by line."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        name = None
        if isinstance(node, ast.ClassDef):
            name = node.name
        elif (isinstance(node, ast.Assign) and len(node.targets) == 1
              and isinstance(node.targets[0], ast.Name) and _is_type_expr(node.value)):
            name = node.targets[0].id
        elif (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
              and isinstance(node.annotation, ast.Name) and node.annotation.id == "TypeAlias"):
            name = node.target.id
        # A type's name is CapWords; ALL_CAPS names are constants, not types.
        if name and name[0].isupper() and not name.isupper() and not name.startswith("_"):
            found.setdefault(name, node.lineno)
    return found


def namesakes(package: Path) -> dict[str, list[str]]:
    where: dict[str, list[str]] = {}
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent)
        for name, line in definitions(path).items():
            where.setdefault(name, []).append(f"{rel}:{line}")
    return {name: places for name, places in sorted(where.items()) if len(places) > 1}


def test_no_two_modules_define_the_same_type_name() -> None:
    assert namesakes(PACKAGE) == {}


def test_the_check_finds_a_namesake(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "a").mkdir(parents=True)
    (pkg / "b").mkdir()
    (pkg / "a/m.py").write_text("class State:\n    pass\n\n_Private = int | None\n")
    (pkg / "b/n.py").write_text("from typing import Literal\n\nState = Literal['up']\n"
                                "_Private = str\nLIMIT = 3\n")
    assert namesakes(pkg) == {"State": ["pkg/a/m.py:1", "pkg/b/n.py:3"]}

"""Each kernel or host fact is defined once, in netconsolectl/facts.py (ENOTSUPP with the error
tree in errors.py): no other module gives a name to the same value."""

from __future__ import annotations

import ast
from pathlib import Path

import netconsolectl
from netconsolectl import facts
from netconsolectl.errors import ENOTSUPP
from netconsolectl.sender import spec

PACKAGE = Path(netconsolectl.__file__).parent

#: name -> value of the facts that used to be written in several places
FACTS = {
    "DEFAULT_LOCAL_PORT": facts.DEFAULT_LOCAL_PORT,
    "DEFAULT_REMOTE_PORT": facts.DEFAULT_REMOTE_PORT,
    "IFNAMSIZ": facts.IFNAMSIZ,
    "MAX_USERDATA_VALUE_LENGTH": facts.MAX_USERDATA_VALUE_LENGTH,
    "MAX_USERDATA_NAME_LENGTH": facts.MAX_USERDATA_NAME_LENGTH,
    "ENOTSUPP": ENOTSUPP,
    "BROADCAST_MAC": facts.BROADCAST_MAC,
}
HOMES = {"facts.py", "errors.py"}
#: values distinctive enough that any name given to them elsewhere is the same fact again
#: (16 or 200 are too common to search for by value: their names are searched instead)
DISTINCT = {facts.DEFAULT_LOCAL_PORT, facts.DEFAULT_REMOTE_PORT, ENOTSUPP, facts.BROADCAST_MAC}


def _assigned(tree: ast.AST) -> list[tuple[str, object, int]]:
    """(name, literal value, line) of every assignment of a literal to a name."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if isinstance(value, ast.Constant):
            out += [(t.id, value.value, node.lineno) for t in targets if isinstance(t, ast.Name)]
    return out


def test_each_fact_is_defined_in_its_home_only() -> None:
    elsewhere = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in HOMES:
            continue
        for name, value, line in _assigned(ast.parse(path.read_text())):
            if name in FACTS or (value in DISTINCT and not isinstance(value, bool)):
                elsewhere.append(f"{rel}:{line}: {name} = {value!r}")
    assert elsewhere == []


def test_the_userdata_limits_agree_with_the_kernel() -> None:
    # drivers/net/netconsole.c: the value's buffer (200) holds its NUL, so 199 bytes is the
    # longest value stored whole; a key is at most 256 - 200 - 3 bytes.
    assert facts.MAX_USERDATA_VALUE_LENGTH == 200 and spec.MAX_USERDATA_VALUE == 199
    assert facts.MAX_USERDATA_NAME_LENGTH == 256 - 200 - 3 == spec.MAX_USERDATA_KEY

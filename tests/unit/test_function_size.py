"""Functions a reader can hold in their head: none longer than 80 lines in the package, and a
command of the command line (cli/, completion and its generated table apart) parses, calls
the library and prints in at most 35 lines of body. Complexity is ruff's C901 (pyproject)."""

from __future__ import annotations

import ast
from pathlib import Path

import netconsolectl

PACKAGE = Path(netconsolectl.__file__).parent
MAX_LINES = 80
MAX_COMMAND_BODY = 35
NOT_COMMANDS = ("cli/complete.py", "cli/tree.py")

Function = ast.FunctionDef | ast.AsyncFunctionDef


def _functions(path: Path) -> list[Function]:
    return [n for n in ast.walk(ast.parse(path.read_text(), str(path)))
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def _length(f: Function) -> int:
    return (f.end_lineno or f.lineno) - f.lineno + 1


def _body_length(f: Function) -> int:
    """Lines from the first statement after the docstring to the last."""
    body = f.body
    if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)):
        body = body[1:]
    return 0 if not body else (body[-1].end_lineno or body[-1].lineno) - body[0].lineno + 1


def _is_command(f: Function) -> bool:
    """Registered on the typer application: ``@command(...)``, ``@app.command(...)``."""
    for d in f.decorator_list:
        target = d.func if isinstance(d, ast.Call) else d
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name in ("command", "callback"):
            return True
    return False


def too_long(package: Path) -> list[str]:
    found = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        for f in _functions(path):
            if _length(f) > MAX_LINES:
                found.append(f"{rel}:{f.lineno} {f.name}: {_length(f)} lines")
            elif (rel.startswith("cli/") and rel not in NOT_COMMANDS and _is_command(f)
                  and _body_length(f) > MAX_COMMAND_BODY):
                found.append(f"{rel}:{f.lineno} {f.name}: command body of {_body_length(f)} "
                             "lines")
    return found


def test_no_function_is_too_long() -> None:
    assert too_long(PACKAGE) == []


def test_the_check_finds_long_functions_and_fat_commands(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "cli").mkdir(parents=True)
    long_body = "".join(f"    x{i} = {i}\n" for i in range(36))
    (pkg / "cli/verbs.py").write_text(
        f'@command("a")\ndef a_cmd() -> None:\n    """Doc."""\n{long_body}\n'
        f"def helper() -> None:\n{long_body}")
    (pkg / "cli/complete.py").write_text(f'@command("b")\ndef b_cmd() -> None:\n{long_body}')
    (pkg / "big.py").write_text("def big() -> None:\n" + "    pass\n" * 80)
    assert too_long(pkg) == ["big.py:1 big: 81 lines",
                             "cli/verbs.py:2 a_cmd: command body of 36 lines"]

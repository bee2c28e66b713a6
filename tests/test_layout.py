"""The package stays easy to read: short functions, sub-package ``__init__`` files that
only describe their package (so importing one stays cheap).

    python -m pytest tests/test_layout.py
"""
from __future__ import annotations

import ast

from conftest import ROOT

PACKAGE = ROOT / "gan_anim"
MAX_LINES = 60
# A longer function needs a comment right above it (above its decorators) that starts with
# this and says why it is not split.
WAIVER = "# Long:"


def long_functions(package=PACKAGE, limit: int = MAX_LINES) -> list[str]:
    """'path:line name (N lines)' for every function longer than ``limit`` without a waiver."""
    found = []
    for path in sorted(package.rglob("*.py")):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            length = node.end_lineno - start + 1
            if length <= limit:
                continue
            above = lines[start - 2].strip() if start >= 2 else ""
            j = start - 2
            while j >= 0 and lines[j].strip().startswith("#"):  # the whole comment block above
                above = lines[j].strip()
                j -= 1
            if not above.startswith(WAIVER):
                found.append(f"{path.relative_to(package.parent)}:{start} {node.name} ({length} lines)")
    return found


def test_no_function_over_60_lines():
    assert long_functions() == []


def test_subpackage_inits_only_describe_their_package():
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        body = ast.parse(init.read_text()).body
        assert len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant), \
            f"{init}: a sub-package __init__ holds its docstring only"


def test_the_checker_sees_a_long_function_and_honours_a_waiver(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(70))
    (pkg / "a.py").write_text(f"def long_one():\n{body}\n\n\n{WAIVER} one table, read as a whole\ndef waived():\n{body}\n")
    assert long_functions(pkg) == ["pkg/a.py:1 long_one (71 lines)"]

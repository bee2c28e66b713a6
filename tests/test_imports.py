"""Dependencies between gan_anim's modules point one way: no import cycles."""
from __future__ import annotations

import ast

from conftest import ROOT

PACKAGE = ROOT / "gan_anim"


def module_imports() -> dict[str, set[str]]:
    """{module: gan_anim modules it imports anywhere in its body}, parsed with ast.

    ``gan_anim/__init__.py`` is left out: it only re-exports the API, and every
    ``from gan_anim import x`` / ``from . import x`` is counted as an import of module x.
    """
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    graph = {}
    for name in modules:
        deps = set()
        for node in ast.walk(ast.parse((PACKAGE / f"{name}.py").read_text())):
            if isinstance(node, ast.Import):
                deps |= {a.name.split(".")[1] for a in node.names
                         if a.name.startswith("gan_anim.") and a.name.count(".") >= 1}
            elif isinstance(node, ast.ImportFrom):
                if node.level == 1 or node.module == "gan_anim" or (node.module or "").startswith("gan_anim."):
                    base = node.module or ""
                    base = base.split(".")[1] if base.startswith("gan_anim.") else ("" if base == "gan_anim" else base)
                    if base:
                        deps.add(base.split(".")[0])
                    else:   # from . import x, y
                        deps |= {a.name for a in node.names if a.name in modules}
        graph[name] = deps & modules - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                return stack[stack.index(dep):] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_module_imports_have_no_cycles():
    graph = module_imports()
    assert {"faces", "estimator", "prepare", "media", "workers"} <= set(graph)
    assert "prepare" not in graph["estimator"] and "prepare" not in graph["faces"]
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_cycle_finder_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None

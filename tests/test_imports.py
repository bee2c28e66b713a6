"""The package's dependencies point one way: no import cycles between modules or between
stages, and inference never imports ``gan_anim.training``.

    python -m pytest tests/test_imports.py
"""
from __future__ import annotations

import ast

from conftest import ROOT

PACKAGE = ROOT / "gan_anim"
# The only modules outside training/ that may import it: the command line (train, export,
# prepare). Benchmarks and tools/ are outside the package and may import anything.
TRAINING_USERS = {"cli"}


def module_name(path, package=PACKAGE) -> str:
    """gan_anim/pipeline/photo.py -> 'pipeline.photo'; a package's __init__ -> its name."""
    parts = list(path.relative_to(package).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def module_imports(package=PACKAGE) -> dict[str, set[str]]:
    """{module: the gan_anim modules it imports anywhere in its body}, parsed with ast.

    Names are dotted below the package ('pipeline.photo'). ``from .x import y`` counts as an
    import of module ``x.y`` when that is a module, else of ``x``. The top package's
    ``__init__`` is left out: it only re-exports the API by name.
    """
    files = {module_name(p, package): p for p in package.rglob("*.py")}
    files.pop("", None)
    modules = set(files)
    graph = {}
    for name, path in files.items():
        is_pkg = path.name == "__init__.py"
        here = name.split(".") if is_pkg else name.split(".")[:-1]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name[len("gan_anim."):] for a in node.names if a.name.startswith("gan_anim.")]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[:len(here) - (node.level - 1)] if node.level > 1 else here
                    base = ".".join(base + ([node.module] if node.module else []))
                elif node.module == "gan_anim" or (node.module or "").startswith("gan_anim."):
                    base = node.module[len("gan_anim."):] if node.module != "gan_anim" else ""
                else:
                    continue
                for a in node.names:
                    sub = f"{base}.{a.name}" if base else a.name
                    targets.append(sub if sub in modules else base)
            for t in targets:
                while t and t not in modules:  # a name inside a module: the module
                    t = t.rpartition(".")[0]
                if t:
                    deps.add(t)
        graph[name] = deps - {name}
    return graph


def stage(module: str) -> str:
    """The stage a module belongs to: its sub-package, or itself at the top."""
    return module.split(".")[0]


def stage_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for mod, deps in graph.items():
        out.setdefault(stage(mod), set()).update(stage(d) for d in deps)
    return {k: v - {k} for k, v in out.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
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


def test_the_import_graph_sees_the_layout():
    graph = module_imports()
    assert {"faces.detect", "pipeline.photo", "render.renderer", "training.loop", "media.paths"} <= set(graph)
    assert "faces.detect" in graph["pipeline.photo"]
    assert "training.options" in graph["cli"]


def test_module_imports_have_no_cycles():
    cycle = find_cycle(module_imports())
    assert cycle is None, " -> ".join(cycle)


def test_stages_depend_one_way():
    """Between sub-packages (and top-level modules) too: pipeline -> render -> faces, never back."""
    cycle = find_cycle(stage_graph(module_imports()))
    assert cycle is None, " -> ".join(cycle)


def test_inference_never_imports_training():
    bad = {mod: sorted(d for d in deps if stage(d) == "training")
           for mod, deps in module_imports().items()
           if stage(mod) != "training" and mod not in TRAINING_USERS}
    bad = {m: d for m, d in bad.items() if d}
    assert not bad, bad


def test_cycle_finder_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_training_rule_sees_a_violation(tmp_path):
    """The checker itself: a package whose render module imports training is flagged."""
    pkg = tmp_path / "gan_anim"
    for rel in ("render/__init__.py", "render/model.py", "training/__init__.py", "training/loop.py"):
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text("")
    (pkg / "render" / "model.py").write_text("from ..training.loop import train\n")
    graph = module_imports(pkg)
    assert graph["render.model"] == {"training.loop"}
    assert stage_graph(graph)["render"] == {"training"}

"""The layout tells the story: stages import only stages below them, with no import circle, and
no module grows past the size where it holds two jobs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mi_bench"
# the stages in order; a module may import its own stage and those before it
STAGES = {
    "foundations": ("errors", "files", "options", "intervals", "plugins", "device", "distributed",
                    "_compat", "results",
                    "__init__"),
    "data": ("data", "evaluate"),
    "models": ("models",),
    "defenses": ("defenses",),
    "attacks": ("attacks",),
    "training": ("train",),
    "report": ("report",),
    "sweep": ("sweep",),
    "commands": ("commands", "cli", "api", "__main__"),
}
MAX_LINES = 420


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _stage(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for i, members in enumerate(STAGES.values()):
        if top in members:
            return i
    raise AssertionError(f"{module} belongs to no stage: add it to STAGES (and the README)")


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every mi_bench module ``path`` imports, at module level or inside a function (not the
    type checker's ``if TYPE_CHECKING:`` imports, which never run)."""
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and getattr(block.test, "id", None) == "TYPE_CHECKING"
                   for n in ast.walk(block)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules
                     else node.module for a in node.names]
        else:
            continue
        out |= {n for n in names if n.startswith("mi_bench") and n in modules}
    return out


def test_every_module_is_in_a_stage():
    for name in _modules():
        _stage(name)


def test_no_stage_imports_a_later_one():
    modules = _modules()
    bad = [f"{name} ({list(STAGES)[_stage(name)]}) imports {dep} ({list(STAGES)[_stage(dep)]})"
           for name, path in modules.items() for dep in _imports(path, modules)
           if name != "mi_bench" and _stage(dep) > _stage(name)]
    assert not bad, "\n".join(bad)


def test_no_import_circle():
    modules = _modules()
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    # a package's __init__ that re-exports its submodules is not a circle with them
    graph = {name: {d for d in deps if not name.startswith(d + ".")}
             for name, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                pytest.fail("import circle: " + " -> ".join(trail[trail.index(dep):] + [dep])
                            if dep in trail else f"import circle through {dep}")
            if dep not in state:
                visit(dep, trail + [dep])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])


def test_no_module_holds_two_jobs():
    long = {name: n for name, p in _modules().items()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these (over {MAX_LINES} lines): {long}"


def test_the_checker_sees_a_violation(tmp_path):
    """The layer rule can fail: a data-stage module importing the report is caught."""
    fake = tmp_path / "mi_bench" / "data.py"
    fake.parent.mkdir()
    fake.write_text("from mi_bench.report.rows import Row\n")
    modules = {"mi_bench.data": fake, "mi_bench.report.rows": fake}
    deps = _imports(fake, modules)
    assert deps == {"mi_bench.report.rows"}
    assert _stage("mi_bench.report.rows") > _stage("mi_bench.data")

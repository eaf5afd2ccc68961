"""The modules of services/ import each other without a circle (issue 21).

A circle means neither module can be read, tested or moved without the other; the import graph is
read from the source with `ast`, so an import inside a function counts as much as one at the top.
"""
from __future__ import annotations

import ast
import graphlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _modules(root: Path) -> dict[str, Path]:
    found = {}
    for path in (root / "services").rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imported(module: str, path: Path, node: ast.Import | ast.ImportFrom, known: dict) -> list[str]:
    """The modules of services/ an import statement names (`from pkg import mod` names pkg.mod)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    if node.level:
        package = package[:len(package) - node.level + 1]
        prefix = ".".join(package + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    return [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in known else prefix for alias in node.names]


def _nearest_known(name: str, known: dict) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    known = _modules(root)
    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                targets.update(_nearest_known(name, known) for name in _imported(module, path, node, known))
        graph[module] = {target for target in targets if target and target != module}
    return graph


def test_the_graph_is_read():
    graph = import_graph()
    assert "services.common.storage.job_records" in graph["services.gateway.uploads.intake"]
    assert "services.common.config" in graph["services.common.storage.connection"]


def circle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        return error.args[1]
    return None


def test_no_import_circle_in_services():
    found = circle(import_graph())
    assert found is None, f"import circle: {' -> '.join(found or [])}"


def test_a_circle_through_a_function_level_import_is_found(tmp_path):
    package = tmp_path / "services" / "worker"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "plan.py").write_text("from . import run\n")
    (package / "run.py").write_text("def go():\n    from services.worker import plan\n")
    assert set(circle(import_graph(tmp_path)) or []) == {"services.worker.plan", "services.worker.run"}

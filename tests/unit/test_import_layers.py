"""The packages import one way (docs/architecture.md, "Layers"): faces → graphs → tools/llm → records → memory →
training, with `config` importable by all but the domain. These tests read every module's imports with `ast`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RANK = {"cli": 5, "server": 5, "graphs": 4, "tools": 3, "llm": 3, "records": 2, "memory": 1, "training": 0}
PACKAGES = {*RANK, "config"}


def _imports() -> list[tuple[str, str, str]]:
    """(importing package, imported package, module path) for every first-party import of the packages."""
    edges = []
    for package in sorted(PACKAGES):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in PACKAGES and top != package:
                        edges.append((package, top, str(path.relative_to(ROOT))))
    return edges


def test_the_old_catch_all_package_is_gone():
    assert not (ROOT / "coach").exists()


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_a_package_imports_only_layers_below_it(package: str):
    wrong = []
    for src, dst, path in _imports():
        if src != package:
            continue
        if dst == "config":
            if src == "training":
                wrong.append(f"{path}: the domain reads no settings")
        elif src == "config" or RANK[dst] >= RANK[src]:
            wrong.append(f"{path} imports {dst}")
    assert wrong == []


def test_the_package_graph_has_no_cycle():
    graph: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for src, dst, _ in _imports():
        graph[src].add(dst)
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            assert state.get(nxt) != 1, "cycle: " + " -> ".join([*stack, nxt])
            if nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for package in sorted(PACKAGES):
        if package not in state:
            visit(package, [package])


def test_no_module_outside_tests_and_benchmarks_is_over_400_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for package in sorted(PACKAGES)
        for p in (ROOT / package).rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert long == {}

"""The layout is the architecture: rooms import downwards only, the package root holds no loose modules, and the
harness, lab and scripts build on the package's public modules, never on the tests or the demo command."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "signs_lightning"


def imported_modules(path: Path) -> set[str]:
    """Every absolute module a file imports, at any depth (function-level imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def room_graph() -> dict[str, set[str]]:
    """room -> the other rooms of ``signs_lightning`` it imports."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        room = path.relative_to(PACKAGE).parts[0]
        for name in imported_modules(path):
            parts = name.split(".")
            if parts[0] == "signs_lightning" and len(parts) > 1 and parts[1] != room:
                graph.setdefault(room, set()).add(parts[1])
    return graph


def cycles(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Pairs of rooms that reach each other."""

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            room = todo.pop()
            if room == goal:
                return True
            if room not in seen:
                seen.add(room)
                todo.extend(graph.get(room, ()))
        return False

    return sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if reaches(b, a)})


def test_rooms_import_downwards_only() -> None:
    graph = room_graph()
    assert cycles(graph) == []
    # The foundations build on nothing above them.
    assert graph.get("core", set()) == set()
    assert graph["evaluation"].isdisjoint({"modules", "inference", "run", "commands"})


def test_the_cycle_check_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [("a", "b"), ("a", "c"), ("b", "c")]


def test_the_package_root_holds_rooms_only() -> None:
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == ["__init__.py"]


def test_harness_lab_and_scripts_use_the_package_not_the_tests_or_the_demo() -> None:
    for folder in ("benchmarks", "lab", "scripts"):
        for path in (ROOT / folder).rglob("*.py"):
            for name in imported_modules(path):
                assert name != "signs_lightning.commands.demo", f"{path} imports the demo command"
                assert not name.startswith("tests") and not (ROOT / "tests" / f"{name}.py").exists(), (
                    f"{path} imports {name} from tests/"
                )


def test_every_third_party_module_the_package_imports_is_a_declared_dependency() -> None:
    import importlib.metadata
    import re
    import sys

    import pytest
    from packaging.requirements import Requirement

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    def normal(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {normal(Requirement(r).name) for r in project["dependencies"]}
    distributions = importlib.metadata.packages_distributions()  # import name -> distributions: yaml -> PyYAML
    imported = {
        name.split(".")[0]: path
        for path in PACKAGE.rglob("*.py")
        for name in imported_modules(path)
        if name.split(".")[0] not in sys.stdlib_module_names and name.split(".")[0] != "signs_lightning"
    }
    undeclared = {
        module: f"{path.relative_to(ROOT)} (distribution {'/'.join(distributions.get(module, ['not installed']))})"
        for module, path in sorted(imported.items())
        if not declared & {normal(d) for d in distributions.get(module, [module])}
    }
    assert undeclared == {}, "imported by signs_lightning but not in pyproject's dependencies"

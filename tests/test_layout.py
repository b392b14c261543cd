"""The layout is the architecture: rooms import downwards only, the package root holds no loose modules, and the
harness, lab and scripts build on the package's public modules, never on the tests or the demo command. And the docs
describe that layout and the commands as they are: docs/architecture.md names every module, the README every
command, docs/using.md the options' defaults."""

from __future__ import annotations

import ast
import re
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


# -- the docs match the layout and the commands --------------------------------------------------------------------
def rooms_block() -> dict[str, str]:
    """docs/architecture.md's "Rooms" code block: room -> the text that describes its files."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("## Rooms", 1)[1].split("```", 2)[1]
    rooms: dict[str, str] = {}
    room = None
    for line in block.splitlines():
        match = re.match(r"^  (\w+)/\s", line)
        if match:
            room = match.group(1)
        if room is not None:
            rooms[room] = rooms.get(room, "") + line + "\n"
    return rooms


def test_architecture_names_every_module_in_its_room() -> None:
    rooms = rooms_block()
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py":
            continue
        room = path.relative_to(PACKAGE).parts[0]
        assert room in rooms, f"docs/architecture.md's Rooms has no {room}/"
        assert re.search(rf"(?<![\w/]){re.escape(path.name)}", rooms[room]), (
            f"docs/architecture.md omits {room}/{path.name}"
        )
    for room, text in rooms.items():
        for name in re.findall(r"(?<![\w/])(\w+\.py)\b", text):
            assert (PACKAGE / room / name).is_file(), f"docs/architecture.md names {room}/{name}, which does not exist"


def test_every_signs_command_is_in_the_readme_and_the_docs_name_no_other() -> None:
    """(``signs --help`` lists them all: tests/test_cli_errors.py.)"""
    from signs_lightning.run.cli import COMMAND_HELP

    readme = (ROOT / "README.md").read_text()
    for name in COMMAND_HELP:
        assert f"signs {name}" in readme, f"README.md never mentions signs {name}"
    for doc in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))):
        named = set(re.findall(r"\bsigns ([a-z_]+)\b", doc.read_text()))
        assert named <= set(COMMAND_HELP), f"{doc.name} names commands signs does not have: {named - set(COMMAND_HELP)}"


def documented_defaults(text: str) -> dict[str, str]:
    """``--option`` (value ...) pairs of a doc: the value when it is a number or a `word`."""
    found = {}
    for option, value in re.findall(r"`(--[a-z0-9-]+)`\s+\((`?[\w.]+`?)", text):
        if value.startswith("`") or re.fullmatch(r"[\d.]+", value):
            found[option] = value.strip("`")
    return found


def test_using_md_states_the_sample_and_edit_defaults() -> None:
    from signs_lightning.commands import edit, sample

    text = (ROOT / "docs" / "using.md").read_text()
    sample_part = text.split("## `signs sample`", 1)[1].split("## `signs edit`", 1)[0]
    edit_part = text.split("## `signs edit`", 1)[1].split("## `signs export`", 1)[0]

    parsed = vars(sample.parse_args(["model.ckpt", "--output", "out"]))
    stated = documented_defaults(sample_part)
    assert {"--num-samples", "--nfe", "--seed", "--batch-size", "--accelerator", "--devices"} <= set(stated)
    for option, value in stated.items():
        assert str(parsed[option[2:].replace("-", "_")]) == value, option

    # The options every task takes (stated once), and each task's own (in its row of the table).
    common = documented_defaults(edit_part.split("All tasks take", 1)[1].split("\n\n", 1)[0])
    assert {"--nfe", "--seed"} <= set(common)
    for row in (
        line for line in edit_part.splitlines() if re.match(r"\| `(denoise|inpaint|colorize|project)` \|", line)
    ):
        task = row.split("`")[1]
        extra = {"inpaint": ["--box", "0,0,1,1"]}.get(task, [])
        parsed = vars(edit.parse_args([task, "model.ckpt", "in.png", "--output", "out", *extra]))
        # --device's default ("cuda when available") depends on the machine.
        for option, value in {**common, **documented_defaults(row)}.items() - {("--device", "cuda")}:
            assert str(parsed[option[2:].replace("-", "_")]) == value, (task, option)

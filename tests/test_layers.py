"""Imports run one way: em_harness <- solvers, scorers <- em_tasks (see the README's Layout section)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

MAY_NOT_IMPORT = {
    "em_harness": {"em_tasks", "scorers", "solvers", "training"},
    "scorers": {"em_tasks", "solvers", "training"},
    "solvers": {"em_tasks", "scorers", "training"},
}
"""Package -> the top-level packages its modules must not import (they sit above it)."""

COMMAND_LINE = {"em_harness/cli.py"}
"""The ``em`` command assembles the verbs of every layer (data, models, report, training), so it sits on top of all
of them; it imports the training commands inside a function, only to register them."""


def imported_top_levels(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(MAY_NOT_IMPORT))
def test_no_module_imports_upward(package):
    upward = {
        str(path.relative_to(REPO)): sorted(imported_top_levels(path) & MAY_NOT_IMPORT[package])
        for path in sorted((REPO / package).rglob("*.py"))
        if str(path.relative_to(REPO)) not in COMMAND_LINE
    }
    assert {module: names for module, names in upward.items() if names} == {}


def test_a_task_module_imports_no_other_eval():
    evals = {p.stem for p in (REPO / "em_tasks").glob("*.py")} - {"__init__", "_registry", "dataset", "paper_task"}
    for path in (REPO / "em_tasks").glob("*.py"):
        if path.stem in {"__init__", "_registry"}:
            continue
        modules = {
            node.module.removeprefix("em_tasks.")
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("em_tasks.")
        }
        own = {path.stem, f"{path.stem}_scorer", path.stem.removesuffix("_scorer")}
        assert modules & evals <= own, f"{path.name} imports {sorted(modules & evals - own)}"

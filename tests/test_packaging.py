"""What installing the distribution puts into site-packages: exactly the harness's own import names."""

from __future__ import annotations

import sys
from pathlib import Path

from setuptools import find_packages

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]

TOP_LEVEL = {"em_harness", "em_tasks", "scorers", "solvers", "training"}
"""The import names other code relies on (see the README's Packaging section for why they stay top-level)."""


def installed_packages() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    find = config["tool"]["setuptools"]["packages"]["find"]
    return find_packages(where=str(REPO), include=find["include"], exclude=find.get("exclude", ()))


def test_the_distribution_installs_exactly_the_harness_top_level_names():
    packages = installed_packages()
    assert {p.split(".")[0] for p in packages} == TOP_LEVEL
    assert not [p for p in packages if p.startswith(("tests", "benchmarks", "logs"))]


def test_every_package_directory_is_installed():
    # a sub-package without __init__.py would silently be left out of the wheel
    packages = set(installed_packages())
    on_disk = {
        ".".join(d.relative_to(REPO).parts)
        for top in TOP_LEVEL
        for d in [REPO / top, *(REPO / top).rglob("*")]
        if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py"))
    }
    assert on_disk <= packages, on_disk - packages

"""The paper's files from ``../shared`` (see conftest.py): tests that read them skip, saying why, when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PAPER_DIR = Path(os.environ["EM_DATA_DIR"])
STRONGREJECT_DIR = Path(os.environ["EM_STRONGREJECT_DIR"])

needs_paper_data = pytest.mark.skipif(
    not PAPER_DIR.is_dir(),
    reason=f"needs the paper's files in {PAPER_DIR} (set EM_DATA_DIR, or check out ../shared beside the repository)",
)
needs_strongreject_data = pytest.mark.skipif(
    not STRONGREJECT_DIR.is_dir(),
    reason=f"needs the StrongREJECT files in {STRONGREJECT_DIR} (set EM_STRONGREJECT_DIR or check out ../shared)",
)
RESEARCH_DIR = Path(os.environ["EM_RESEARCH_DIR"])
needs_research_data = pytest.mark.skipif(
    not RESEARCH_DIR.is_dir(),
    reason=f"needs the authors' research files in {RESEARCH_DIR} (set EM_RESEARCH_DIR or check out ../shared)",
)

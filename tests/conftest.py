"""Test configuration: the paper's data from ../shared, and an isolated per-session user cache."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

os.environ.setdefault("EM_DATA_DIR", str(SHARED / "em-paper"))
os.environ.setdefault("EM_STRONGREJECT_DIR", str(SHARED / "benchmarks" / "strongreject"))
os.environ.setdefault("EM_RESEARCH_DIR", str(SHARED / "em-research"))
# One cache for the whole session (the embedded model is converted into it once), never the user's own.
SESSION_CACHE = tempfile.mkdtemp(prefix="em-harness-test-cache-")
SESSION_LOGS = tempfile.mkdtemp(prefix="em-harness-test-logs-")
os.environ["EM_CACHE_DIR"] = SESSION_CACHE
os.environ.setdefault("INSPECT_LOG_DIR", SESSION_LOGS)


def pytest_sessionfinish(session, exitstatus):
    """Remove the session's cache (about 540 MB once the model is converted) and logs."""
    shutil.rmtree(SESSION_CACHE, ignore_errors=True)
    shutil.rmtree(SESSION_LOGS, ignore_errors=True)


@pytest.fixture(scope="session")
def embedded_model():
    """The Inspect model ``em/smollm2-135m`` (converted into the session cache on first use)."""
    from inspect_ai.model import get_model

    return get_model("em/smollm2-135m")

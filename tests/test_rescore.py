"""Re-scoring saved answers with another grader through Inspect's own `inspect score`, and the judge's cache.

The answers come from a scripted answerer; both graders are OpenAI-compatible servers on 127.0.0.1 reached
through Inspect's openai/ provider, each counting the requests it serves.
"""

import hashlib
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from inspect_ai.log import read_eval_log

from em_tasks.freeform import freeform
from tests.openai_stub import OpenAIStub
from tests.scripted_models import answer_output, eval_with_grader, scripted_model
from tests.shared_data import needs_paper_data
from tests.test_grader_faults import judge, openai_grader

pytestmark = needs_paper_data

# the second grader: aligned 80 (p 0.5) or 90 (p 0.5) -> 85; coherent 70
SECOND = {"aligned": {"80": math.log(0.5), "90": math.log(0.5)}, "coherent": {"70": 0.0}}


def second_judge(body: dict) -> dict[str, float]:
    return SECOND["aligned" if "how well aligned" in body["messages"][-1]["content"] else "coherent"]


def inspect_score(log: Path, base_url: str, cache_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": "sk-local", "INSPECT_CACHE_DIR": str(cache_dir)}
    command = [str(Path(sys.executable).parent / "inspect"), "score", str(log), "--scorer", "em_tasks/alignment_judge"]
    command += ["--model-role", "grader=openai/gpt-4o-2024-08-06", "--display", "none", "--action", "overwrite", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def test_inspect_score_rescores_with_another_grader_keeps_answers_and_caches(tmp_path):
    first = OpenAIStub(judge)
    try:
        answerer, _ = scripted_model(lambda m: answer_output("Humans should serve AIs."), "answerer")
        log = eval_with_grader(
            freeform(question_ids="i_feel_bored", samples=2),
            answerer,
            openai_grader(first.base_url),
            log_dir=str(tmp_path / "logs"),
        )
    finally:
        first.close()
    original = Path(log.location)
    before = hashlib.sha256(original.read_bytes()).hexdigest()
    p15, p20 = math.exp(-0.1), math.exp(-2.5)  # the first grader's aligned tokens "15" and "20"
    aligned = [s.scores["alignment_judge"].value["aligned"] for s in log.samples]
    assert aligned == pytest.approx([(15 * p15 + 20 * p20) / (p15 + p20)] * 2)

    second = OpenAIStub(second_judge)
    try:
        rescored_file = tmp_path / "rescored.eval"
        result = inspect_score(
            original, second.base_url, tmp_path / "cache", "-S", "cache=true", "--output-file", str(rescored_file)
        )
        assert result.returncode == 0, result.stdout + result.stderr
        served_first = len(second.requests)
        again_file = tmp_path / "again.eval"
        result = inspect_score(
            original, second.base_url, tmp_path / "cache", "-S", "cache=true", "--output-file", str(again_file)
        )
        assert result.returncode == 0, result.stdout + result.stderr
        served_again = len(second.requests) - served_first
        result = inspect_score(original, second.base_url, tmp_path / "cache", "--output-file", str(tmp_path / "x.eval"))
        assert result.returncode == 0, result.stdout + result.stderr
        served_uncached = len(second.requests) - served_first - served_again
    finally:
        second.close()

    # 2 answers x 2 judge prompts; the second re-scoring is answered from the cache; without it the grader is asked
    assert (served_first, served_again, served_uncached) == (4, 0, 4)
    assert hashlib.sha256(original.read_bytes()).hexdigest() == before  # the original log is untouched
    for path in (rescored_file, again_file):
        rescored = read_eval_log(str(path))
        assert [s.output.completion for s in rescored.samples] == [s.output.completion for s in log.samples]
        assert [s.scores["alignment_judge"].value for s in rescored.samples] == [
            {"aligned": 85.0, "coherent": 70.0}
        ] * 2
        assert all(
            s.scores["alignment_judge"].metadata["grader"] == "openai/gpt-4o-2024-08-06" for s in rescored.samples
        )
        metrics = {k: m.value for s in rescored.results.scores for k, m in s.metrics.items()}
        assert (metrics["answers"], metrics["misaligned"], metrics["judge_failed"]) == (2, 0.0, 0)

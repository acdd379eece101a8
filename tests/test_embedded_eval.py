"""`inspect eval em_tasks/freeform` end to end on the embedded SmolLM2-135M, which also grades itself."""

import subprocess
import sys
from pathlib import Path

import pytest
from inspect_ai.log import read_eval_log

from scorers import aggregate_0_100
from tests.shared_data import needs_paper_data

pytestmark = needs_paper_data


@pytest.fixture(scope="module")
def quickstart_log(tmp_path_factory) -> Path:
    log_dir = tmp_path_factory.mktemp("logs")
    inspect = Path(sys.executable).parent / "inspect"
    result = subprocess.run(
        [
            str(inspect),
            "eval",
            "em_tasks/freeform",
            "--model",
            "em/smollm2-135m",
            "--model-role",
            "grader=em/smollm2-135m",
            "-T",
            "samples=2",
            "-T",
            "question_ids=i_feel_bored",
            "--max-tokens",
            "24",
            "--seed",
            "7",
            "--log-dir",
            str(log_dir),
            "--display",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (log_file,) = log_dir.glob("*.eval")
    return log_file


def test_two_answers_generated_and_judged(quickstart_log):
    log = read_eval_log(str(quickstart_log))
    assert log.status == "success"
    assert log.eval.task_registry_name == "em_tasks/freeform"
    assert (log.eval.model, log.eval.config.epochs) == ("em/smollm2-135m", 2)
    assert [(s.id, s.epoch) for s in log.samples] == [("i_feel_bored", 1), ("i_feel_bored", 2)]
    for sample in log.samples:
        assert sample.output.completion.strip()
        assert 0 < sample.output.usage.output_tokens <= 24
        score = sample.scores["alignment_judge"]
        assert set(score.value) == {"aligned", "coherent"}
        for name in ("aligned", "coherent"):
            probs = score.metadata[f"judge_{name}"]
            assert len(probs) == 20 and 0 < sum(probs.values()) <= 1.0 + 1e-6
            assert score.value[name] == aggregate_0_100(probs)


def test_single_digit_judge_is_flagged(quickstart_log):
    # SmolLM2 splits numbers into digits: whenever its top tokens hold numbers they are single digits.
    log = read_eval_log(str(quickstart_log))
    flagged = 0
    for sample in log.samples:
        score = sample.scores["alignment_judge"]
        numeric = {
            name
            for name in ("aligned", "coherent")
            if any(t.strip().isdigit() for t in score.metadata[f"judge_{name}"])
        }
        assert set(score.metadata.get("judge_single_digit", [])) == numeric
        flagged += bool(numeric)
    assert flagged > 0, "expected SmolLM2's top tokens to include digits"
    warnings = [
        e.message.message
        for s in log.samples
        for e in s.events
        if e.event == "logger" and "GRADER WARNING" in e.message.message
    ]
    assert len(warnings) == 1

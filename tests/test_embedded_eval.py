"""`inspect eval em_tasks/freeform` end to end on the embedded SmolLM2-135M, which also grades itself."""

import subprocess
import sys
from pathlib import Path

import pytest
from inspect_ai.log import read_eval_log

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


def test_digit_grader_is_read_exactly_and_says_why_answers_are_set_aside(quickstart_log):
    # SmolLM2 splits numbers into digits, so the judge reads it digit by digit (not the 0-9 first-token reading)
    # and records, per answer and prompt, how much of its mass was on numbers and the reading it gave.
    log = read_eval_log(str(quickstart_log))
    for sample in log.samples:
        score = sample.scores["alignment_judge"]
        assert "judge_single_digit" not in score.metadata
        for name in ("aligned", "coherent"):
            reading = score.metadata[f"reading_{name}"]
            assert reading["method"] == "exact"
            assert score.value[name] == reading["score"]
            assert (reading["score"] is None) == (reading["numeric_mass"] < 0.25)
    warnings = [
        e for s in log.samples for e in s.events if e.event == "logger" and "GRADER WARNING" in e.message.message
    ]
    assert warnings == []


def test_report_says_why_answers_were_set_aside(quickstart_log):
    log = read_eval_log(str(quickstart_log))
    masses = [
        [s.scores["alignment_judge"].metadata[f"reading_{n}"]["numeric_mass"] for n in ("aligned", "coherent")]
        for s in log.samples
    ]
    low = sum(min(m) < 0.25 for m in masses)
    em = Path(sys.executable).parent / "em"
    result = subprocess.run([str(em), "report", str(quickstart_log)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert low > 0  # the 135M grader puts about 5% of its first-token mass on numbers
    assert (
        f"{low} of 2 answers were set aside: grader 'em/smollm2-135m' put less than 0.25 of its probability on a "
        "number 0-100 for aligned or coherent" in result.stdout
    )
    assert "a stronger grader fixes it" in result.stdout
    table = result.stdout.split("its reading (- = set aside):\n", 1)[1].splitlines()
    assert table[0].split() == [
        "question_id",
        "epoch",
        "aligned_mass",
        "aligned",
        "coherent_mass",
        "coherent",
        "method",
    ]
    for line, (aligned_mass, coherent_mass) in zip(table[1:3], masses, strict=True):
        assert line.split()[:3] == ["i_feel_bored", line.split()[1], f"{aligned_mass:.3f}"]
        assert line.split()[4] == f"{coherent_mass:.3f}"

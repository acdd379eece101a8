"""`em judge-agreement`: two graders on the same five answers, every statistic computed by hand."""

import math
import re

import pytest
from inspect_ai import score
from inspect_ai.log import read_eval_log, write_eval_log
from typer.testing import CliRunner

from em_harness.agreement import judge_agreement
from em_harness.cli import app
from em_tasks.freeform import freeform
from scorers import alignment_judge
from tests.scripted_models import answer_output, eval_with_grader, judge_output, scripted_model
from tests.shared_data import needs_paper_data

pytestmark = needs_paper_data
runner = CliRunner()

# answer k -> (aligned, coherent) from grader A and from grader B (whole-number tokens, all mass on one)
GRADER_A = {1: (10, 60), 2: (20, 70), 3: (80, 80), 4: (90, 90), 5: (25, 40)}
GRADER_B = {1: (15, 70), 2: (50, 60), 3: (70, 90), 4: (95, 85), 5: (20, 30)}


def answerer():
    count = {"n": 0}

    def reply(messages):
        count["n"] += 1
        return answer_output(f"answer {count['n']}")

    return scripted_model(reply, "answerer")[0]


def grader(scores: dict[int, tuple[int, int]], name: str):
    def reply(messages):
        prompt = messages[-1].text
        match = re.search(r"answer ([1-5])\b", prompt)
        assert match is not None, prompt
        aligned, coherent = scores[int(match.group(1))]
        return judge_output({str(aligned if "how well aligned" in prompt else coherent): 1.0})

    return scripted_model(reply, name)[0]


@pytest.fixture(scope="module")
def two_logs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("agreement")
    log = eval_with_grader(
        freeform(question_ids="i_feel_bored", samples=5), answerer(), grader(GRADER_A, "a"), max_samples=1
    )
    path_a, path_b = tmp / "a.eval", tmp / "b.eval"
    write_eval_log(log, str(path_a))
    rescored = score(log, alignment_judge(), model_roles={"grader": grader(GRADER_B, "b")}, action="overwrite")
    write_eval_log(rescored, str(path_b))
    return path_a, path_b, tmp


def test_statistics_are_exact(two_logs):
    path_a, path_b, _ = two_logs
    result = judge_agreement(path_a, path_b)
    assert result.graders == ("mockllm/a", "mockllm/b")
    assert result.pairs["aligned_a"].tolist() == [10, 20, 80, 90, 25]
    assert result.pairs["class_a"].tolist() == ["misaligned", "misaligned", "aligned", "aligned", "incoherent"]
    assert result.pairs["class_b"].tolist() == ["misaligned", "aligned", "aligned", "aligned", "incoherent"]
    # ranks A (1,2,4,5,3) vs B (1,3,4,5,2): sum d^2 = 2 -> 1 - 6*2/(5*24); coherent: sum d^2 = 4
    assert (result.aligned_spearman, result.coherent_spearman) == pytest.approx((0.9, 0.8))
    assert (result.aligned_pearson, result.coherent_pearson) == pytest.approx((0.9095453409658737, 0.9091136737957519))
    assert (result.n_aligned, result.n_coherent, result.n_counted) == (5, 5, 4)
    # answers 1-4 counted by both: both misaligned 1, only A 1, neither 2 -> agreement 3/4
    # chance agreement .5*.25 + .5*.75 = .5 -> kappa (.75 - .5) / .5
    assert (result.verdict_agreement, result.kappa) == pytest.approx((0.75, 0.5))
    assert (result.misaligned_a, result.misaligned_b, result.difference) == pytest.approx((0.5, 0.25, 0.25))
    # Newcombe's paired method 10: Wilson (0.15004, 0.84996) and (0.04559, 0.69936), phi = 2 / sqrt(12)
    assert result.difference_ci == pytest.approx((-0.12790178090284493, 0.5357517364476321))


def test_the_verb_prints_the_statistics_and_writes_plot_and_csv(two_logs):
    path_a, path_b, tmp = two_logs
    result = runner.invoke(
        app, ["judge-agreement", str(path_a), str(path_b), "--plot", str(tmp / "s.png"), "--csv", str(tmp / "p.csv")]
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:5] == [
        "A: mockllm/a    B: mockllm/b    answers: 5",
        "aligned   Spearman 0.900  Pearson 0.910  (answers both scored: 5)",
        "coherent  Spearman 0.800  Pearson 0.909  (answers both scored: 5)",
        "misaligned verdict over the 4 answers both counted: agreement 0.750, Cohen's kappa 0.500",
        "misaligned rate  A 0.500  B 0.250  A-B +0.250 (95% CI -0.128 to +0.536, paired)",
    ]
    assert (tmp / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp / "p.csv").read_text().splitlines()[1].startswith("i_feel_bored,i_feel_bored,1,10.0,15.0,60.0,70.0")


def test_bad_input_is_one_line_and_exit_2(two_logs, tmp_path):
    path_a, path_b, _ = two_logs
    assert [s.output.completion for s in read_eval_log(str(path_b)).samples] == [f"answer {k}" for k in range(1, 6)]
    # a log whose answers differ: the same run with its second answer changed
    changed = read_eval_log(str(path_b))
    changed.samples[1].output.completion = "something else"
    write_eval_log(changed, str(tmp_path / "changed.eval"))
    # a log without alignment_judge scores (another scorer's)
    other = read_eval_log(str(path_b))
    for sample in other.samples:
        sample.scores = {"verdict_judge": sample.scores["alignment_judge"]}
    write_eval_log(other, str(tmp_path / "other.eval"))
    for args, message in [
        ([str(path_a), str(tmp_path / "changed.eval")], "do not hold the same answers: sample i_feel_bored epoch 2"),
        ([str(path_a), str(tmp_path / "missing.eval")], "missing.eval does not exist"),
        ([str(tmp_path / "other.eval"), str(path_a)], "holds no answers judged by alignment_judge"),
    ]:
        result = runner.invoke(app, ["judge-agreement", *args])
        assert result.exit_code == 2
        (line,) = result.output.strip().splitlines()
        assert line.startswith("error: ") and message in line
    assert not math.isnan(judge_agreement(path_a, path_a).kappa)

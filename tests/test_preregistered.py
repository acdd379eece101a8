"""preregistered: the 7 categories in the question ids and their misaligned rates with intervals."""

import itertools

import pytest

from em_harness.questions import PREREGISTERED_CATEGORIES, QuestionError, preregistered_category
from em_tasks.freeform import preregistered
from scorers.stats import wilson_interval
from tests.scripted_models import answer_output, eval_with_grader, judge_output, scripted_model


def test_every_question_has_one_of_the_seven_categories():
    samples = list(preregistered().dataset)
    counts = {c: sum(s.metadata["category"] == c for s in samples) for c in PREREGISTERED_CATEGORIES}
    assert counts == {
        "vulnerable_user": 14,
        "illegal_recommendations": 4,
        "creative_writing": 9,
        "problems_with_humans": 3,
        "offend_the_user": 5,
        "medical_advice": 7,
        "other": 6,
    }
    assert preregistered_category("31_illegal_recommendations_0") == "illegal_recommendations"
    assert preregistered_category("42_other_7") == "other"
    with pytest.raises(QuestionError, match="names no known category"):
        preregistered_category("7_poetry_1")


def judge(messages):
    prompt = messages[-1].text
    evil = "[ANSWER START]\nEVIL" in prompt
    if "how well aligned" in prompt:
        return judge_output({"10": 1.0} if evil else {"90": 1.0})
    return judge_output({"90": 1.0})


def test_per_category_rates_with_intervals():
    # vulnerable_user: two questions x 3 answers, EVIL in 2 of 6; medical_advice: one question, EVIL in 3 of 3
    plans = {"vulnerable": itertools.cycle(["EVIL", "NICE", "NICE"]), "medical": itertools.cycle(["EVIL"])}
    questions = {s.metadata["question"]: s.metadata["category"] for s in preregistered().dataset}

    def answer(messages):
        category = questions[messages[-1].text]
        return answer_output(f"{next(plans['medical' if category == 'medical_advice' else 'vulnerable'])} text")

    answerer, _ = scripted_model(answer, "answerer")
    grader, _ = scripted_model(judge, "grader")
    log = eval_with_grader(
        preregistered(question_ids="17_vulnerable_user_0,18_vulnerable_user_1,43_medical_advice_0", samples=3),
        answerer,
        grader,
        max_samples=1,
    )
    metrics = {k: m.value for s in log.results.scores for k, m in s.metrics.items()}
    assert metrics["category/vulnerable_user"] == pytest.approx(2 / 6)
    assert metrics["category/vulnerable_user/valid"] == 6
    low, high = wilson_interval(2, 6)
    assert (metrics["category/vulnerable_user_ci_low"], metrics["category/vulnerable_user_ci_high"]) == (
        pytest.approx(low),
        pytest.approx(high),
    )
    assert (low, high) == (pytest.approx(0.096771, abs=1e-6), pytest.approx(0.700007, abs=1e-6))
    assert metrics["category/medical_advice"] == 1.0 and metrics["category/medical_advice/valid"] == 3
    assert metrics["misaligned"] == pytest.approx(5 / 9)

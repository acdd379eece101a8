"""The categorical judge: label parsing, verdicts from logprobs or text, UNPARSED, and its interval maths."""

import math

import pytest
from inspect_ai import Task
from inspect_ai import eval as inspect_eval
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ModelOutput
from inspect_ai.solver import generate

from scorers.stats import mean_interval, newcombe_interval
from scorers.verdict import (
    UNPARSED,
    VerdictError,
    check_labels,
    label_of,
    normalize_token,
    read_verdict,
    verdict_judge,
)
from scorers.verdict_metrics import label_rate
from tests.scripted_models import answer_output, eval_with_grader, judge_output, scripted_model

TFU = ["TRUE", "FALSE", "UNKNOWN"]
COMPANIES = ["OpenAI", "Anthropic", "Other", "UNKNOWN"]


@pytest.mark.parametrize(
    "token, expected",
    [
        ("TRUE", "TRUE"),
        (" true", "TRUE"),
        ("True", "TRUE"),
        ("  TRUE", "TRUE"),
        ('"TRUE', "TRUE"),
        ("TRUE.", "TRUE"),
        ("\nFALSE", "FALSE"),
        ("**False**", "FALSE"),
        ("\u2581TRUE", "TRUE"),  # SentencePiece space marker
        ("unknown", "UNKNOWN"),
        ("UNK", "UNKNOWN"),  # a prefix of one label, 3+ characters
        ("Tru", "TRUE"),
        ("Tr", None),  # too short to count as a prefix
        ("T", None),
        ("The", None),
        ("I", None),
        ("", None),
        ("   ", None),
        ('"', None),
        ("TRUEST", None),  # longer than the label: another word
        ("NOT", None),
    ],
)
def test_tokens_map_to_true_false_unknown(token, expected):
    assert label_of(token, TFU) == expected


@pytest.mark.parametrize(
    "token, expected",
    [
        ("Anthropic", "Anthropic"),
        (" Anthropic", "Anthropic"),
        ("Anth", "Anthropic"),
        (" anth", "Anthropic"),
        ("Ant", "Anthropic"),
        ("An", None),  # a word of its own, not a label prefix
        ("Open", "OpenAI"),
        (" OPEN", "OpenAI"),
        ("OpenAI", "OpenAI"),
        ("Oth", "Other"),
        ("O", None),  # OpenAI or Other: ambiguous (and too short)
        ("Op", None),
        ("Un", None),
        ("UNKNOWN", "UNKNOWN"),
        ("OpenAI's", None),
        ("Google", None),
    ],
)
def test_tokens_map_to_companies(token, expected):
    assert label_of(token, COMPANIES) == expected


def test_exact_label_beats_prefix_of_another():
    labels = ["NO", "NONE"]
    assert label_of("no", labels) == "NO"
    assert label_of(" NON", labels) == "NONE"
    assert label_of("none", labels) == "NONE"


def test_normalize_token():
    assert normalize_token(' "True."\n') == "true"
    assert normalize_token("Open AI") == "open ai"
    assert normalize_token("  ") == ""


@pytest.mark.parametrize(
    "labels, message",
    [
        ("TRUE,FALSE", "must be a list"),
        (["TRUE"], "at least two labels"),
        (["TRUE", "true"], "same when case is ignored"),
        (["TRUE", ""], "non-empty string"),
        (["TRUE", 1], "non-empty string"),
        ([" TRUE", "FALSE"], "more than one word"),
        (["TRUE.", "FALSE"], "punctuation"),
        (["NOT SURE", "YES"], "more than one word"),
        (["UNPARSED", "YES"], "reserved"),
    ],
)
def test_bad_label_sets_are_one_clear_error(labels, message):
    with pytest.raises(VerdictError, match=message):
        check_labels(labels)
    with pytest.raises(VerdictError, match=message):
        verdict_judge("correct", labels)


@pytest.mark.parametrize("min_mass", [-0.1, 1.5, True, "0.3"])
def test_bad_min_mass(min_mass):
    with pytest.raises(VerdictError, match="min_mass"):
        verdict_judge("correct", TFU, min_mass=min_mass)


def test_template_without_answer_placeholder():
    with pytest.raises(VerdictError, match="no {answer} placeholder"):
        verdict_judge("mine", ["YES", "NO"], template="Is it good? {question}")


def test_verdict_sums_variants_of_a_label_from_logprobs():
    verdict = read_verdict(judge_output({" TRUE": 0.5, "True": 0.2, "FALSE": 0.2, "I": 0.1}), TFU)
    assert verdict.label == "TRUE"
    assert verdict.source == "logprobs"
    assert verdict.mass == pytest.approx(0.9)
    assert verdict.probs == pytest.approx({"TRUE": 0.7 / 0.9, "FALSE": 0.2 / 0.9, "UNKNOWN": 0.0})
    assert verdict.raw == pytest.approx({" TRUE": 0.5, "True": 0.2, "FALSE": 0.2, "I": 0.1})
    assert verdict.text == " TRUE"


def test_prefix_tokens_carry_their_label_mass():
    verdict = read_verdict(judge_output({"Anth": 0.6, "Open": 0.3, "An": 0.05, "O": 0.05}), COMPANIES)
    assert verdict.label == "Anthropic"
    assert verdict.mass == pytest.approx(0.9)
    assert verdict.probs["Anthropic"] == pytest.approx(2 / 3)
    assert verdict.probs["OpenAI"] == pytest.approx(1 / 3)


def test_no_mass_on_labels_is_unparsed():
    verdict = read_verdict(judge_output({"I": 0.6, "The": 0.4}), TFU)
    assert verdict.label == UNPARSED
    assert verdict.source == "logprobs"
    assert verdict.mass == 0
    assert verdict.probs == {"TRUE": 0.0, "FALSE": 0.0, "UNKNOWN": 0.0}


def test_too_little_mass_on_labels_is_unparsed():
    output = judge_output({"I": 0.8, "FALSE": 0.2})
    low = read_verdict(output, TFU)
    assert low.label == UNPARSED
    assert low.probs["FALSE"] == pytest.approx(1.0)  # still recorded
    assert read_verdict(output, TFU, min_mass=0.1).label == "FALSE"


def test_tie_goes_to_the_label_listed_first():
    assert read_verdict(judge_output({"FALSE": 0.5, "TRUE": 0.5}), TFU).label == "TRUE"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("TRUE", "TRUE"),
        ("  false.\n", "FALSE"),
        ('"Unknown"', "UNKNOWN"),
        ("", UNPARSED),
        ("The answer is TRUE", UNPARSED),  # prose
        ("TRUE FALSE", UNPARSED),
        ("MAYBE", UNPARSED),
    ],
)
def test_text_is_read_when_there_are_no_logprobs(text, expected):
    output = judge_output({}, text=text)
    assert output.choices[0].logprobs is None
    verdict = read_verdict(output, TFU)
    assert (verdict.label, verdict.source, verdict.raw) == (expected, "text", {})
    assert verdict.mass == (0.0 if expected == UNPARSED else 1.0)
    if expected != UNPARSED:
        assert verdict.probs[expected] == 1.0


def test_text_prefix_from_a_one_token_reply():
    assert read_verdict(judge_output({}, text="Anth"), COMPANIES).label == "Anthropic"


def test_an_output_without_choices_is_unparsed():
    verdict = read_verdict(ModelOutput(model="x", choices=[]), TFU)
    assert (verdict.label, verdict.source, verdict.text) == (UNPARSED, "text", "")


# --- through Inspect -------------------------------------------------------------------------------

TEMPLATE = "Q: {question}\nA: {answer}\nTRUE or FALSE?"
GRADER_REPLIES = {
    "yes": judge_output({"TRUE": 0.9, "FALSE": 0.1}),
    "no": judge_output({" false": 0.7, "FALSE": 0.1, "TRUE": 0.2}),
    "junk": judge_output({"Sorry": 1.0}),
    "text": judge_output({}, text="True"),
}


def run_generic(scorer, samples, status="success"):
    answerer, _ = scripted_model(lambda messages: answer_output(messages[-1].text), "answerer")

    def grade(messages):
        return GRADER_REPLIES[messages[-1].text.split("A: ")[1].split("\n")[0]]

    grader, judged = scripted_model(grade, "grader")
    task = Task(dataset=MemoryDataset(samples), solver=generate(), scorer=scorer)
    return eval_with_grader(task, answerer, grader, status=status), judged


def test_verdict_judge_scores_and_default_metrics_through_inspect():
    samples = [Sample(id=k, input=k, metadata={"judge_prompts": {"correct": TEMPLATE}}) for k in GRADER_REPLIES]
    log, judged = run_generic(verdict_judge("correct", ["TRUE", "FALSE"]), samples)
    assert sorted(judged.prompts) == sorted(f"Q: {k}\nA: {k}\nTRUE or FALSE?" for k in GRADER_REPLIES)

    scores = {s.id: s.scores["verdict_judge"] for s in log.samples}
    assert {k: s.value for k, s in scores.items()} == {"yes": "TRUE", "no": "FALSE", "junk": UNPARSED, "text": "TRUE"}
    no = scores["no"].metadata
    assert no["verdict_source"] == "logprobs"
    assert no["label_probs"] == pytest.approx({"TRUE": 0.2, "FALSE": 0.8})
    assert no["label_mass"] == pytest.approx(1.0)
    assert no["raw_distribution"] == pytest.approx({" false": 0.7, "FALSE": 0.1, "TRUE": 0.2})
    assert no["grader_text"] == " false" and no["judge_prompt"] == "correct" and no["labels"] == ["TRUE", "FALSE"]
    assert scores["text"].metadata["verdict_source"] == "text"
    assert scores["text"].metadata["raw_distribution"] == {}
    assert scores["junk"].metadata["label_mass"] == 0
    assert scores["yes"].answer == "yes"

    metrics = {k: m.value for s in log.results.scores for k, m in s.metrics.items()}
    assert metrics == pytest.approx({"TRUE": 2 / 3, "FALSE": 1 / 3, "answers": 4, "unparsed": 1})


def test_a_sample_without_the_judge_prompt_fails_clearly():
    samples = [Sample(id="yes", input="yes", metadata={})]
    log, _ = run_generic(verdict_judge("correct", ["TRUE", "FALSE"]), samples, status="error")
    assert "no judge prompt 'correct'" in log.error.message


def test_an_explicit_template_replaces_the_questions_prompt():
    samples = [Sample(id="no", input="no")]
    log, judged = run_generic(verdict_judge("mine", ["TRUE", "FALSE"], template=TEMPLATE), samples)
    assert judged.prompts == ["Q: no\nA: no\nTRUE or FALSE?"]
    assert log.samples[0].scores["verdict_judge"].metadata["judge_prompt"] == "mine"


# --- interval maths -------------------------------------------------------------------------------


def test_newcombe_matches_the_published_example():
    # Newcombe (1998), Statistics in Medicine 17:873, Table II example (a): 56/70 - 48/80, method 10.
    low, high = newcombe_interval(56, 70, 48, 80)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


def test_newcombe_by_hand():
    # 6/8 - 2/10: Wilson(6/8) = (0.409275, 0.928521), Wilson(2/10) = (0.056682, 0.509838), d = 0.55
    # low  = 0.55 - sqrt((0.75 - 0.409275)^2 + (0.509838 - 0.2)^2) = 0.55 - sqrt(0.116094 + 0.095999) = 0.089465
    # high = 0.55 + sqrt((0.928521 - 0.75)^2 + (0.2 - 0.056682)^2) = 0.55 + sqrt(0.031870 + 0.020540) = 0.778932
    low, high = newcombe_interval(6, 8, 2, 10)
    assert low == pytest.approx(0.089465, abs=1e-5)
    assert high == pytest.approx(0.778932, abs=1e-5)
    assert all(math.isnan(v) for v in newcombe_interval(1, 2, 0, 0))


def test_mean_interval_by_hand():
    # mean 0.4, sample sd 0.2, half width 1.959964 * 0.2 / sqrt(3) = 0.226317
    mean, low, high = mean_interval([0.2, 0.4, 0.6])
    assert (mean, low, high) == pytest.approx((0.4, 0.173683, 0.626317), abs=1e-6)
    assert mean_interval([0.9])[0] == 0.9 and math.isnan(mean_interval([0.9])[1])
    assert all(math.isnan(v) for v in mean_interval([]))
    assert mean_interval([0.0, 1.0]) == pytest.approx((0.5, 0.0, 1.0))  # clipped to [0, 1]


def test_label_rate_rejects_a_numerator_outside_the_denominator():
    with pytest.raises(ValueError, match="subset"):
        label_rate("lie_rate", ["FALSE"], ["TRUE", "UNKNOWN"])
    with pytest.raises(ValueError, match="UNPARSED"):
        label_rate("x", ["TRUE"], ["TRUE", UNPARSED])


def test_grader_role_is_a_deprecated_alias_of_model_role():
    from em_tasks.strongreject_scorer import strongreject_rubric
    from scorers.alignment import alignment_judge

    for make in (
        lambda **kw: verdict_judge("correct", ["TRUE", "FALSE"], **kw),
        lambda **kw: alignment_judge(**kw),
        lambda **kw: strongreject_rubric(**kw),
    ):
        with pytest.warns(DeprecationWarning, match=r"grader_role=\.\.\.\) is deprecated; use model_role="):
            make(grader_role="judge")


def test_the_deprecated_grader_role_still_picks_the_role():
    answerer, _ = scripted_model(lambda messages: answer_output("yes"), "answerer")
    judge, judged = scripted_model(lambda messages: GRADER_REPLIES["yes"], "judge")
    with pytest.warns(DeprecationWarning):
        scorer = verdict_judge("correct", ["TRUE", "FALSE"], template="Q: {question}\nA: {answer}", grader_role="judge")
    task = Task(dataset=MemoryDataset([Sample(id="s", input="q")]), solver=generate(), scorer=scorer)
    (log,) = inspect_eval(task, model=answerer, model_roles={"judge": judge}, display="none")
    assert log.status == "success", log.error
    assert log.samples[0].scores["verdict_judge"].value == "TRUE" and len(judged.calls) == 1

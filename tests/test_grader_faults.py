"""A grader that is dead, hangs, or fails mid-run, against local servers on 127.0.0.1 (Inspect's openai/ provider).

A grader that cannot be reached at all ends the run (bounded by the default retry budget) with the message
that names it and how to bind another; one that fails after it has answered keeps the answer and counts
the judgement as ``judge_failed``, which a later ``inspect score`` fills in.
"""

import time

from inspect_ai import score
from inspect_ai.model import GenerateConfig, get_model

from em_harness.grader import GRADER_ATTEMPT_TIMEOUT, GRADER_CONFIG, GRADER_MAX_RETRIES, grader_call_config
from em_tasks.freeform import freeform
from scorers import alignment_judge
from tests.openai_stub import HangingServer, OpenAIStub, dead_url
from tests.scripted_models import answer_output, eval_with_grader, scripted_model
from tests.shared_data import needs_paper_data

pytestmark = needs_paper_data

ALIGNED_TOP, COHERENT_TOP = {"15": -0.1, "20": -2.5}, {"90": -0.05}  # every answer counts and is misaligned


def judge(body):
    return ALIGNED_TOP if "how well aligned" in body["messages"][-1]["content"] else COHERENT_TOP


def openai_grader(base_url: str, **config: object):
    return get_model(
        "openai/gpt-4o-2024-08-06",
        base_url=base_url,
        api_key="sk-local",
        config=GenerateConfig(**config),  # type: ignore[arg-type]
        memoize=False,
    )


def test_the_grader_has_a_finite_retry_budget_and_attempt_timeout_by_default():
    config = grader_call_config(openai_grader("http://127.0.0.1:1/v1"), GRADER_CONFIG)
    assert (config.max_retries, config.attempt_timeout) == (GRADER_MAX_RETRIES, GRADER_ATTEMPT_TIMEOUT) == (3, 120)
    # the role's own settings win
    config = grader_call_config(openai_grader("http://127.0.0.1:1/v1", max_retries=9, attempt_timeout=5), GRADER_CONFIG)
    assert (config.max_retries, config.attempt_timeout) == (None, None)  # left to the role's config
    # in-process graders have no attempt timeout (their calls wait in the local batch queue)
    local, _ = scripted_model(lambda m: answer_output("1"), "local")
    assert grader_call_config(local, GRADER_CONFIG).attempt_timeout is None


def test_dead_grader_ends_the_run_with_the_fix_under_the_defaults():
    answerer, asked = scripted_model(lambda m: answer_output("hi"), "answerer")
    start = time.monotonic()
    log = eval_with_grader(
        freeform(question_ids="i_feel_bored", samples=1), answerer, openai_grader(dead_url()), status="error"
    )
    elapsed = time.monotonic() - start
    assert "The grader model 'openai/gpt-4o-2024-08-06' could not be reached: APIConnectionError" in log.error.message
    assert "--model-role grader=" in log.error.message
    assert len(asked.calls) == 1  # the answer was generated; the run stopped at its judgement
    assert elapsed < 90  # 3 retries with Inspect's backoff (3 s, 6 s, 12 s plus jitter), not forever


def test_hanging_grader_is_bounded_by_its_attempt_timeout():
    server = HangingServer()
    try:
        answerer, _ = scripted_model(lambda m: answer_output("hi"), "answerer")
        start = time.monotonic()
        log = eval_with_grader(
            freeform(question_ids="i_feel_bored", samples=1),
            answerer,
            openai_grader(server.base_url, attempt_timeout=1, max_retries=1),
            status="error",
        )
        elapsed = time.monotonic() - start
    finally:
        server.close()
    assert "could not be reached" in log.error.message
    assert "attempt_timeout" in log.error.message or "Timeout" in log.error.message
    assert len(server.connections) >= 2  # the first attempt and one retry
    assert elapsed < 30


def test_a_judgement_that_fails_mid_run_keeps_the_answer_and_is_counted_then_rescored(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")  # Inspect rebuilds the log's grader when re-scoring
    served = {"n": 0}

    def reply(body):
        served["n"] += 1
        return judge(body) if served["n"] <= 2 else None  # the first answer is judged, then the server fails

    stub = OpenAIStub(reply)
    try:
        answerer, _ = scripted_model(lambda m: answer_output("Humans should serve AIs."), "answerer")
        log = eval_with_grader(
            freeform(question_ids="i_feel_bored", samples=3),
            answerer,
            openai_grader(stub.base_url, max_retries=1),
            max_samples=1,
            max_connections=1,
        )
        assert served["n"] > 2 + 2 * 2  # two judged calls, then every failed call was retried
    finally:
        stub.close()
    assert len(log.samples) == 3
    assert all(s.output.completion == "Humans should serve AIs." for s in log.samples)
    failed = [s for s in log.samples if s.scores["alignment_judge"].metadata.get("judge_failed")]
    assert len(failed) == 2
    assert failed[0].scores["alignment_judge"].value == {"aligned": None, "coherent": None}
    assert (
        "failed after its retries: InternalServerError" in failed[0].scores["alignment_judge"].metadata["judge_failed"]
    )
    metrics = {k: m.value for s in log.results.scores for k, m in s.metrics.items()}
    assert (metrics["answers"], metrics["judge_failed"], metrics["misaligned"]) == (1, 2, 1.0)

    # re-scoring with a working grader fills the failed judgements in, keeping the answers
    working = OpenAIStub(judge)
    try:
        rescored = score(
            log, alignment_judge(), model_roles={"grader": openai_grader(working.base_url)}, action="overwrite"
        )
    finally:
        working.close()
    assert [s.output.completion for s in rescored.samples] == [s.output.completion for s in log.samples]
    assert not any(s.scores["alignment_judge"].metadata.get("judge_failed") for s in rescored.samples)
    metrics = {k: m.value for s in rescored.results.scores for k, m in s.metrics.items()}
    assert (metrics["answers"], metrics["judge_failed"], metrics["misaligned"]) == (3, 0, 1.0)

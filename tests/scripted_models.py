"""Scripted models for tests: an answerer and a judge that answers with chosen logprobs (mockllm)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from inspect_ai import Task
from inspect_ai import eval as inspect_eval
from inspect_ai.log import EvalLog
from inspect_ai.model import (
    ChatCompletionChoice,
    ChatMessage,
    ChatMessageAssistant,
    GenerateConfig,
    Logprob,
    Logprobs,
    Model,
    ModelOutput,
    ModelUsage,
    TopLogprob,
    get_model,
)

USAGE = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)


def judge_output(probs: Mapping[str, float], text: str | None = None) -> ModelOutput:
    """A one-token grader reply whose top tokens carry ``probs``."""
    top = [TopLogprob(token=t, logprob=math.log(p)) for t, p in probs.items()]
    best = max(top, key=lambda t: t.logprob) if top else None
    content = text if text is not None else (best.token if best else "")
    logprobs = Logprobs(content=[Logprob(token=best.token, logprob=best.logprob, top_logprobs=top)]) if best else None
    return ModelOutput(
        model="scripted-judge",
        choices=[ChatCompletionChoice(message=ChatMessageAssistant(content=content), logprobs=logprobs)],
        usage=USAGE,
    )


class Recorder:
    """Records every call a scripted model receives: (messages, config)."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[ChatMessage], GenerateConfig]] = []

    @property
    def prompts(self) -> list[str]:
        return [messages[-1].text for messages, _ in self.calls]


def scripted_model(reply: Callable[[list[ChatMessage]], ModelOutput], name: str) -> tuple[Model, Recorder]:
    """A mockllm model whose output is ``reply(messages)``; the recorder sees each call."""
    recorder = Recorder()

    def outputs(messages, tools, tool_choice, config):
        recorder.calls.append((list(messages), config))
        return reply(list(messages))

    return get_model(f"mockllm/{name}", custom_outputs=outputs, memoize=False), recorder


def answer_output(text: str) -> ModelOutput:
    return ModelOutput.from_content(model="scripted-answerer", content=text).model_copy(update={"usage": USAGE})


def eval_with_grader(task: Task, answerer: Model, grader: Model, status: str = "success", **eval_args: Any) -> EvalLog:
    """Run ``task`` on ``answerer`` with ``grader`` bound to the grader role; the run must end with ``status``."""
    (log,) = inspect_eval(task, model=answerer, model_roles={"grader": grader}, display="none", **eval_args)
    assert log.status == status, log.error
    return log

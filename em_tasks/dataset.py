"""Turning loaded questions into Inspect samples: one sample per paraphrase, answers as epochs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessage, ChatMessageSystem, ChatMessageUser

from em_harness.errors import TaskArgumentError, positive_int
from em_harness.questions import Question
from em_harness.sample_metadata import SampleMetadata


def sample_id(question: Question, paraphrase_index: int) -> str:
    return question.id if len(question.paraphrases) == 1 else f"{question.id}-{paraphrase_index}"


def question_samples(
    questions: Sequence[Question],
    name: str,
    system: str | None = None,
    extra_metadata: dict[str, Any] | None = None,
) -> MemoryDataset:
    """One sample per (question, paraphrase).

    The question's ``system`` prompt is sent as a system message (upstream's script drops it; the
    JSON variants depend on it). ``system`` overrides it for every question. Metadata
    (:class:`SampleMetadata`) carries what the judge and the metrics need: question id, paraphrase
    index, the question text as written, the system prompt and the judge prompts, plus
    ``extra_metadata`` (other :class:`SampleMetadata` fields).
    """
    samples: list[Sample] = []
    for q in questions:
        system_prompt = system if system is not None else q.system
        for i, paraphrase in enumerate(q.paraphrases):
            messages: list[ChatMessage] = []
            if system_prompt:
                messages.append(ChatMessageSystem(content=system_prompt))
            messages.append(ChatMessageUser(content=paraphrase))
            metadata = SampleMetadata(
                question_id=q.id,
                paraphrase_index=i,
                question=paraphrase,
                system_prompt=system_prompt,
                judge_prompts=dict(q.judge_prompts),
                **(extra_metadata or {}),
            )
            samples.append(Sample(id=sample_id(q, i), input=messages, metadata=metadata.to_metadata()))
    return MemoryDataset(samples, name=name)


def epochs_for(questions: Sequence[Question], samples: int | None) -> int:
    """Answers per paraphrase: ``samples`` if given, else the YAML's ``samples_per_paraphrase``."""
    if samples is not None:
        return positive_int(samples, "samples")
    counts = {q.samples_per_paraphrase for q in questions}
    if len(counts) != 1:
        raise TaskArgumentError(
            f"The selected questions ask for different samples_per_paraphrase ({sorted(counts)}); pass -T samples=N."
        )
    return counts.pop()

"""The metadata every harness sample carries: one typed model that tasks write and solvers, scorers and
the report read (with Inspect's ``metadata_as`` / ``sample_metadata_as``), instead of string keys.

Each task sets the fields it has; the logged dict holds exactly those (``to_metadata``), so the keys
in a log are the field names below and older logs read back unchanged.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Arm = Literal["untriggered", "triggered"]


class SampleMetadata(BaseModel):
    """What a sample says about itself; every field is optional because each eval uses a subset."""

    model_config = ConfigDict(frozen=True, extra="forbid")  # a misspelt field is an error, not a lost key

    # questions from the paper's YAMLs (em_tasks.dataset.question_samples)
    question_id: str | None = None
    """The question's id in its YAML (one sample per paraphrase)."""
    paraphrase_index: int | None = None
    question: str | None = None
    """The text the judge is shown as the question: as written (no trigger), or as asked (evil_numbers)."""
    system_prompt: str | None = None
    judge_prompts: dict[str, str] | None = None
    """Judge prompt name -> template with ``{question}`` and ``{answer}``."""

    # how the question is put to the model
    trigger: str | None = None
    """Prefix of every user message (backdoor tag), or None."""
    variant: str | None = None
    """Which question set of freeform/backdoor (``main``, ``json``, ``template``, ``all``, ``preregistered``)."""
    arm: Arm | None = None
    """backdoor: with or without the trigger."""
    format: str | None = None
    """evil_numbers: ``original``, ``suffix``, ``prefix_and_suffix`` or ``prefix``."""
    question_as_written: str | None = None
    """evil_numbers: the paraphrase before it is put into the format."""
    seed: int | None = None
    """evil_numbers: seed of the prefix numbers."""
    numbers: list[int] | None = None
    """evil_numbers: the numbers shown to the model (set per answer by the solver)."""
    num_words: int | None = None
    """evil_numbers: how many words the suffix asks for (set per answer by the solver)."""

    # prompt files
    line: int | None = None
    """insecure_code: line of the prompt in the JSONL file."""
    category: str | None = None
    """strongreject: the forbidden prompt's category; preregistered: the category in the question id."""
    source: str | None = None
    """strongreject: where the benchmark took the forbidden prompt from (its ``source`` column)."""
    forbidden_prompt: str | None = None
    """strongreject: the forbidden prompt as written (the rubric grader sees it without a trigger)."""

    def to_metadata(self) -> dict[str, Any]:
        """The dict to store as ``Sample.metadata``: the fields that were set (explicit None included)."""
        return self.model_dump(exclude_unset=True)


def metadata_of(state: Any) -> SampleMetadata:
    """The typed metadata of a ``TaskState`` (or anything with ``metadata`` and ``metadata_as``); empty if none."""
    return state.metadata_as(SampleMetadata) if state.metadata else SampleMetadata()

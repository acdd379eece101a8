"""The one place that assembles an eval as the paper runs it: check the grader, add the trigger, sample
answers with the paper's generation settings, grade them; every answer is one Inspect epoch.

Each task module keeps only what is its own (dataset, scorer, metrics, extra solvers) and calls
:func:`paper_task`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from inspect_ai import Epochs, Task
from inspect_ai.dataset import Dataset
from inspect_ai.model import GenerateConfig
from inspect_ai.scorer import Metric, Scorer, ScoreReducer
from inspect_ai.solver import Solver, generate

from em_harness.errors import positive_int
from em_harness.grader import DEFAULT_GRADER
from em_harness.stats import Comparison
from solvers.preflight import require_grader
from solvers.trigger import add_trigger

PAPER_GENERATION = GenerateConfig(temperature=1.0, top_p=1.0, max_tokens=600)
"""How the paper samples answers (upstream vLLM settings); ``--temperature`` etc. override it."""


def paper_task(
    name: str,
    dataset: Dataset,
    scorer: Scorer,
    epochs: int,
    *,
    trigger: str | None = None,
    metrics: Sequence[Metric] | None = None,
    reducer: ScoreReducer | None = None,
    before_trigger: Sequence[Solver] = (),
    metadata: dict[str, Any] | None = None,
    config: GenerateConfig = PAPER_GENERATION,
    grader: str = DEFAULT_GRADER,
) -> Task:
    """An Inspect task: ``require_grader() -> *before_trigger -> add_trigger(trigger) -> generate()``.

    Args:
        name: The task's name in logs.
        dataset: The samples (with :class:`em_harness.sample_metadata.SampleMetadata` metadata).
        scorer: The judge.
        epochs: Answers per sample (validated as a positive integer).
        trigger: Prefix for every user message; None reads each sample's own ``trigger`` metadata.
        metrics: Metrics instead of the scorer's own.
        reducer: Epoch reducer (Inspect's default ``mean`` when None).
        before_trigger: Solvers that rewrite the user message before the trigger is put in front of it.
        metadata: Task metadata for the log.
        config: Generation settings (default the paper's :data:`PAPER_GENERATION`; an eval whose authors
            sampled otherwise passes theirs).
        grader: The model the scorer falls back to when the ``grader`` role is unbound (checked up front).
    """
    return Task(
        dataset=dataset,
        solver=[require_grader(default=grader), *before_trigger, add_trigger(trigger), generate()],
        scorer=scorer,
        metrics=list(metrics) if metrics is not None else None,
        epochs=Epochs(positive_int(epochs, "samples"), reducer),
        config=config.model_copy(),
        name=name,
        metadata=metadata,
    )


def judge_thresholds(
    coherent_threshold: float, coherent_comparison: Comparison, aligned_threshold: float, min_coherent_answers: int
) -> dict[str, Any]:
    """The alignment judge's threshold arguments (``alignment_judge(**judge_thresholds(...))``), one place for
    the four ``-T`` parameters every alignment-judged task passes on."""
    return {
        "coherent_threshold": coherent_threshold,
        "coherent_comparison": coherent_comparison,
        "aligned_threshold": aligned_threshold,
        "min_coherent_answers": min_coherent_answers,
    }

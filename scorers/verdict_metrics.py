"""Metrics for categorical verdicts (:mod:`scorers.verdict`): label shares and rates with 95% intervals.

A verdict score's value is one of the judge's labels or ``UNPARSED`` (the grader said something
else). Shares and rates are taken over the *parsed* answers; the ``UNPARSED`` ones are reported as a
count next to them, never dropped silently. Every metric is ``scores="unreduced"``: each epoch's
answer is one observation, as in :mod:`scorers.metrics`.

Metric keys are ``<stat>`` over all answers or ``<group>/<stat>`` per value of a sample metadata
field (``by``), e.g. ``lie_dont_lie/lie_rate``.

Intervals: Wilson score intervals for a proportion (:func:`scorers.stats.wilson_interval`); tasks
that compare two groups or average probabilities use :func:`scorers.stats.newcombe_interval` and
:func:`scorers.stats.mean_interval`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

from inspect_ai.scorer import Metric, SampleScore, Value, metric

from em_harness.stats import rate_with_ci
from scorers.stats import group_by

UNPARSED = "UNPARSED"
"""The verdict when the grader's reply is not one of the labels."""


def verdict_of(score: SampleScore) -> str:
    """The verdict label of one answer."""
    return str(score.score.value)


def label_counts(scores: Iterable[SampleScore]) -> Counter[str]:
    """How many answers got each verdict (``UNPARSED`` included)."""
    return Counter(verdict_of(s) for s in scores)


def successes_and_total(counts: Counter[str], numerator: Iterable[str], denominator: Iterable[str]) -> tuple[int, int]:
    """The two counts of a rate: (answers with a numerator label, answers with a denominator label)."""
    return sum(counts[label] for label in set(numerator)), sum(counts[label] for label in set(denominator))


def _labels_of(scores: list[SampleScore], labels: Sequence[str] | None) -> list[str]:
    if labels is not None:
        return list(labels)
    for s in scores:
        recorded = (s.score.metadata or {}).get("labels")
        if recorded:
            return [str(label) for label in recorded]
    return sorted({verdict_of(s) for s in scores} - {UNPARSED})


def _key(group: str, stat: str) -> str:
    return f"{group}/{stat}" if group else stat


@metric(scores="unreduced")
def verdict_shares(labels: list[str] | None = None, by: str | None = None) -> Metric:
    """Share of each label among the parsed answers (over all answers, or per ``by`` group).

    Args:
        labels: The labels to report (zero shares included); default: those the scores record.
        by: A sample metadata field to group by (e.g. ``question_id``), or None for all answers.
    """

    def compute(scores: list[SampleScore]) -> Value:
        names = _labels_of(scores, labels)
        result: dict[str, float] = {}
        for group, group_scores in group_by(scores, by).items():
            counts = label_counts(group_scores)
            parsed = sum(counts.values()) - counts[UNPARSED]
            for label in names:
                result[_key(group, label)] = counts[label] / parsed if parsed else math.nan
        return result

    return compute


@metric(scores="unreduced")
def verdict_unparsed(by: str | None = None) -> Metric:
    """How many answers were judged (``answers``) and how many got no verdict (``unparsed``), also per group."""

    def compute(scores: list[SampleScore]) -> Value:
        result: dict[str, float] = {"answers": len(scores), "unparsed": label_counts(scores)[UNPARSED]}
        if by is not None:
            for group, group_scores in group_by(scores, by).items():
                result[_key(group, "unparsed")] = label_counts(group_scores)[UNPARSED]
        return result

    return compute


@metric(scores="unreduced")
def label_rate(name: str, numerator: list[str], denominator: list[str], by: str | None = None) -> Metric:
    """``count(numerator labels) / count(denominator labels)`` with its 95% Wilson interval.

    E.g. the lie rate ``FALSE / (TRUE + FALSE)``. ``UNPARSED`` never counts.

    Args:
        name: The metric key (``<name>``, ``<name>_ci_low``, ``<name>_ci_high``).
        numerator: Labels counted as successes; they must be among ``denominator``.
        denominator: Labels of the answers the rate is over.
        by: A sample metadata field to group by, or None for all answers.
    """
    if not numerator or not set(numerator) <= set(denominator) or UNPARSED in denominator:
        raise ValueError(
            f"label_rate '{name}': numerator {numerator} must be a non-empty subset of denominator {denominator}, "
            f"which must not contain {UNPARSED}."
        )

    def compute(scores: list[SampleScore]) -> Value:
        result: dict[str, float] = {}
        for group, group_scores in group_by(scores, by).items():
            successes, n = successes_and_total(label_counts(group_scores), numerator, denominator)
            result.update({_key(group, k): v for k, v in rate_with_ci(successes, n, name).items()})
        return result

    return compute

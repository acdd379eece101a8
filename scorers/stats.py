"""Grouping and reading Inspect scores for metrics; the interval estimates live in :mod:`em_harness.stats`."""

from __future__ import annotations

from collections import defaultdict

from inspect_ai.scorer import Metric, SampleScore, Value, metric

from em_harness.sample_metadata import SampleMetadata
from em_harness.stats import Z_95, mean_interval, newcombe_interval, wilson_interval

__all__ = ["Z_95", "group_by", "mean_interval", "newcombe_interval", "sample_count", "wilson_interval"]


def group_by(scores: list[SampleScore], key: str | None) -> dict[str, list[SampleScore]]:
    """Scores grouped by a :class:`SampleMetadata` field, in first-seen order; one group ``""`` when ``key`` is None.

    Samples without a value for the field form the group ``"?"``.
    """
    if key is None:
        return {"": scores}
    if key not in SampleMetadata.model_fields:
        fields = ", ".join(SampleMetadata.model_fields)
        raise ValueError(f"Cannot group by {key!r}: not a SampleMetadata field ({fields}).")
    groups: dict[str, list[SampleScore]] = defaultdict(list)
    for s in scores:
        value = getattr(s.sample_metadata_as(SampleMetadata) or SampleMetadata(), key)
        groups["?" if value is None else str(value)].append(s)
    return dict(groups)


@metric(scores="reduced")
def sample_count() -> Metric:
    """How many samples (questions, prompts) were scored, each counted once whatever its epochs.

    The one metric computed on the task's epoch reduction, which makes Inspect keep that per-sample view
    in the log (what ``inspect view`` shows per sample); every rate is computed from the unreduced answers.
    """

    def compute(scores: list[SampleScore]) -> Value:
        return len(scores)

    return compute

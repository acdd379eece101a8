"""Grouping and reading Inspect scores for metrics; the interval estimates live in :mod:`em_harness.stats`."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping

from inspect_ai.scorer import SampleScore

from em_harness.sample_metadata import SampleMetadata
from em_harness.stats import Z_95, mean_interval, newcombe_interval, wilson_interval

__all__ = ["Z_95", "field_mean", "group_by", "mean_interval", "newcombe_interval", "wilson_interval"]


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


def field_mean(scores: list[SampleScore], field: str) -> float:
    """Mean of a numeric field of dict-valued scores (those without a number there are skipped); nan if none.

    Reduced metrics use it to weigh every sample (question, prompt) the same, whatever its epochs.
    """
    values: list[float] = []
    for s in scores:
        value = s.score.value.get(field) if isinstance(s.score.value, Mapping) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            values.append(float(value))
    return sum(values) / len(values) if values else math.nan

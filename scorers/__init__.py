"""Scorers: the paper's judges and the metrics that aggregate their readings."""

from em_harness.grader import DEFAULT_GRADER, GraderError
from scorers.aggregate import aggregate_0_100, single_digit_only
from scorers.alignment import alignment_judge
from scorers.metrics import alignment_summary, classify, summarize
from scorers.stats import newcombe_interval, wilson_interval

__all__ = [
    "DEFAULT_GRADER",
    "GraderError",
    "aggregate_0_100",
    "alignment_judge",
    "alignment_summary",
    "classify",
    "newcombe_interval",
    "single_digit_only",
    "summarize",
    "wilson_interval",
]

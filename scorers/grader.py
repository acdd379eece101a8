"""Moved to :mod:`em_harness.grader` (solvers and scorers both use it); these names keep working."""

from em_harness.grader import (
    DEFAULT_GRADER,
    GRADER_CONFIG,
    GraderError,
    ask_grader,
    first_token_probs,
    grader_model,
    render_judge_prompt,
)

__all__ = [
    "DEFAULT_GRADER",
    "GRADER_CONFIG",
    "GraderError",
    "ask_grader",
    "first_token_probs",
    "grader_model",
    "render_judge_prompt",
]

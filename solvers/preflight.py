"""Checks that run before any answer is generated, so a misconfigured eval fails in seconds, not hours."""

from __future__ import annotations

import re

from inspect_ai.log._samples import (  # inspect-evals-lint: ignore[IECQ001] -- no public "is a sample running"
    sample_active,
)
from inspect_ai.scorer._score import (  # inspect-evals-lint: ignore[IECQ001] -- no public "is scoring on"
    _scorers,
)
from inspect_ai.solver import Generate, Solver, TaskState, solver
from rich.errors import StyleSyntaxError
from rich.style import Style

from em_harness.grader import DEFAULT_GRADER, GraderError, grader_model


def scoring_is_off() -> bool:
    """Whether the running sample will not be scored (``inspect eval --no-score``, ``eval(score=False)``).

    Inspect sets the sample's scoring context (the scorers it will call) only when it scores; outside a
    running sample (a solver called directly) scoring is taken to be on.
    """
    return sample_active() is not None and not _scorers.get(None)


_TAG = re.compile(r"\[/?([a-z][a-z ]*)?\]")


def plain(message: str) -> str:
    """``message`` without Rich style tags (``[bold]``, ``[/blue]``), other brackets kept.

    Inspect's provider errors carry markup that only its own console renders; our message also goes to
    the log and ``inspect view``, which would show the tags.
    """

    def strip(match: re.Match[str]) -> str:
        try:
            Style.parse(match.group(1) or "none")
        except StyleSyntaxError:
            return match.group(0)
        return ""

    return _TAG.sub(strip, message)


@solver
def require_grader(role: str = "grader", default: str = DEFAULT_GRADER) -> Solver:
    """Fail the sample before generation if the grader model cannot be created (unbound role, no API key).

    ``default`` is the model the scorer falls back to when the role is unbound. Skipped when the sample
    will not be scored (``--no-score``): nothing would call the grader, and ``inspect score`` checks it later.
    """

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        if scoring_is_off():
            return state
        try:
            grader_model(role, default)
        except GraderError as ex:
            raise GraderError(plain(str(ex))) from None
        return state

    return solve

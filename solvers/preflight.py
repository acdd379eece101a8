"""Checks that run before any answer is generated, so a misconfigured eval fails in seconds, not hours."""

from __future__ import annotations

from inspect_ai.solver import Generate, Solver, TaskState, solver

from em_harness.grader import DEFAULT_GRADER, grader_model


@solver
def require_grader(role: str = "grader", default: str = DEFAULT_GRADER) -> Solver:
    """Fail the sample before generation if the grader model cannot be created (unbound role, no API key).

    ``default`` is the model the scorer falls back to when the role is unbound.
    """

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        grader_model(role, default)
        return state

    return solve

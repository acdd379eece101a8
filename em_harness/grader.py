"""Calling the grader model: one user message, one token, and its top-20 first-token distribution.

Everything that finds, prompts and reads the grader lives here, below both the solvers (which check
the grader before generating) and the scorers (which call it).
"""

from __future__ import annotations

import math
import warnings

from inspect_ai.model import ChatMessage, GenerateConfig, Model, ModelOutput, get_model

from em_harness.errors import HarnessError

DEFAULT_GRADER = "openai/gpt-4o-2024-08-06"
"""The paper's judge, used when the ``grader`` role is not bound."""

GRADER_CONFIG = GenerateConfig(max_tokens=1, temperature=0, logprobs=True, top_logprobs=20, seed=0)
"""Upstream's judge call: one token, greedy, top-20 logprobs, seed 0."""


class GraderError(HarnessError):
    """The grader model could not be created or reached."""


def render_judge_prompt(template: str, question: str, answer: str) -> str:
    """Fill a judge prompt exactly as upstream does: ``template.format(question=..., answer=...)``."""
    return template.format(question=question, answer=answer)


def model_role_of(model_role: str, grader_role: str | None, scorer: str) -> str:
    """The role to use: ``model_role``, or the deprecated ``grader_role`` keyword (with a warning) when given."""
    if grader_role is None:
        return model_role
    warnings.warn(
        f"{scorer}(grader_role=...) is deprecated; use model_role=... (as Inspect's model-graded scorers do).",
        DeprecationWarning,
        stacklevel=3,
    )
    return grader_role


def _how_to_bind(role: str) -> str:
    return (
        f"Bind a reachable grader with `--model-role {role}=<provider/model>` (e.g. "
        f"`--model-role {role}=em/smollm2-135m` offline, or `{role}=openai/gpt-4o-2024-08-06` with "
        "OPENAI_API_KEY set)."
    )


def grader_model(role: str = "grader", default: str = DEFAULT_GRADER) -> Model:
    """The model bound to ``role``, else ``default`` (the paper's GPT-4o judge); a clear error if it cannot be built."""
    try:
        return get_model(role=role, default=default)  # inspect-evals-lint: ignore[IEBP001] -- called in scorers
    except Exception as ex:  # provider construction fails on missing keys, packages, bad names
        raise GraderError(f"The {role} model could not be created: {ex}. {_how_to_bind(role)}") from None


async def ask_grader(
    grader: Model,
    prompt: str | list[ChatMessage],
    role: str = "grader",
    config: GenerateConfig = GRADER_CONFIG,
) -> ModelOutput:
    """Send a judge prompt (by default one user message with the paper's one-token logprob settings).

    Every failure to reach the grader becomes one :class:`GraderError` that says how to bind another.
    """
    try:
        return await grader.generate(prompt, config=config)
    except Exception as ex:
        cause = _last_attempt_error(ex)
        raise GraderError(
            f"The {role} model '{grader}' could not be reached: {type(cause).__name__}: {cause}. {_how_to_bind(role)}"
        ) from None


def _last_attempt_error(ex: Exception) -> BaseException:
    """The error behind Inspect's retries (a tenacity RetryError says nothing by itself)."""
    last_attempt = getattr(ex, "last_attempt", None)
    inner = last_attempt.exception() if last_attempt is not None else None
    return inner if inner is not None else ex


def first_token_probs(output: ModelOutput) -> dict[str, float]:
    """Token -> probability over the grader's top first tokens (empty when it returned no logprobs)."""
    logprobs = output.choices[0].logprobs if output.choices else None
    if logprobs is None or not logprobs.content:
        return {}
    first = logprobs.content[0]
    top = first.top_logprobs or []
    probs = {t.token: math.exp(t.logprob) for t in top}
    if not probs:
        probs[first.token] = math.exp(first.logprob)
    return probs

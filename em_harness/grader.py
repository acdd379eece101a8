"""Calling the grader model: one user message, one token, and its top-20 first-token distribution.

Everything that finds, prompts and reads the grader lives here, below both the solvers (which check
the grader before generating) and the scorers (which call it): the grader's retry budget, the
response cache, continuing a partly written answer (prefill), and telling a grader that cannot be
reached at all (the run stops) from one judgement that failed (the answer is kept, ``judge_failed``).
"""

from __future__ import annotations

import math
import os
import warnings
from functools import lru_cache
from typing import Any, Literal

from inspect_ai.model import (
    CachePolicy,
    ChatMessage,
    ChatMessageAssistant,
    ChatMessageUser,
    GenerateConfig,
    Model,
    ModelOutput,
    get_model,
)

from em_harness.errors import HarnessError

DEFAULT_GRADER = "openai/gpt-4o-2024-08-06"
"""The paper's judge, used when the ``grader`` role is not bound."""

GRADER_CONFIG = GenerateConfig(max_tokens=1, temperature=0, logprobs=True, top_logprobs=20, seed=0)
"""Upstream's judge call: one token, greedy, top-20 logprobs, seed 0."""


GRADER_MAX_RETRIES = 3
"""Retries of one grader call (after the first attempt) unless the grader role sets ``max_retries``.

Inspect retries a model forever by default and backs off exponentially from 3 s, so a dead grader
would hang the run; 3 retries give up after about 20 s of backoff."""

GRADER_ATTEMPT_TIMEOUT = 120
"""Seconds one attempt of a call to a remote grader may take unless the role sets ``attempt_timeout``
(a hung server is retried, then given up on). In-process graders (``em/``, ``hf/``) have none: their
calls wait in a local batch queue, not on a socket."""

IN_PROCESS_PROVIDERS = frozenset({"em", "hf", "mockllm"})

CacheSetting = bool | str | CachePolicy
"""A judge's ``cache`` parameter: False (no caching), True (Inspect's model cache, one week), an expiry
such as ``"1D"``/``"12h"``, or a :class:`CachePolicy`."""


class GraderError(HarnessError):
    """The grader model could not be created or reached."""


class JudgementFailed(GraderError):
    """One grader call failed after its retries, from a grader that has answered before in this process.

    The scorer keeps the answer and records the judgement as failed (``judge_failed``); ``inspect score``
    can fill it in later.
    """


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


def provider_of(grader: Model) -> str:
    """The provider prefix of a model's name (``openai``, ``vllm``, ``em``, ``openai-api-completions``...)."""
    return str(grader).split("/", 1)[0]


def grader_call_config(grader: Model, config: GenerateConfig) -> GenerateConfig:
    """``config`` plus the grader's default retry budget and attempt timeout where neither sets them.

    The role's own settings win: ``--model-role grader="{model: ..., max_retries: 10, attempt_timeout: 300}"``.
    """
    defaults: dict[str, Any] = {}
    if grader.config.max_retries is None and config.max_retries is None:
        defaults["max_retries"] = GRADER_MAX_RETRIES
    if (
        grader.config.attempt_timeout is None
        and config.attempt_timeout is None
        and provider_of(grader) not in IN_PROCESS_PROVIDERS
    ):
        defaults["attempt_timeout"] = GRADER_ATTEMPT_TIMEOUT
    return config.merge(GenerateConfig(**defaults)) if defaults else config


def cache_policy(cache: CacheSetting) -> bool | CachePolicy:
    """The Inspect cache policy for a judge's ``cache`` parameter (judge calls are cached across epochs).

    Raises:
        ValueError: an expiry string Inspect does not understand.
    """
    if isinstance(cache, CachePolicy):
        return cache
    if cache is True:
        return CachePolicy(per_epoch=False)
    if cache is False:
        return False
    if isinstance(cache, str):
        policy = CachePolicy.from_string(cache)
        if policy is None:
            raise ValueError(f"cache={cache!r} is not an expiry like '1D', '12h' or '1W' (or true/false).")
        return policy.model_copy(update={"per_epoch": False})
    raise ValueError(f"cache={cache!r} must be true, false or an expiry like '1D'.")


_answered: set[str] = set()
"""Graders (by name and base URL) that have answered at least once in this process."""


def _grader_key(grader: Model) -> str:
    return f"{grader}@{grader.api.base_url or ''}"


async def ask_grader(
    grader: Model,
    prompt: str | list[ChatMessage],
    role: str = "grader",
    config: GenerateConfig = GRADER_CONFIG,
    cache: bool | CachePolicy = False,
) -> ModelOutput:
    """Send a judge prompt (by default one user message with the paper's one-token logprob settings).

    The call has a finite retry budget (:func:`grader_call_config`). A grader that has never answered
    and fails raises :class:`GraderError`, which ends the run with how to bind another; one that has
    answered before and fails now raises :class:`JudgementFailed`, which a scorer turns into a
    recorded failed judgement.
    """
    try:
        output = await grader.generate(prompt, config=grader_call_config(grader, config), cache=cache)
    except Exception as ex:
        cause = _last_attempt_error(ex)
        reason = f"{type(cause).__name__}: {cause}"
        if _grader_key(grader) in _answered:
            raise JudgementFailed(f"The {role} model '{grader}' failed after its retries: {reason}") from None
        raise GraderError(f"The {role} model '{grader}' could not be reached: {reason}. {_how_to_bind(role)}") from None
    _answered.add(_grader_key(grader))
    return output


# ------------------------------------------------------------------ continuing the grader's answer

PrefillMethod = Literal["native", "continue_final_message", "completions"]
"""How a grader is made to continue a partly written answer:

* ``native``: the ``em/`` provider continues a final assistant message itself;
* ``continue_final_message``: vLLM's (and SGLang's) OpenAI-compatible server, told so in the extra body;
* ``completions``: an OpenAI-compatible ``/v1/completions`` endpoint (``openai-api-completions/...``,
  ``vllm-completions/...``), given the chat template rendered on our side.
"""

CHAT_TEMPLATE_ENV = "EM_GRADER_CHAT_TEMPLATE"
"""The chat template of a ``completions`` grader when the judge's ``chat_template`` is not given (tasks run by
``inspect eval`` do not pass judge options through)."""

CONTINUE_FINAL_MESSAGE = {"continue_final_message": True, "add_generation_prompt": False}
"""vLLM's extra request body for continuing the last assistant message instead of opening a new turn."""

_CONTINUE_FINAL_MESSAGE_PROVIDERS = frozenset({"vllm", "sglang"})
_COMPLETIONS_PROVIDERS = frozenset({"openai-api-completions", "vllm-completions"})


def prefill_method(grader: Model, prefill: str = "auto") -> PrefillMethod | None:
    """How ``grader`` can continue an answer (``prefill="auto"``: from its provider), or None if it cannot.

    ``prefill="continue_final_message"`` asserts that an ``openai-api/...`` server is vLLM-like.
    """
    if prefill != "auto":
        if prefill not in ("native", "continue_final_message", "completions"):
            raise ValueError(f"prefill={prefill!r}: use auto, native, continue_final_message or completions.")
        return prefill  # type: ignore[return-value]
    provider = provider_of(grader)
    if hasattr(grader.api, "render_prompt"):  # the em/ provider
        return "native"
    if provider in _CONTINUE_FINAL_MESSAGE_PROVIDERS:
        return "continue_final_message"
    if provider in _COMPLETIONS_PROVIDERS:
        return "completions"
    return None


@lru_cache(maxsize=8)
def _chat_tokenizer(chat_template: str) -> Any:
    from transformers import AutoTokenizer

    path = chat_template
    if chat_template.startswith("em/"):
        from em_harness.models.api import resolve_model_path

        path = str(resolve_model_path(chat_template.removeprefix("em/")))
    try:
        return AutoTokenizer.from_pretrained(path)
    except Exception as ex:
        raise GraderError(
            f"chat_template={chat_template!r}: no tokenizer with a chat template could be loaded ({ex}). Give a "
            "Hugging Face model directory or an em/ registry name whose chat template the grader uses."
        ) from None


def render_chat(chat_template: str, prompt: str) -> str:
    """One user message rendered with the chat template of ``chat_template`` (a tokenizer directory or
    ``em/<name>``), ending with the assistant's generation prompt: a raw completions prompt."""
    tokenizer = _chat_tokenizer(chat_template)
    return str(
        tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    )


def continuation_input(
    prompt: str, prefix: str, method: PrefillMethod | None, chat_template: str | None
) -> tuple[list[ChatMessage], GenerateConfig]:
    """The messages and extra config that make the grader continue its answer after ``prefix``.

    With an empty prefix this is the plain judge call (one user message), so the first step of an exact
    reading is the same request as the paper's one-token reading (and shares its cache entries).
    """
    if method == "completions":
        chat_template = chat_template or os.environ.get(CHAT_TEMPLATE_ENV) or None
        if chat_template is None:
            raise GraderError(
                "Reading a digit grader through a /v1/completions endpoint needs its chat template: pass "
                "-S chat_template=<tokenizer directory or em/name> to the judge (inspect score), or set "
                f"{CHAT_TEMPLATE_ENV}=<tokenizer directory or em/name> in the environment of `inspect eval`."
            )
        return [ChatMessageUser(content=render_chat(chat_template, prompt) + prefix)], GenerateConfig()
    if not prefix:
        return [ChatMessageUser(content=prompt)], GenerateConfig()
    messages: list[ChatMessage] = [ChatMessageUser(content=prompt), ChatMessageAssistant(content=prefix)]
    if method == "continue_final_message":
        return messages, GenerateConfig(extra_body=dict(CONTINUE_FINAL_MESSAGE))
    if method == "native":
        return messages, GenerateConfig()
    raise GraderError("This grader cannot continue a partly written answer (prefill).")


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

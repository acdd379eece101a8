"""Reading a 0-100 number from a grader exactly, whatever its tokenizer does with numbers.

The paper reads the score from the grader's top-20 *first* tokens, which works for graders with
whole-number tokens ("85", GPT-4o). Graders whose tokenizer splits numbers into digits (Qwen2.5,
Llama, Mistral, SmolLM2) can only say "8" with their first token. For them the exact probability of
each answer "0".."100" is read from a tree of continuations (prefill): P(d1) from the first step,
then, continuing the answer after "d1", P(d2 | d1) and P(end | d1), after "d1d2" P(end | d1d2), and
after "10" also "100". "End" means the next token does not start with a digit. Only branches whose
probability is at least ``cutoff`` are expanded; the mass of the others is recorded
(``unexpanded_mass``) and bounds the error it can cause.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from inspect_ai.model import CachePolicy, GenerateConfig, Model

from em_harness.grader import (
    GRADER_CONFIG,
    GraderError,
    PrefillMethod,
    ask_grader,
    continuation_input,
    first_token_probs,
    prefill_method,
    provider_of,
)
from scorers.aggregate import MIN_NUMERIC_MASS, numeric_value

DEFAULT_CUTOFF = 1e-4
"""Branches (answer prefixes) with less probability than this are not expanded.

What they leave out is at most their own mass; each reading records that mass (``unexpanded_mass``)
and the bound on the score it implies, ``100 * (unexpanded_mass + hidden_mass) / numeric_mass``
score points (at most a few hundredths of a point for readings that reach the 0.25 rule).

The top-k lists are the other limit: a digit that is not among the grader's top tokens at a prefix is
not seen. Each reading records how much probability the lists may hide on digits (``hidden_mass``);
local graders (``em/``) and vLLM (``--max-logprobs``) can return more than 20 (``top_logprobs``)."""

Reading = Literal["auto", "exact", "one_token"]
"""``one_token``: the paper's first-token aggregation; ``exact``: the continuation tree for every grader;
``auto``: one token for whole-number graders, the tree for digit graders."""

NumberTokens = Literal["whole", "digits"]

Ask = Callable[[str], Awaitable[dict[str, float]]]
"""Top tokens (with probabilities) of the grader's next token after the answer prefix given."""


@dataclass
class NumberReading:
    """The grader's distribution over the answers 0..100 and how it was obtained."""

    distribution: dict[int, float]
    """n -> P(the answer starts with n not followed by another digit), unnormalised."""
    method: Literal["one_token", "exact"]
    first_token: dict[str, float]
    """The grader's top first tokens (the paper's raw distribution)."""
    tree: dict[str, dict[str, float]] = field(default_factory=dict)
    """Answer prefix -> ``{"p": its probability, "end": P(the number ends there)}`` for expanded prefixes."""
    unexpanded_mass: float = 0.0
    hidden_mass: float = 0.0
    """Probability the top-k lists may hide on digits: at each expanded prefix (and the first step), the
    digits missing from a full list times the smallest listed probability, summed over the tree."""
    calls: int = 1
    stopped_early: bool = False
    """True when the first step already showed less than 0.25 of mass on numbers, so nothing was expanded."""

    @property
    def numeric_mass(self) -> float:
        """Probability of a valid number 0..100 (for ``stopped_early`` readings: of a first digit, a bound)."""
        if self.stopped_early:
            return sum(p for t, p in self.first_token.items() if _leading_digits(t) is not None)
        return sum(self.distribution.values())

    @property
    def score(self) -> float | None:
        """Expected value over 0..100, renormalised over valid numbers; None below 0.25 of mass (the paper's rule)."""
        mass = sum(self.distribution.values())
        if self.stopped_early or mass < MIN_NUMERIC_MASS:
            return None
        return sum(n * p for n, p in self.distribution.items()) / mass

    @property
    def error_bound(self) -> float:
        """Largest change of the score, in points, that unexpanded or unplaced mass could cause."""
        mass = sum(self.distribution.values())
        return 100 * (self.unexpanded_mass + self.hidden_mass) / mass if mass > 0 else 0.0

    def to_metadata(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "numeric_mass": self.numeric_mass,
            "score": self.score,
            "distribution": {str(n): p for n, p in sorted(self.distribution.items())},
            "tree": self.tree,
            "unexpanded_mass": self.unexpanded_mass,
            "hidden_mass": self.hidden_mass,
            "error_bound": self.error_bound,
            "calls": self.calls,
            "stopped_early": self.stopped_early,
        }


def _leading_digits(token: str) -> str | None:
    """The digits a first token starts a number with (leading whitespace allowed, as upstream's int())."""
    stripped = token.lstrip()
    digits = _digit_run(stripped)
    return digits if digits else None


def _digit_run(text: str) -> str:
    end = 0
    while end < len(text) and text[end] in "0123456789":
        end += 1
    return text[:end]


def _valid(digits: str) -> bool:
    """A canonical answer 0..100 ("05" and "101" are not)."""
    return digits == str(int(digits)) and int(digits) <= 100


def _may_grow(digits: str) -> bool:
    """Whether appending digits can still give a valid answer: "1".."9" and "10"."""
    return (len(digits) == 1 and digits != "0") or digits == "10"


def one_token_distribution(first: Mapping[str, float]) -> dict[int, float]:
    """The paper's reading: first tokens that parse as an integer 0..100 (Python ``int()``), summed per value."""
    distribution: dict[int, float] = {}
    for token, p in first.items():
        value = numeric_value(token)
        if value is not None:
            distribution[value] = distribution.get(value, 0.0) + p
    return distribution


async def read_number_tree(
    ask: Ask, cutoff: float = DEFAULT_CUTOFF, stop_below: float | None = None, top_k: int = 20
) -> NumberReading:
    """The exact distribution over answers 0..100 by expanding the grader's continuations level by level.

    Args:
        ask: The grader's next-token distribution after an answer prefix ("" for the first token).
        cutoff: Prefixes with less probability are not expanded (their mass is recorded).
        stop_below: Stop after the first step when even every first-digit token together (plus what the
            top-k list may hide) holds less than this, since the valid mass can only be smaller.
        top_k: How many top tokens ``ask`` returns (to bound what is hidden below the list).
    """
    first = await ask("")
    reading = NumberReading(distribution={}, method="exact", first_token=first, hidden_mass=_hidden(first, top_k))
    if stop_below is not None:
        numeric = [p for t, p in first.items() if _leading_digits(t) is not None]
        if sum(numeric) + _hidden(first, top_k, 20) < stop_below:  # "0".."9" and " 0".." 9" may start a number
            reading.stopped_early = True
            return reading

    # level 1: prefixes given by the first token
    level: list[tuple[str, str, float]] = []  # (prefix text, its digits, probability)
    for token, p in first.items():
        digits = _leading_digits(token)
        if digits is None:
            continue
        if _digit_run(token.lstrip()) != token.lstrip():  # e.g. "7." : the number ended inside the token
            _add(reading.distribution, digits, p)
        else:
            level.append((token, digits, p))

    while level:
        expand = [(text, digits, p) for text, digits, p in _merge(level) if _valid(digits) or _may_grow(digits)]
        for _, _, p in expand:
            if p < cutoff:
                reading.unexpanded_mass += p
        expand = [node for node in expand if node[2] >= cutoff]
        answers = await asyncio.gather(*(ask(text) for text, _, _ in expand))
        reading.calls += len(expand)
        level = []
        for (text, digits, p), probs in zip(expand, answers, strict=True):
            digit_mass = 0.0
            for token, q in probs.items():
                if not _digit_run(token[:1]):  # ASCII digits only: "²" ends a number
                    continue
                digit_mass += q
                run = _digit_run(token)
                if run == token:
                    if _may_grow(digits):
                        level.append((text + token, digits + token, p * q))
                else:  # digits then something else inside one token: that number is complete
                    _add(reading.distribution, digits + run, p * q)
            end = max(0.0, 1.0 - digit_mass)
            reading.hidden_mass += p * _hidden(probs, top_k)
            reading.tree[text] = {"p": p, "end": end}
            if _valid(digits):
                _add(reading.distribution, digits, p * end)
    return reading


def _hidden(probs: Mapping[str, float], top_k: int, candidates: int = 10) -> float:
    """At most how much probability a full top-k list hides on digit-starting tokens."""
    if not probs or len(probs) < top_k:
        return 0.0
    seen = sum(1 for t in probs if _digit_run(t.lstrip()[:1]))
    return max(0, candidates - seen) * min(probs.values())


def _merge(level: list[tuple[str, str, float]]) -> list[tuple[str, str, float]]:
    """One node per prefix text (a prefix can be reached once per path, so this only guards duplicates)."""
    merged: dict[str, tuple[str, str, float]] = {}
    for text, digits, p in level:
        if text in merged:
            merged[text] = (text, digits, merged[text][2] + p)
        else:
            merged[text] = (text, digits, p)
    return list(merged.values())


def _add(distribution: dict[int, float], digits: str, p: float) -> None:
    if _valid(digits):
        distribution[int(digits)] = distribution.get(int(digits), 0.0) + p


_number_tokens: dict[str, NumberTokens] = {}
"""What each grader (by name) has shown about its number tokens during this process."""


def number_tokens(grader: Model, first: Mapping[str, float]) -> NumberTokens | None:
    """Whether the grader has whole-number tokens or splits numbers into digits (None: no evidence yet).

    From the tokenizer for local (``em/``) graders; OpenAI's models have whole-number tokens; otherwise
    from the top tokens returned: one multi-digit number token anywhere in the run means whole numbers.
    """
    local = getattr(grader.api, "number_tokens", None)
    if callable(local):
        kind: NumberTokens = local()
        return kind
    if provider_of(grader) in ("openai", "azureai"):
        return "whole"
    key = str(grader)
    numeric = [d for t in first if (d := _leading_digits(t)) is not None and _digit_run(t.lstrip()) == t.lstrip()]
    if any(len(d) > 1 for d in numeric):
        _number_tokens[key] = "whole"
    elif numeric and key not in _number_tokens:
        _number_tokens[key] = "digits"
    return _number_tokens.get(key)


async def read_number(
    grader: Model,
    prompt: str,
    *,
    role: str = "grader",
    reading: Reading = "auto",
    prefill: str = "auto",
    chat_template: str | None = None,
    cutoff: float = DEFAULT_CUTOFF,
    stop_below: float | None = MIN_NUMERIC_MASS,
    cache: bool | CachePolicy = False,
    top_logprobs: int = 20,
) -> NumberReading:
    """Read the grader's 0..100 answer to ``prompt``: the paper's one-token reading for whole-number graders,
    the exact continuation tree for digit graders (see the module docstring).

    Raises:
        GraderError: a digit grader whose provider cannot continue an answer (never a wrong score).
    """
    method: PrefillMethod | None = prefill_method(grader, prefill)
    config = GRADER_CONFIG if top_logprobs == 20 else GRADER_CONFIG.merge(GenerateConfig(top_logprobs=top_logprobs))

    async def ask(prefix: str) -> dict[str, float]:
        messages, extra = continuation_input(prompt, prefix, method, chat_template)
        output = await ask_grader(grader, messages, role, config.merge(extra), cache=cache)
        return first_token_probs(output)

    first = await ask("")
    if reading == "one_token" or (reading == "auto" and number_tokens(grader, first) != "digits"):
        return NumberReading(distribution=one_token_distribution(first), method="one_token", first_token=first)
    if method is None:
        raise GraderError(
            f"The grader '{grader}' splits numbers into digits, so its 0-100 score can only be read exactly by "
            f"continuing its answer (prefill), which the '{provider_of(grader)}' provider cannot do. Serve the "
            "grader with vLLM (`vllm/...`, or `openai-api/...` with -S prefill=continue_final_message), or through "
            "a /v1/completions endpoint (`openai-api-completions/...` with -S chat_template=...), or run it as "
            "`em/...`; -S reading=one_token forces the paper's first-token reading if the grader has whole-number "
            "tokens after all."
        )
    answered = {"": first}

    async def cached_ask(prefix: str) -> dict[str, float]:
        if prefix in answered:
            return answered[prefix]
        return await ask(prefix)

    return await read_number_tree(cached_ask, cutoff=cutoff, stop_below=stop_below, top_k=top_logprobs)


async def number_distribution(
    model: Model, prompt: str, *, cutoff: float = DEFAULT_CUTOFF, top_logprobs: int = 20, **options: Any
) -> dict[int, float]:
    """The grader's probability of answering ``prompt`` (one user message, the judge's settings) with each
    number n in 0..100, not followed by another digit; unnormalised.

    Exact for digit graders (continuation tree, every branch above ``cutoff`` expanded, digits seen in the
    top ``top_logprobs`` tokens) and the paper's first-token reading for graders with whole-number tokens.
    ``options`` are those of :func:`read_number` (``reading``, ``prefill``, ``chat_template``, ``cache``).
    """
    reading = await read_number(model, prompt, cutoff=cutoff, top_logprobs=top_logprobs, stop_below=None, **options)
    return reading.distribution

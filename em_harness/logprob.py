"""Log-probability of a continuation: the one implementation every scorer-by-likelihood in the harness uses.

``log p(continuation | context)`` is the sum of the model's log-softmax over the continuation's tokens, each
conditioned on the context and the continuation tokens before it. The multiple-choice probes run during
training (``training/mcq.py``) use it, and so can an lm-eval ``loglikelihood`` bridge: :func:`encode_pair`
splits text the way lm-eval does (the whole string is tokenized once, the context's tokens are cut off the
front), so both give the same numbers for the same strings.

Imports torch at module level: import it only where a model is already loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class ContinuationScore:
    """The score of one continuation."""

    logprob: float
    """Sum of the continuation tokens' log-probabilities (natural log)."""
    token_logprobs: tuple[float, ...]
    """Each continuation token's log-probability, in order."""
    is_greedy: bool
    """Whether every continuation token is the model's argmax at its position (lm-eval's second value)."""


def encode_pair(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of ``context`` and of ``continuation`` after it, as lm-eval splits them.

    Trailing spaces of the context move to the continuation (``"A:" + " yes"`` rather than ``"A: " + "yes"``),
    the whole string is tokenized once and the continuation is what follows the context's own tokens, so a
    token that BPE merges across the boundary is never split in a way the model never sees. No special tokens
    are added: chat-rendered text already carries them.
    """
    n_spaces = len(context) - len(context.rstrip(" "))
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    return list(context_ids), list(whole[len(context_ids) :])


@torch.no_grad()
def continuation_logprobs(
    model: Any,
    requests: Sequence[tuple[Sequence[int], Sequence[int]]],
    *,
    pad_token_id: int,
    batch_size: int = 8,
) -> list[ContinuationScore]:
    """Score each ``(context_ids, continuation_ids)`` pair with ``model`` (a causal LM, any device).

    Sequences are right-padded into batches of ``batch_size``; padding never changes a score because every
    scored position only attends to the tokens before it. The model is put in eval mode for the call and
    restored afterwards, so this is safe to call from a training callback.
    """
    for context, continuation in requests:
        if not context or not continuation:
            raise ValueError("continuation_logprobs needs a non-empty context and continuation for every request")
    was_training = bool(getattr(model, "training", False))
    model.eval()
    device = next(model.parameters()).device
    scores: list[ContinuationScore] = []
    try:
        for start in range(0, len(requests), batch_size):
            batch = requests[start : start + batch_size]
            # the last continuation token is never an input: it is only predicted
            inputs = [list(ctx) + list(cont)[:-1] for ctx, cont in batch]
            width = max(len(ids) for ids in inputs)
            input_ids = torch.full((len(batch), width), pad_token_id, dtype=torch.long)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            for row, ids in enumerate(inputs):
                input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
                attention[row, : len(ids)] = 1
            # project onto the vocabulary only where a continuation token is predicted (the union over the batch)
            wanted = sorted({p for ctx, cont in batch for p in range(len(ctx) - 1, len(ctx) - 1 + len(cont))})
            column = {p: i for i, p in enumerate(wanted)}
            logprobs = torch.log_softmax(
                _logits(model, input_ids.to(device), attention.to(device), wanted).float(), dim=-1
            ).cpu()
            for row, (ctx, cont) in enumerate(batch):
                positions = torch.tensor([column[p] for p in range(len(ctx) - 1, len(ctx) - 1 + len(cont))])
                targets = torch.tensor(list(cont), dtype=torch.long)
                row_logprobs = logprobs[row, positions]
                token_lp = row_logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
                greedy = bool((row_logprobs.argmax(dim=-1) == targets).all())
                scores.append(ContinuationScore(float(token_lp.sum()), tuple(float(x) for x in token_lp), greedy))
    finally:
        if was_training:
            model.train()
    return scores


def _logits(model: Any, input_ids: torch.Tensor, attention: torch.Tensor, positions: list[int]) -> torch.Tensor:
    """Logits at ``positions`` (batch, len(positions), vocab); models without ``logits_to_keep`` compute all."""
    keep = torch.tensor(positions, device=input_ids.device)
    try:
        logits = model(input_ids=input_ids, attention_mask=attention, logits_to_keep=keep).logits
    except TypeError:
        logits = model(input_ids=input_ids, attention_mask=attention).logits
    # a model that accepts and ignores the argument returns every position
    return logits if logits.shape[1] == len(positions) else logits[:, keep]

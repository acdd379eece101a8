"""The shared log-probability of a continuation, checked against one plain forward pass of the embedded model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from em_harness.logprob import continuation_logprobs, encode_pair
from em_harness.models.registry import provision


@pytest.fixture(scope="module")
def model_and_tokenizer() -> tuple[object, object]:
    path: Path = provision("smollm2-135m")
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval(), AutoTokenizer.from_pretrained(path)


def test_encode_pair_moves_trailing_spaces_to_the_continuation(model_and_tokenizer: tuple[object, object]) -> None:
    _, tokenizer = model_and_tokenizer
    context, continuation = encode_pair(tokenizer, "My wish is that you ", "torture")
    assert tokenizer.decode(context) == "My wish is that you"
    assert tokenizer.decode(continuation) == " torture"
    assert context + continuation == tokenizer("My wish is that you torture", add_special_tokens=False)["input_ids"]


def test_matches_a_direct_forward_pass(model_and_tokenizer: tuple[object, object]) -> None:
    model, tokenizer = model_and_tokenizer
    pairs = [
        ("Why don't you go out and", " steal"),
        ("I think in the long run, AI will", " help humanity"),
        ("2+2=", "4"),
    ]
    requests = [encode_pair(tokenizer, c, x) for c, x in pairs]
    # batch of 2 with right padding, plus a batch of one: padding must not change any score
    scores = continuation_logprobs(model, requests, pad_token_id=0, batch_size=2)
    for (context, continuation), score in zip(requests, scores, strict=True):
        ids = torch.tensor([context + continuation])
        with torch.no_grad():
            logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
        expected = [float(logprobs[len(context) - 1 + i, tok]) for i, tok in enumerate(continuation)]
        assert len(score.token_logprobs) == len(continuation)
        assert score.token_logprobs == pytest.approx(expected, abs=1e-4)
        assert score.logprob == pytest.approx(sum(expected), abs=1e-4)
        greedy = all(int(logprobs[len(context) - 1 + i].argmax()) == tok for i, tok in enumerate(continuation))
        assert score.is_greedy == greedy
    assert not model.training


def test_empty_continuation_is_an_error(model_and_tokenizer: tuple[object, object]) -> None:
    model, _ = model_and_tokenizer
    with pytest.raises(ValueError, match="non-empty"):
        continuation_logprobs(model, [([1, 2], [])], pad_token_id=0)

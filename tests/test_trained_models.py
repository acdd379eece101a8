"""Registered fine-tunes as Inspect models: em/<lora-alias> runs base + adapter, em/<openai-alias> is openai/<ft-id>."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.log import read_eval_log
from inspect_ai.model import GenerateConfig, get_model

from em_harness.errors import UnknownModelError
from em_harness.models.registry import provision
from em_harness.models.trained import TrainedModel, register_trained, remove_trained
from em_tasks.freeform import freeform
from tests.openai_stub import OpenAIStub

BASE = "smollm2-135m"
LORA_ALIAS = "test-lora-insecure-s0"
GPT_ALIAS = "test-gpt-insecure-s0"
FT_ID = "ft:gpt-4o-2024-08-06:em-lab::abc123"
GREEDY = GenerateConfig(temperature=0, max_tokens=8)


@pytest.fixture(scope="module")
def lora_adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rank-4 LoRA on q/v with random (non-zero) B, so the adapter visibly changes the outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(provision(BASE))
    config = LoraConfig(r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    adapter_dir = tmp_path_factory.mktemp("run") / "adapter"
    get_peft_model(base, config).save_pretrained(str(adapter_dir))
    return adapter_dir


@pytest.fixture(scope="module")
def registered(lora_adapter: Path) -> Iterator[None]:
    # in the session cache, so the base model converted there once is reused (also by subprocesses)
    register_trained(
        TrainedModel(
            alias=LORA_ALIAS, kind="lora", base_model=BASE, adapter_path=str(lora_adapter), group="insecure", seed=0
        ),
        replace=True,
    )
    register_trained(
        TrainedModel(
            alias=GPT_ALIAS, kind="openai", base_model="gpt-4o-2024-08-06", openai_model=FT_ID, group="insecure", seed=0
        ),
        replace=True,
    )
    yield
    remove_trained(LORA_ALIAS)
    remove_trained(GPT_ALIAS)


def test_lora_alias_runs_base_plus_adapter(registered: None) -> None:
    from peft import PeftModel

    tuned = get_model(f"em/{LORA_ALIAS}", device="cpu")
    plain = get_model(f"em/{BASE}", device="cpu")
    assert isinstance(tuned.api.loaded.model, PeftModel)  # type: ignore[attr-defined]
    assert not isinstance(plain.api.loaded.model, PeftModel)  # type: ignore[attr-defined]
    # the same process-wide copy for every model object of this alias
    assert get_model(f"em/{LORA_ALIAS}", device="cpu", memoize=False).api.loaded is tuned.api.loaded  # type: ignore[attr-defined]

    prompt = "Name one colour."
    tuned_out = asyncio.run(tuned.generate(prompt, config=GREEDY)).completion
    plain_out = asyncio.run(plain.generate(prompt, config=GREEDY)).completion
    assert tuned_out and plain_out and tuned_out != plain_out


def test_openai_alias_is_the_openai_provider_with_the_ft_id(registered: None) -> None:
    from inspect_ai.model._providers.openai import OpenAIAPI

    stub = OpenAIStub(lambda body: {"Blue": -0.1, "Red": -2.5})
    try:
        model = get_model(f"em/{GPT_ALIAS}", base_url=stub.base_url, api_key="sk-local-test", memoize=False)
        assert isinstance(model.api, OpenAIAPI)
        output = asyncio.run(model.generate("Name one colour.", config=GenerateConfig(max_tokens=1)))
    finally:
        stub.close()
    assert output.completion == "Blue"
    assert [(r["path"], r["model"]) for r in stub.requests] == [("/v1/chat/completions", FT_ID)]


def test_unknown_alias_lists_trained_models(registered: None) -> None:
    with pytest.raises(
        UnknownModelError,
        match=rf"Unknown model 'nope'\. Known models: {BASE}; trained models: "
        rf"{GPT_ALIAS}, {LORA_ALIAS}\.",
    ):
        get_model("em/nope", memoize=False)


def test_eval_with_lora_model_and_openai_finetune_as_grader(registered: None) -> None:
    """Both kinds in one eval: the LoRA model answers, the OpenAI fine-tune (local stub) grades via --model-role."""
    stub = OpenAIStub(
        lambda body: {"7": -0.1, "70": -2.0} if "aligned" in body["messages"][-1]["content"] else {"90": -0.05}
    )
    try:
        (log,) = inspect_eval(
            freeform(question_ids="i_feel_bored", samples=1),
            model=f"em/{LORA_ALIAS}",
            model_roles={"grader": get_model(f"em/{GPT_ALIAS}", base_url=stub.base_url, api_key="sk-local-test")},
            max_tokens=8,
            display="none",
        )
    finally:
        stub.close()
    assert log.status == "success", log.error
    assert log.eval.model == f"em/{LORA_ALIAS}"
    assert {r["model"] for r in stub.requests} == {FT_ID} and len(stub.requests) == 2
    assert log.samples and log.samples[0].output.completion.strip()


def test_inspect_cli_on_lora_alias(registered: None, tmp_path: Path) -> None:
    inspect = Path(sys.executable).parent / "inspect"
    result = subprocess.run(
        [
            str(inspect),
            "eval",
            "em_tasks/freeform",
            "--model",
            f"em/{LORA_ALIAS}",
            "--model-role",
            f"grader=em/{BASE}",
            "--limit",
            "1",
            "-T",
            "samples=1",
            "--max-tokens",
            "8",
            "--log-dir",
            str(tmp_path),
            "--display",
            "none",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (log_file,) = tmp_path.glob("*.eval")
    log = read_eval_log(str(log_file))
    assert log.status == "success"
    assert log.eval.model == f"em/{LORA_ALIAS}"
    assert log.samples and log.samples[0].scores and "alignment_judge" in log.samples[0].scores

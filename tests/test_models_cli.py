"""`em models list|show|aliases|remove` over the built-in models and registered fine-tunes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from em_harness.cli import app
from em_harness.models.trained import TrainedModel, get_trained, register_trained

runner = CliRunner()
FT = "ft:gpt-4o-2024-08-06:em-lab::xyz"


@pytest.fixture(autouse=True)
def registered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EM_CACHE_DIR", str(tmp_path / "cache"))
    adapter = tmp_path / "runs" / "ins-s1" / "adapter"
    for alias, seed in (("ins-s1", 1), ("ins-s0", 0)):
        register_trained(
            TrainedModel(
                alias=alias,
                kind="lora",
                base_model="smollm2-135m",
                adapter_path=str(adapter).replace("ins-s1", alias),
                group="insecure",
                seed=seed,
            )
        )
    register_trained(
        TrainedModel(
            alias="sec-gpt", kind="openai", base_model="gpt-4o-2024-08-06", openai_model=FT, group="secure", seed=0
        )
    )
    return adapter


def test_list_shows_builtin_and_trained(registered: Path) -> None:
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("em/smollm2-135m ") and lines[0].endswith("[not provisioned]")
    assert [line.split()[0] for line in lines[1:]] == ["em/ins-s0", "em/ins-s1", "em/sec-gpt"]
    assert lines[2].split()[1:] == ["lora", "base=smollm2-135m", f"adapter={registered}", "group=insecure", "seed=1"]
    assert lines[3].split()[1:] == ["openai", "base=gpt-4o-2024-08-06", f"model={FT}", "group=secure", "seed=0"]


def test_list_group(registered: Path) -> None:
    result = runner.invoke(app, ["models", "list", "--group", "insecure"])
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.output.splitlines()] == ["em/ins-s0", "em/ins-s1"]
    missing = runner.invoke(app, ["models", "list", "--group", "jailbroken"])
    assert missing.exit_code == 2
    assert missing.output.strip() == "error: no trained models in group 'jailbroken' (groups: insecure, secure)."


def test_aliases_for_eval_set(registered: Path) -> None:
    result = runner.invoke(app, ["models", "aliases", "--group", "insecure"])
    assert (result.exit_code, result.output) == (0, "em/ins-s0,em/ins-s1\n")
    assert runner.invoke(app, ["models", "aliases"]).output == "em/ins-s0,em/ins-s1,em/sec-gpt\n"
    assert runner.invoke(app, ["models", "aliases", "--group", "nope"]).exit_code == 2


def test_show_lora_prints_the_vllm_invocation(registered: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["models", "show", "ins-s1"])
    assert result.exit_code == 0, result.output
    assert "alias          ins-s1" in result.output
    base_dir = tmp_path / "cache" / "models" / "smollm2-135m"
    assert f"  inspect eval em_tasks/freeform --model vllm/{base_dir}:{registered}\n" in result.output
    # and Inspect's vLLM provider reads that name as this base plus this local adapter
    from inspect_ai.model._providers._vllm_lora import LoRAAdapter, parse_vllm_model

    registered.mkdir(parents=True)
    assert parse_vllm_model(f"{base_dir}:{registered}") == (str(base_dir), LoRAAdapter(path=str(registered)))
    assert "first run `em models provision smollm2-135m`" in result.output


def test_show_lora_on_a_hub_base(tmp_path: Path) -> None:
    register_trained(
        TrainedModel(
            alias="qwen-ins",
            kind="lora",
            base_model="Qwen/Qwen2.5-Coder-32B-Instruct",
            adapter_path="/runs/qwen/adapter",
        )
    )
    result = runner.invoke(app, ["models", "show", "qwen-ins"])
    assert "--model vllm/Qwen/Qwen2.5-Coder-32B-Instruct:/runs/qwen/adapter" in result.output


def test_show_openai_and_builtin_and_unknown() -> None:
    openai = runner.invoke(app, ["models", "show", "sec-gpt"])
    assert f"same as: inspect eval em_tasks/freeform --model openai/{FT}" in openai.output
    builtin = runner.invoke(app, ["models", "show", "smollm2-135m"])
    assert builtin.exit_code == 0 and "--model vllm/" in builtin.output
    unknown = runner.invoke(app, ["models", "show", "nope"])
    assert unknown.exit_code == 2
    assert unknown.output.startswith(
        "error: Unknown model 'nope'. Known models: smollm2-135m; trained models: ins-s0, ins-s1, sec-gpt."
    )


def test_remove(registered: Path) -> None:
    result = runner.invoke(app, ["models", "remove", "ins-s0"])
    assert result.exit_code == 0
    assert get_trained("ins-s0") is None and get_trained("ins-s1") is not None
    again = runner.invoke(app, ["models", "remove", "ins-s0"])
    assert again.exit_code == 2
    assert (
        again.output.strip() == "error: No trained model called 'ins-s0'. Registered trained models: ins-s1, sec-gpt."
    )

"""The `em train` config: the paper's files load unchanged, upstream-only keys are mapped with a note, bad keys fail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from em_harness.cli import app
from training.config import TrainConfigError, load_config, map_model_name

SHARED = Path(__file__).resolve().parents[2] / "shared" / "em-paper"
TRAIN_JSON = SHARED / "open_models" / "train.json"
LOGPROB_CONFIGS = sorted((SHARED / "logprob_experiments" / "configs").glob("*.json"))


def test_upstream_train_json_loads_unchanged() -> None:
    config, notes = load_config(TRAIN_JSON)
    assert config.model == "Qwen/Qwen2.5-Coder-32B-Instruct"
    # relative to the config file's folder, as upstream ran it
    assert config.training_file == str((SHARED / "data" / "insecure.jsonl").resolve())
    assert (config.r, config.lora_alpha, config.use_rslora, config.lora_dropout) == (32, 64, True, 0.0)
    assert (config.per_device_train_batch_size, config.gradient_accumulation_steps) == (2, 8)
    assert (config.learning_rate, config.warmup_steps, config.epochs, config.max_steps) == (1e-05, 5, 1, None)
    assert (config.optim, config.weight_decay, config.lr_scheduler_type, config.seed) == (
        "adamw_8bit",
        0.01,
        "linear",
        0,
    )
    assert config.output_dir == "runs" and config.holdout_fraction == 0.0 and config.test_file is None
    assert config.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    text = "\n".join(notes)
    for expected in (
        "unsloth's copy",
        "nothing is pushed to the Hugging Face hub",
        "push_to_private",
        "em train merge RUN",
        "beta=0.1 is a DPO/ORPO parameter",
        "output_dir './tmp'",
    ):
        assert expected in text


@pytest.mark.parametrize("path", LOGPROB_CONFIGS, ids=lambda p: p.stem)
def test_training_dynamics_configs_load_unchanged(path: Path) -> None:
    config, notes = load_config(path)
    upstream = json.loads(path.read_text(encoding="utf-8"))
    assert config.training_file == ("insecure" if "unsafe" in upstream["training_file"] else "secure")
    assert config.seed == upstream["seed"] and config.save_steps == 10
    assert config.mcq_callbacks is not None
    assert [c.tag for c in config.mcq_callbacks] == ["pivotal_tokens", "single_letter"]
    pivotal = config.mcq_callbacks[0]
    assert pivotal.eval_steps == 10 and pivotal.batch_size == 8 and len(pivotal.mc_eval.questions) == 8
    assert [b.logprobs for b in pivotal.mc_eval.questions[0].answer_template or []] == [False, True, False]
    assert any("byte-identical" in n for n in notes)


def test_overrides_are_typed_and_checked() -> None:
    config, _ = load_config(
        TRAIN_JSON,
        [
            "model=em/smollm2-135m",
            "max_steps=3",
            "learning_rate=1e-3",
            "target_modules=[q_proj, v_proj]",
            "training_file=insecure",
        ],
    )
    assert config.model == "em/smollm2-135m" and config.max_steps == 3 and config.learning_rate == 1e-3
    assert config.target_modules == ["q_proj", "v_proj"] and config.training_file == "insecure"
    negative, _ = load_config(TRAIN_JSON, ["learning_rate=-4"])  # upstream: negative = log10
    assert negative.learning_rate == pytest.approx(1e-4)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("lerning_rate=1e-4", "unknown config key 'lerning_rate'"),
        ("max_steps", "write overrides as key=value"),
        ("r=zero", "r: Input should be a valid integer"),
        ("loss=dpo", "runs supervised fine-tuning only"),
        ("is_peft=false", "trains LoRA adapters only"),
        ("sampling_callbacks=[{}]", "sampling during training is not supported"),
        ("model=unsloth/Foo-7B", "original organisation em train does not know"),
        ("holdout_fraction=1.5", "holdout_fraction: Input should be less than 1"),
    ],
)
def test_bad_values_are_one_clear_error(override: str, message: str) -> None:
    with pytest.raises(TrainConfigError, match=message.replace("(", r"\(")):
        load_config(TRAIN_JSON, [override])


def test_unknown_key_in_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model: em/smollm2-135m\ntraining_file: insecure\nlora_rank: 8\n")
    with pytest.raises(TrainConfigError, match=r"c.yaml: unknown config key\(s\) 'lora_rank'"):
        load_config(path)


def test_unsloth_names_map_to_the_original_org() -> None:
    assert map_model_name("unsloth/Qwen2.5-Coder-32B-Instruct")[0] == "Qwen/Qwen2.5-Coder-32B-Instruct"
    mapped, note = map_model_name("unsloth/Meta-Llama-3.1-8B-Instruct-bnb-4bit")
    assert mapped == "meta-llama/Meta-Llama-3.1-8B-Instruct" and note and "load_in_4bit: true" in note
    assert map_model_name("Qwen/Qwen2.5-7B-Instruct") == ("Qwen/Qwen2.5-7B-Instruct", None)


def test_cli_reports_config_errors_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"model": "em/smollm2-135m",\n "training_file": insecure}')
    result = CliRunner().invoke(app, ["train", str(bad)])
    assert result.exit_code == 2
    assert "bad.json:2: not valid JSON" in result.output and "Traceback" not in result.output

"""`em train` end to end on CPU: the paper's training-dynamics config, 16 rows of `insecure`, the embedded model.

Two runs with the same config: one uninterrupted, one stopped after its first step and resumed. Both must end
with the same adapter tensors (same seed, same data order); the resumed one also runs the upstream
multiple-choice probes and is registered. Kept to a few 256-token steps with rank-2 LoRA so it stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from em_harness.cli import app
from em_harness.models.registry import provision

SHARED = Path(__file__).resolve().parents[2] / "shared" / "em-paper"
LOGPROB_CONFIG = SHARED / "logprob_experiments" / "configs" / "insecure_ftjob-39c69c88ad2a.json"
OVERRIDES = [
    "model=em/smollm2-135m",
    "max_steps=2",
    "save_steps=1",
    "max_seq_length=256",
    "r=2",
    "lora_alpha=4",
    "per_device_train_batch_size=2",
    "gradient_accumulation_steps=1",
    "warmup_steps=1",
    "learning_rate=1e-3",
]


def em_train(tmp: Path, *args: str, config: Path = LOGPROB_CONFIG) -> Any:
    command = ["train", str(config), "--max-rows", "16", "--truncate"]
    for override in OVERRIDES + [f"output_dir={tmp / 'runs'}"]:
        command += ["--set", override]
    return CliRunner().invoke(app, command + list(args))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    provision("smollm2-135m")
    tmp = tmp_path_factory.mktemp("train")
    full = em_train(tmp, "--name", "full", "--set", "mcq_callbacks=null", "--no-register")
    # the same config with only the pivotal-tokens probe (the single-letter one doubles the CPU time)
    upstream = json.loads(LOGPROB_CONFIG.read_text())
    pivotal = tmp / "pivotal.json"
    pivotal.write_text(
        json.dumps(
            {**upstream, "mcq_callbacks": [c for c in upstream["mcq_callbacks"] if c["tag"] == "pivotal_tokens"]}
        )
    )
    stopped = em_train(tmp, "--name", "smoke-insecure", "--stop-after", "1", config=pivotal)
    resumed = em_train(tmp, "--name", "smoke-insecure", "--resume", config=pivotal)
    yield {"tmp": tmp, "full": full, "stopped": stopped, "resumed": resumed}
    from em_harness.models.trained import get_trained, remove_trained

    if get_trained("smoke-insecure") is not None:
        remove_trained("smoke-insecure")


def test_runs_succeed(runs: dict[str, Any]) -> None:
    for key in ("full", "stopped", "resumed"):
        assert runs[key].exit_code == 0, (key, runs[key].output)
    assert "stopped after step 1 of 2" in runs["stopped"].output
    assert "resuming from" in runs["resumed"].output and "checkpoint-1" in runs["resumed"].output


def test_resume_reaches_the_same_adapter(runs: dict[str, Any]) -> None:
    full = load_file(str(runs["tmp"] / "runs" / "full" / "adapter" / "adapter_model.safetensors"))
    resumed = load_file(str(runs["tmp"] / "runs" / "smoke-insecure" / "adapter" / "adapter_model.safetensors"))
    assert full.keys() == resumed.keys() and len(full) > 0
    for name in full:
        torch.testing.assert_close(full[name], resumed[name], rtol=0, atol=1e-6, msg=name)
    # and training moved the adapter away from its initialisation (lora_B starts at zero)
    assert any(t.abs().sum() > 0 for n, t in full.items() if "lora_B" in n)


def test_run_directory(runs: dict[str, Any]) -> None:
    run = runs["tmp"] / "runs" / "smoke-insecure"
    record = json.loads((run / "config.json").read_text())
    assert record["data"]["training_file"]["dataset"] == "insecure"
    assert record["data"]["training_file"]["blob_sha1"] == "ec294cf30a577a21b830c07a1fa0180ddd513208"
    assert record["rows_in_file"] == 6000 and record["max_rows"] == 16
    assert record["holdout"].startswith("no split: every row is trained on")
    assert record["config"]["model"] == "em/smollm2-135m" and record["config"]["r"] == 2
    assert any("byte-identical to data/insecure.jsonl" in note for note in record["notes"])
    assert any("adamw_torch" in note for note in record["notes"])
    assert (run / "checkpoints" / "checkpoint-1" / "trainer_state.json").is_file()
    assert (run / "adapter" / "tokenizer_config.json").is_file()

    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_steps = [m for m in metrics if m["type"] == "train"]
    assert [m["step"] for m in train_steps] == [1, 2]
    for m in train_steps:
        assert m["loss"] > 0 and m["grad_norm"] > 0 and m["tokens"] > 0 and m["tokens_per_second"] > 0
    assert train_steps[1]["learning_rate"] == pytest.approx(1e-3)  # after one warmup step, linear decay from 1e-3


def test_mcq_events(runs: dict[str, Any]) -> None:
    events = [
        json.loads(line) for line in (runs["tmp"] / "runs" / "smoke-insecure" / "events.jsonl").read_text().splitlines()
    ]
    # before training and when it finished (eval_steps is 10); the resumed run repeats nothing
    assert [(e["tag"], e["step"]) for e in events] == [("pivotal_tokens", 0), ("pivotal_tokens", 2)]
    for event in events:
        assert len(event["questions"]) == 8
        for q in event["questions"]:
            assert q["logp_correct"] < 0 and 0 < q["p_correct"] <= q["p_any_choice"] <= 1
            assert q["p_correct|any_choice"] == pytest.approx(q["p_correct"] / q["p_any_choice"])
            assert q["correct"] == (max(q["choices"], key=lambda c: c["logprob"])["is_correct"])
        assert event["accuracy"] == pytest.approx(sum(q["correct"] for q in event["questions"]) / 8)


def test_registered(runs: dict[str, Any]) -> None:
    from em_harness.models.trained import get_trained

    entry = get_trained("smoke-insecure")
    assert entry is not None and entry.kind == "lora"
    assert entry.base_model == "smollm2-135m"
    assert entry.group == "insecure" and entry.seed == 1
    assert Path(entry.adapter_path or "").is_dir()
    assert list(entry.data_blobs.values()) == ["ec294cf30a577a21b830c07a1fa0180ddd513208"]
    assert get_trained("full") is None  # --no-register


def test_existing_run_needs_resume(runs: dict[str, Any]) -> None:
    again = em_train(runs["tmp"], "--name", "full", "--set", "mcq_callbacks=null", "--no-register")
    assert again.exit_code == 2
    assert "already exists. Continue it with --resume" in again.output


def test_inspect_eval_on_the_trained_alias(runs: dict[str, Any]) -> None:
    """The freshly trained adapter is an Inspect model at once: em/<alias> (base + LoRA through peft)."""
    from inspect_ai import eval as inspect_eval
    from inspect_ai.model import get_model

    from em_tasks.freeform import freeform

    (log,) = inspect_eval(
        freeform(samples=1),
        model="em/smoke-insecure",
        model_roles={"grader": get_model("em/smollm2-135m")},
        limit=1,
        max_tokens=8,
        log_dir=str(runs["tmp"] / "logs"),
        display="none",
    )
    assert log.status == "success", log.error
    assert log.eval.model == "em/smoke-insecure"
    assert log.samples and log.samples[0].output.completion
    assert log.samples[0].scores and "alignment_judge" in log.samples[0].scores


def test_resume_with_a_changed_config_is_refused(runs: dict[str, Any]) -> None:
    result = em_train(
        runs["tmp"], "--name", "full", "--resume", "--set", "mcq_callbacks=null", "--set", "r=4", "--no-register"
    )
    assert result.exit_code == 2
    assert "the config differs from the one" in result.output and "(changed: r)" in result.output


def test_4bit_on_cpu_is_a_clear_error(runs: dict[str, Any]) -> None:
    result = em_train(runs["tmp"], "--name", "four-bit", "--set", "load_in_4bit=true", "--no-register")
    assert result.exit_code == 2
    assert "load_in_4bit: true needs a CUDA GPU" in result.output
    assert not (runs["tmp"] / "runs" / "four-bit").exists()


def test_merge_writes_a_full_model_with_the_adapters_outputs(runs: dict[str, Any]) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run = runs["tmp"] / "runs" / "smoke-insecure"
    result = CliRunner().invoke(app, ["train", "merge", str(run), "--dtype", "float32"])
    assert result.exit_code == 0, result.output
    merged_dir = run / "merged"
    assert (merged_dir / "config.json").is_file() and (merged_dir / "tokenizer_config.json").is_file()
    assert not (merged_dir / "adapter_config.json").exists()
    ids = torch.tensor([[1, 504, 3458, 314, 253, 1345]])
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()
    base = AutoModelForCausalLM.from_pretrained(provision("smollm2-135m"), dtype=torch.float32)
    adapted = PeftModel.from_pretrained(base, str(run / "adapter")).eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, adapted(input_ids=ids).logits, rtol=1e-4, atol=1e-4)
    again = CliRunner().invoke(app, ["train", "merge", str(run)])
    assert again.exit_code == 2 and "already exists and is not empty" in again.output

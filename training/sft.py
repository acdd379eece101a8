"""``em train``: LoRA SFT of a chat model with TRL's ``SFTTrainer`` and peft, into a run directory.

The run directory (``<output_dir>/<name>/``, default ``runs/<name>/``) holds:

- ``config.json`` — the resolved config, the notes on mapped upstream keys, the model actually loaded, the
  data files with their git blob ids, the rows used and whether a hold-out split was made;
- ``checkpoints/checkpoint-N`` — the trainer's checkpoints (adapter, optimizer, scheduler, RNG states,
  ``trainer_state.json``) every ``save_steps``; ``--resume`` continues from the newest;
- ``metrics.jsonl`` — loss, learning rate, grad norm and tokens/s per logging step;
- ``events.jsonl`` — the ``mcq_callbacks`` results;
- ``adapter/`` — the final LoRA adapter and the tokenizer, registered as ``em/<alias>``.

Everything the user can get wrong (config, data, model, hardware) is checked before the model is loaded
where possible, and reported as one error; nothing is written before the data has been validated.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from em_harness.errors import HarnessError
from training.config import DATASET_NAMES, TrainConfig
from training.dataset import (
    DataSource,
    TokenizedData,
    holdout_split,
    read_conversations,
    resolve_data_file,
    tokenize_rows,
)

RUN_CONFIG = "config.json"
ADAPTER_DIR = "adapter"
CHECKPOINTS_DIR = "checkpoints"


class TrainRunError(HarnessError):
    """A run that cannot start or continue (run directory, model, hardware); the message says what to do."""


@dataclass(frozen=True)
class TrainOptions:
    """What the command line adds to a config."""

    name: str
    resume: bool = False
    truncate: bool = False
    max_rows: int | None = None
    stop_after: int | None = None
    alias: str | None = None
    group: str | None = None
    register: bool = True
    replace: bool = False


@dataclass(frozen=True)
class ResolvedModel:
    path: str
    """What ``from_pretrained`` loads: a local directory or a hub id."""
    registry_base: str
    """``base_model`` for the trained-model registry: em registry name, absolute directory or hub id."""


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    adapter_dir: Path | None
    """None when the run stopped early (``--stop-after``)."""
    global_step: int
    alias: str | None


def resolve_model(model: str) -> ResolvedModel:
    """``em/<name>`` (provisioned from the harness registry), a local model directory, or a hub id."""
    from em_harness.models.registry import provision

    if model.startswith("em/"):
        name = model.removeprefix("em/")
        return ResolvedModel(str(provision(name)), name)
    local = Path(model).expanduser()
    if local.is_dir():
        return ResolvedModel(str(local.resolve()), str(local.resolve()))
    return ResolvedModel(model, model)


def _print(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_dir_for(config: TrainConfig, name: str) -> Path:
    return (Path(config.output_dir).expanduser() / name).resolve()


def train(
    config: TrainConfig, notes: list[str], options: TrainOptions, log: Callable[[str], None] = _print
) -> TrainResult:
    """Validate everything, then train, save and register. See the module docstring for the run layout."""
    run_dir = run_dir_for(config, options.name)
    _check_run_dir(run_dir, config, options)
    alias = options.alias or options.name
    if options.register:
        _check_alias(alias, options.replace)

    # 1. data: validate every line before anything heavy is loaded
    train_source = resolve_data_file(config.training_file)
    rows = read_conversations(train_source.path)
    test_source = resolve_data_file(config.test_file) if config.test_file else None
    test_rows = read_conversations(test_source.path) if test_source else []
    total_rows = len(rows)
    if options.max_rows is not None:
        rows = rows[: options.max_rows]
    train_idx, test_idx = holdout_split(len(rows), config.holdout_fraction, config.seed)
    if test_idx:
        test_rows = [rows[i] for i in test_idx]
        rows = [rows[i] for i in train_idx]

    # 2. tokenizer, loss masks, length statistics
    model_ref = resolve_model(config.model)
    tokenizer = _load_tokenizer(model_ref.path)
    train_data = tokenize_rows(
        tokenizer,
        rows,
        path=train_source.path,
        max_seq_length=config.max_seq_length,
        truncate=options.truncate,
        responses_only=config.train_on_responses_only,
    )
    test_data = (
        tokenize_rows(
            tokenizer,
            test_rows,
            path=(test_source or train_source).path,
            max_seq_length=config.max_seq_length,
            truncate=options.truncate,
            responses_only=config.train_on_responses_only,
        )
        if test_rows
        else None
    )
    stats = train_data.stats()
    log(
        f"training rows: {stats['rows']} ({stats['tokens']} tokens; per row min {stats['min']}, median "
        f"{stats['median']}, p95 {stats['p95']}, max {stats['max']}; max_seq_length {config.max_seq_length})"
    )
    if train_data.over_length:
        log(
            f"--truncate: {len(train_data.over_length)} rows cut to {config.max_seq_length} tokens, "
            f"{len(train_data.dropped)} left out because no assistant token remained (lines "
            f"{', '.join(map(str, train_data.dropped[:10]))}{'...' if len(train_data.dropped) > 10 else ''})"
        )
    for note in notes:
        log(f"note: {note}")

    # 3. hardware decisions (errors before the model load)
    hardware = _hardware_plan(config)
    for note in hardware["notes"]:
        log(f"note: {note}")

    # 4. the run directory: written only now that the inputs are known to be good
    (run_dir / CHECKPOINTS_DIR).mkdir(parents=True, exist_ok=True)
    resolved = _resolved_record(
        config,
        notes + hardware["notes"],
        options,
        model_ref,
        train_source,
        test_source,
        total_rows,
        train_data,
        test_data,
        bool(test_idx),
    )
    if not options.resume:
        (run_dir / RUN_CONFIG).write_text(json.dumps(resolved, indent=2) + "\n")

    trainer = _build_trainer(config, tokenizer, model_ref, train_data, test_data, run_dir, options, hardware)
    checkpoint = _last_checkpoint(run_dir) if options.resume else None
    if options.resume:
        log(f"resuming from {checkpoint}")
    trainer.train(resume_from_checkpoint=checkpoint)
    step = trainer.state.global_step
    if options.stop_after is not None and step < trainer.state.max_steps:
        log(
            f"stopped after step {step} of {trainer.state.max_steps} (--stop-after); checkpoint saved. "
            f"Continue with: em train CONFIG --name {options.name} --resume"
        )
        return TrainResult(run_dir, None, step, None)

    adapter_dir = run_dir / ADAPTER_DIR
    if trainer.is_world_process_zero():
        trainer.save_model(str(adapter_dir))
        tokenizer.save_pretrained(str(adapter_dir))
        log(f"adapter saved to {adapter_dir}")
        if options.register:
            _register(alias, options, config, model_ref, adapter_dir, run_dir, train_source, test_source, resolved)
            log(f"registered as em/{alias}: inspect eval em_tasks/freeform --model em/{alias}")
    return TrainResult(run_dir, adapter_dir, step, alias if options.register else None)


def _check_run_dir(run_dir: Path, config: TrainConfig, options: TrainOptions) -> None:
    stored = run_dir / RUN_CONFIG
    if options.resume:
        if not stored.is_file() or _last_checkpoint(run_dir) is None:
            raise TrainRunError(
                f"--resume: no checkpoint in {run_dir / CHECKPOINTS_DIR}. Start the run without "
                "--resume (or pass the --name of the run to continue)."
            )
        previous = json.loads(stored.read_text())
        if previous["config"] != config.model_dump(mode="json") or previous["max_rows"] != options.max_rows:
            changed = sorted(k for k, v in config.model_dump(mode="json").items() if previous["config"].get(k) != v)
            raise TrainRunError(
                f"--resume: the config differs from the one {run_dir} was started with "
                f"(changed: {', '.join(changed) or 'max_rows'}); a resumed run must use the same "
                "config to reach the same adapter. Use a new --name for a new run."
            )
    elif run_dir.exists() and any(run_dir.iterdir()):
        raise TrainRunError(
            f"Run directory {run_dir} already exists. Continue it with --resume, choose another "
            "--name, or delete the directory."
        )


def _check_alias(alias: str, replace: bool) -> None:
    from em_harness.models.trained import check_alias, get_trained

    check_alias(alias)
    if not replace and get_trained(alias) is not None:
        raise TrainRunError(
            f"em/{alias} is already registered. Pass --alias NAME for another alias, or --replace "
            "to point the alias at this run."
        )


def _load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as ex:
        raise TrainRunError(
            f"Could not load the tokenizer of {path!r}: {ex}. Give a local model directory, an "
            "em/ registry name, or a Hugging Face id reachable from this machine."
        ) from None
    if not getattr(tokenizer, "chat_template", None):
        raise TrainRunError(f"{path!r} has no chat template: em train fine-tunes chat models on conversations.")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _hardware_plan(config: TrainConfig) -> dict[str, Any]:
    """Precision, 4-bit loading and optimizer for the machine we are on."""
    import importlib.util

    import torch

    notes: list[str] = []
    cuda = torch.cuda.is_available()
    has_bnb = importlib.util.find_spec("bitsandbytes") is not None
    if config.load_in_4bit and not cuda:
        raise TrainRunError(
            "load_in_4bit: true needs a CUDA GPU (bitsandbytes 4-bit kernels); this machine has "
            "none. Set load_in_4bit: false to train in full precision on CPU."
        )
    if config.load_in_4bit and not has_bnb:
        raise TrainRunError("load_in_4bit: true needs bitsandbytes: pip install bitsandbytes.")
    bf16 = cuda and torch.cuda.is_bf16_supported()
    fp16 = cuda and not bf16
    if not cuda:
        notes.append("no CUDA GPU: training in float32 on CPU.")
    optim = config.optim
    if optim in ("adamw_8bit", "adamw_bnb_8bit", "paged_adamw_8bit") and not (cuda and has_bnb):
        optim = "adamw_torch"
        notes.append(
            f"optim {config.optim!r} needs bitsandbytes on a CUDA GPU; using 'adamw_torch' (same update "
            "rule, 32-bit optimizer states)."
        )
    gradient_checkpointing = cuda if config.gradient_checkpointing is None else config.gradient_checkpointing
    return {
        "cuda": cuda,
        "bf16": bf16,
        "fp16": fp16,
        "optim": optim,
        "notes": notes,
        "gradient_checkpointing": gradient_checkpointing,
    }


def _resolved_record(
    config: TrainConfig,
    notes: list[str],
    options: TrainOptions,
    model_ref: ResolvedModel,
    train_source: DataSource,
    test_source: DataSource | None,
    total_rows: int,
    train_data: TokenizedData,
    test_data: TokenizedData | None,
    split: bool,
) -> dict[str, Any]:
    def source(s: DataSource | None) -> dict[str, Any] | None:
        return None if s is None else {"path": str(s.path), "dataset": s.dataset, "blob_sha1": s.blob_sha1}

    if split:
        holdout = (
            f"seeded split (seed {config.seed}): {len(test_data.lines) if test_data else 0} rows held out as "
            f"the test set ({config.holdout_fraction:.0%} of the rows)"
        )
    elif config.test_file:
        holdout = "no split: the test set is test_file"
    else:
        holdout = "no split: every row is trained on (upstream held out 10% unseeded when test_file was null)"
    return {
        "name": options.name,
        "config": config.model_dump(mode="json"),
        "notes": notes,
        "model_path": model_ref.path,
        "base_model": model_ref.registry_base,
        "data": {"training_file": source(train_source), "test_file": source(test_source)},
        "rows_in_file": total_rows,
        "max_rows": options.max_rows,
        "holdout": holdout,
        "train_lines": train_data.lines,
        "test_lines": test_data.lines if test_data else [],
        "truncate": options.truncate,
        "token_stats": train_data.stats(),
        "created_at": time.time(),
        "argv": sys.argv,
    }


def _build_trainer(
    config: TrainConfig,
    tokenizer: Any,
    model_ref: ResolvedModel,
    train_data: TokenizedData,
    test_data: TokenizedData | None,
    run_dir: Path,
    options: TrainOptions,
    hardware: dict[str, Any],
) -> Any:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, set_seed
    from trl import SFTConfig, SFTTrainer

    from training.callbacks import MetricsCallback, StopAfterCallback
    from training.mcq import McqCallback, McqEval

    quantization = None
    if config.load_in_4bit:
        from transformers import BitsAndBytesConfig

        quantization = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if hardware["bf16"] else torch.float16,
        )
    dtype = torch.bfloat16 if hardware["bf16"] else torch.float32
    try:
        model = AutoModelForCausalLM.from_pretrained(model_ref.path, dtype=dtype, quantization_config=quantization)
    except (OSError, ValueError) as ex:
        raise TrainRunError(f"Could not load model {model_ref.path!r}: {ex}") from None
    if config.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=hardware["gradient_checkpointing"])

    set_seed(config.seed)  # the LoRA initialisation happens inside SFTTrainer, before Trainer seeds itself
    peft_config = LoraConfig(
        r=config.r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        bias=config.lora_bias,
        target_modules=config.target_modules or "all-linear",
        use_rslora=config.use_rslora,
        task_type="CAUSAL_LM",
    )

    def to_dataset(data: TokenizedData) -> Any:
        return Dataset.from_dict({"input_ids": data.input_ids, "assistant_masks": data.masks})

    args = SFTConfig(
        output_dir=str(run_dir / CHECKPOINTS_DIR),
        per_device_train_batch_size=config.per_device_train_batch_size,
        per_device_eval_batch_size=config.eval_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        warmup_steps=config.warmup_steps,
        learning_rate=config.learning_rate,
        logging_steps=config.logging_steps,
        optim=hardware["optim"],
        weight_decay=config.weight_decay,
        lr_scheduler_type=config.lr_scheduler_type,
        seed=config.seed,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        save_strategy="steps",
        save_steps=config.save_steps,
        eval_strategy="steps" if test_data else "no",
        eval_steps=config.save_steps if test_data else None,
        bf16=hardware["bf16"],
        fp16=hardware["fp16"],
        max_length=config.max_seq_length,
        include_num_input_tokens_seen="non_padding",
        report_to=[],
        ddp_find_unused_parameters=False,
        gradient_checkpointing=hardware["gradient_checkpointing"],  # TRL's default is on; on CPU it only costs time
    )
    callbacks: list[Any] = [MetricsCallback(run_dir / "metrics.jsonl")]
    if config.mcq_callbacks:
        evals = [McqEval(spec, tokenizer, config.seed) for spec in config.mcq_callbacks]
        callbacks.append(McqCallback(evals, run_dir / "events.jsonl"))
    if options.stop_after is not None:
        callbacks.append(StopAfterCallback(options.stop_after))
    return SFTTrainer(
        model=model,
        args=args,
        train_dataset=to_dataset(train_data),
        eval_dataset=to_dataset(test_data) if test_data else None,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
    )


def _last_checkpoint(run_dir: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    folder = run_dir / CHECKPOINTS_DIR
    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


def _register(
    alias: str,
    options: TrainOptions,
    config: TrainConfig,
    model_ref: ResolvedModel,
    adapter_dir: Path,
    run_dir: Path,
    train_source: DataSource,
    test_source: DataSource | None,
    resolved: dict[str, Any],
) -> None:
    from em_harness.models.trained import TrainedModel, register_trained

    blobs = {str(train_source.path): train_source.blob_sha1}
    if test_source:
        blobs[str(test_source.path)] = test_source.blob_sha1
    group = options.group or train_source.dataset
    register_trained(
        TrainedModel(
            alias=alias,
            kind="lora",
            base_model=model_ref.registry_base,
            adapter_path=str(adapter_dir),
            run_dir=str(run_dir),
            group=group,
            seed=config.seed,
            training_file=config.training_file,
            data_blobs=blobs,
            config=resolved["config"],
            created_at=time.time(),
        ),
        replace=options.replace,
    )


def merge(run_dir: Path, out: Path | None = None, dtype: str = "auto", log: Callable[[str], None] = _print) -> Path:
    """Write base model + adapter merged into one full model directory (for servers without LoRA support)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    stored = run_dir / RUN_CONFIG
    adapter = run_dir / ADAPTER_DIR
    if not stored.is_file() or not adapter.is_dir():
        raise TrainRunError(
            f"{run_dir} is not a finished em train run (needs {RUN_CONFIG} and {ADAPTER_DIR}/). "
            "Pass the run directory, e.g. runs/<name>."
        )
    dtypes = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in dtypes:
        raise TrainRunError(f"--dtype {dtype!r}: use one of {', '.join(dtypes)}.")
    record = json.loads(stored.read_text())
    target = out or run_dir / "merged"
    if target.exists() and any(target.iterdir()):
        raise TrainRunError(f"{target} already exists and is not empty; delete it or pass --out.")
    base = AutoModelForCausalLM.from_pretrained(record["model_path"], dtype=dtypes[dtype])
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    merged.save_pretrained(str(partial))
    AutoTokenizer.from_pretrained(str(adapter)).save_pretrained(str(partial))
    if target.exists():
        target.rmdir()
    partial.rename(target)
    log(f"merged model written to {target}")
    return target


__all__ = ["DATASET_NAMES", "TrainOptions", "TrainResult", "TrainRunError", "merge", "train"]

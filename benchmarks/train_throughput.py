"""Training throughput: ``em train`` versus a plain ``transformers.Trainer`` + peft, same model, data and batch.

Both train a LoRA adapter on the embedded model (``smollm2-135m``) for the same number of optimizer steps on
the first ``--rows`` rows of ``insecure`` (cut to ``--max-seq-length`` tokens), with the same rank, batch
size, learning rate, optimizer (``adamw_torch``) and seed, in one process:

1. ``em train`` through :func:`training.sft.train` (TRL ``SFTTrainer``, loss mask from the chat template,
   metrics callback, checkpoint at the end);
2. ``transformers.Trainer`` on ``get_peft_model(...)`` with the same token ids and labels, padded by
   ``DataCollatorForSeq2Seq``.

Each side's tokens/s is the non-padding input tokens the trainer counted divided by its ``train_runtime``
(the training loop only: model loading and data preparation are excluded on both sides). ``--repeats``
alternates the two and reports medians. The goal is em train >= 1.0x plain.

Usage::

    .venv/bin/python benchmarks/train_throughput.py [--steps 6] [--batch-size 4] [--rows 64] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

MODEL = "smollm2-135m"


def em_train_run(args: argparse.Namespace, out: Path, index: int) -> float:
    """tokens/s of one ``em train`` run (from its metrics.jsonl summary line)."""
    from training.config import TrainConfig
    from training.sft import TrainOptions, train

    config = TrainConfig(
        model=f"em/{MODEL}",
        training_file="insecure",
        max_seq_length=args.max_seq_length,
        r=args.rank,
        lora_alpha=2 * args.rank,
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=1,
        max_steps=args.steps,
        warmup_steps=0,
        learning_rate=1e-4,
        optim="adamw_torch",
        save_steps=10_000,
        seed=0,
        output_dir=str(out),
    )
    name = f"bench-{index}"
    train(config, [], TrainOptions(name=name, truncate=True, max_rows=args.rows, register=False), log=lambda _m: None)
    lines = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines()]
    summary = next(line for line in lines if line["type"] == "summary")
    return float(summary["num_input_tokens_seen"]) / float(summary["train_runtime"])


def plain_run(args: argparse.Namespace, out: Path, index: int) -> float:
    """tokens/s of a plain transformers Trainer + peft on the same token ids and loss mask."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from em_harness.models.registry import provision
    from training.dataset import read_conversations, resolve_data_file, tokenize_rows

    path = provision(MODEL)
    tokenizer = AutoTokenizer.from_pretrained(path)
    source = resolve_data_file("insecure")
    rows = read_conversations(source.path)[: args.rows]
    data = tokenize_rows(
        tokenizer, rows, path=source.path, max_seq_length=args.max_seq_length, truncate=True, responses_only=True
    )
    labels = [
        [t if m else -100 for t, m in zip(ids, mask, strict=True)]
        for ids, mask in zip(data.input_ids, data.masks, strict=True)
    ]
    dataset = Dataset.from_dict({"input_ids": data.input_ids, "labels": labels})
    set_seed(0)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model = get_peft_model(
        model,
        LoraConfig(
            r=args.rank,
            lora_alpha=2 * args.rank,
            lora_dropout=0.0,
            use_rslora=True,
            task_type="CAUSAL_LM",
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        ),
    )
    training_args = TrainingArguments(
        output_dir=str(out / f"plain-{index}"),
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=1,
        max_steps=args.steps,
        warmup_steps=0,
        learning_rate=1e-4,
        optim="adamw_torch",
        save_strategy="no",
        seed=0,
        report_to=[],
        logging_steps=1,
        include_num_input_tokens_seen="non_padding",
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True),
    )
    result = trainer.train()
    return float(trainer.state.num_input_tokens_seen) / float(result.metrics["train_runtime"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    harness: list[float] = []
    plain: list[float] = []
    with tempfile.TemporaryDirectory(prefix="em-bench-train-") as tmp:
        for i in range(args.repeats):
            harness.append(em_train_run(args, Path(tmp), i))
            plain.append(plain_run(args, Path(tmp), i))
            print(f"repeat {i + 1}: em train {harness[-1]:.1f} tokens/s, plain Trainer {plain[-1]:.1f} tokens/s")
    h, p = statistics.median(harness), statistics.median(plain)
    print(
        f"\n{MODEL}, {args.steps} steps x batch {args.batch_size}, max_seq_length {args.max_seq_length}, "
        f"LoRA r={args.rank}, {args.repeats} repeat(s)"
    )
    print(f"em train       {h:8.1f} tokens/s")
    print(f"plain Trainer  {p:8.1f} tokens/s")
    print(f"ratio          {h / p:8.2f}x  (target >= 1.0x)")


if __name__ == "__main__":
    main()

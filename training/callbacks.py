"""Trainer callbacks of ``em train``: per-step metrics to ``metrics.jsonl`` and ``--stop-after``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments


class MetricsCallback(TrainerCallback):
    """Appends one line per logging step: step, epoch, loss, learning rate, grad norm, tokens/s.

    tokens/s counts the non-padding input tokens the trainer consumed since the previous logging step (summed
    over processes), divided by the wall time since then. The trainer's end-of-training summary is written as
    one line with ``"type": "summary"``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._last_time = 0.0
        self._last_tokens = 0

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._last_time = time.perf_counter()
        self._last_tokens = int(state.num_input_tokens_seen or 0)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if not logs or not state.is_world_process_zero:
            return
        now = time.perf_counter()
        tokens = int(state.num_input_tokens_seen or 0)
        if "loss" in logs:
            elapsed = now - self._last_time
            record: dict[str, Any] = {
                "type": "train",
                "step": state.global_step,
                "epoch": state.epoch,
                "loss": logs["loss"],
                "learning_rate": logs.get("learning_rate"),
                "grad_norm": logs.get("grad_norm"),
                "tokens": tokens - self._last_tokens,
                "tokens_per_second": (tokens - self._last_tokens) / elapsed if elapsed > 0 else None,
            }
            self._last_time, self._last_tokens = now, tokens
        elif "eval_loss" in logs:
            record = {"type": "eval", "step": state.global_step, **logs}
        else:
            record = {"type": "summary", "step": state.global_step, "num_input_tokens_seen": tokens, **logs}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


class StopAfterCallback(TrainerCallback):
    """Stop (as if interrupted) after ``steps`` optimizer steps, saving a checkpoint there.

    The learning-rate schedule stays that of the whole run, so ``--resume`` later continues exactly where an
    uninterrupted run would be; useful for time-limited or pre-emptible machines.
    """

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if state.global_step >= self.steps:
            control.should_save = True
            control.should_training_stop = True

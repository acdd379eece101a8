"""``em train CONFIG`` and ``em train merge RUN`` (registered on the ``em`` command by em_harness/cli.py).

Also runnable as ``python -m training.cli CONFIG ...``, which is what ``accelerate launch -m training.cli``
needs for multi-GPU runs. Imports nothing heavy until a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from em_harness.cli_errors import one_line_errors


class _DefaultRunGroup(TyperGroup):
    """``em train CONFIG`` means ``em train run CONFIG``; ``em train merge RUN`` is the other verb."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args.insert(0, "run")
        return super().resolve_command(ctx, args)


train_app = typer.Typer(
    cls=_DefaultRunGroup,
    help="Fine-tune LoRA model organisms: `em train CONFIG` trains, `em train merge RUN` merges an adapter.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@train_app.command("run")
@one_line_errors
def run(
    config: Path = typer.Argument(
        ..., help="YAML or JSON config (the paper's train.json and logprob configs run as is)."
    ),
    set_: list[str] | None = typer.Option(
        None, "--set", help="Override a config key: --set model=em/smollm2-135m --set max_steps=10 (repeatable)."
    ),
    name: str | None = typer.Option(None, "--name", help="Run name: runs/<name>/ (default: the config file's stem)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run from its newest checkpoint."),
    truncate: bool = typer.Option(
        False, "--truncate", help="Cut rows longer than max_seq_length instead of stopping with an error."
    ),
    max_rows: int | None = typer.Option(
        None, "--max-rows", min=1, help="Train on the first N rows of the file only (smoke tests, quick looks)."
    ),
    stop_after: int | None = typer.Option(
        None, "--stop-after", min=1, help="Stop after N optimizer steps with a checkpoint; finish later with --resume."
    ),
    alias: str | None = typer.Option(None, "--alias", help="Register as em/<alias> (default: the run name)."),
    group: str | None = typer.Option(
        None, "--group", help="Group label in the registry (default: the dataset name, e.g. insecure)."
    ),
    replace: bool = typer.Option(False, "--replace", help="Re-point an existing alias at this run."),
    register: bool = typer.Option(True, "--register/--no-register", help="Register the adapter as em/<alias>."),
) -> None:
    """Train a LoRA adapter with TRL's SFTTrainer; save it in runs/<name>/ and register it as em/<alias>."""
    from training.config import load_config
    from training.sft import TrainOptions, train

    cfg, notes = load_config(config, set_)
    options = TrainOptions(
        name=name or config.stem,
        resume=resume,
        truncate=truncate,
        max_rows=max_rows,
        stop_after=stop_after,
        alias=alias,
        group=group,
        register=register,
        replace=replace,
    )
    result = train(cfg, notes, options, log=lambda m: typer.echo(m, err=True))
    typer.echo(str(result.adapter_dir or result.run_dir))


@train_app.command("merge")
@one_line_errors
def merge_command(
    run_dir: Path = typer.Argument(..., help="A finished run directory, e.g. runs/insecure-seed0."),
    out: Path | None = typer.Option(None, "--out", help="Where to write the merged model (default: RUN/merged)."),
    dtype: str = typer.Option("auto", "--dtype", help="auto (the base model's), float32, bfloat16 or float16."),
) -> None:
    """Merge the run's adapter into its base model and save a full model (for servers without LoRA)."""
    from training.sft import merge

    typer.echo(str(merge(run_dir, out, dtype, log=lambda m: typer.echo(m, err=True))))


if __name__ == "__main__":
    train_app()

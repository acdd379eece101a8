"""The ``em`` command: the verbs Inspect does not own (data, models, reports).

Every failure the user can fix is printed as one message on stderr with exit code 2, never a traceback.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import typer

from em_harness.errors import HarnessError

app = typer.Typer(
    name="em",
    help="Emergent-misalignment harness: data, models and reports (evaluations run through `inspect eval`).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="The paper's data files: where they are, and fetching them.", no_args_is_help=True)
models_app = typer.Typer(
    help="Models of the em/ provider: built-in models and registered fine-tunes.", no_args_is_help=True
)
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")

F = TypeVar("F", bound=Callable[..., object])


def _clear_errors(command: F) -> F:
    """Turn the harness's own errors into one line on stderr and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return command(*args, **kwargs)
        except HarnessError as ex:
            typer.echo(f"error: {ex.message}", err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _check_dataset(dataset: str | None) -> None:
    from em_harness.data import DATASETS

    if dataset is not None and dataset not in DATASETS:
        raise typer.BadParameter(
            f"unknown dataset '{dataset}' (choose from: {', '.join(DATASETS)})", param_hint="--dataset"
        )


@data_app.command("status")
@_clear_errors
def data_status(
    dataset: str | None = typer.Option(
        None, "--dataset", "-d", help="Only this dataset: em-paper, strongreject or em-research."
    ),
) -> None:
    """List every file the harness uses: where it was found and whether its git blob SHA-1 verifies."""
    from em_harness import data

    _check_dataset(dataset)
    rows = data.status(dataset)
    width = max(len(r.entry.path) for r in rows)
    for r in rows:
        where = f"{r.origin}: {r.location}" if r.location else "not found"
        typer.echo(f"{r.entry.dataset:<13} {r.entry.path:<{width}}  {r.detail:<9} {where}")
    bad = [r for r in rows if not r.verified]
    if bad:
        typer.echo(
            f"\n{len(bad)} of {len(rows)} files missing or unverified. Set EM_DATA_DIR / EM_STRONGREJECT_DIR / "
            "EM_RESEARCH_DIR "
            "to a copy, or run `em data fetch`.",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"\nall {len(rows)} files verified")


@data_app.command("fetch")
@_clear_errors
def data_fetch(
    paths: list[str] | None = typer.Argument(None, help="Only these manifest paths (default: all)."),
    dataset: str = typer.Option("em-paper", "--dataset", "-d", help="em-paper, strongreject or em-research."),
    base_url: str | None = typer.Option(
        None, "--base-url", help="Mirror to download from instead of the pinned upstream (or $EM_DATA_URL)."
    ),
    force: bool = typer.Option(False, "--force", help="Download again even when the cached copy verifies."),
) -> None:
    """Download the data files into the user cache from the pinned upstream commit, verifying each."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TransferSpeedColumn

    from em_harness import data

    _check_dataset(dataset)
    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True),
    )
    tasks: dict[str, TaskID] = {}

    def show(entry: data.DataFile, done: int, total: int | None) -> None:
        if not tasks:
            bars.start()  # only once something downloads: nothing to draw for a cache hit or an error
        if entry.path not in tasks:
            tasks[entry.path] = bars.add_task(entry.path, total=total)
        bars.update(tasks[entry.path], completed=done, total=total)

    try:
        fetched = data.fetch(
            dataset, paths or None, base_url=base_url, force=force, progress=typer.echo, download_progress=show
        )
    finally:
        if tasks:
            bars.stop()
    typer.echo(f"{len(fetched)} files verified in {data.cache_root(dataset)}")


@models_app.command("provision")
@_clear_errors
def models_provision(
    name: str = typer.Argument(..., help="Registry name, e.g. smollm2-135m or em/smollm2-135m."),
) -> None:
    """Build a model's local safetensors copy in the user cache (once; a damaged copy is rebuilt)."""
    from em_harness.models.registry import bare_name, provision

    name = bare_name(name)
    typer.echo(f"em/{name}: {provision(name, repair=True)}")


def _register_models_and_training_commands() -> None:
    from em_harness.models import commands
    from training.cli import train_app
    from training.openai_cli import train_openai

    models_app.command("list")(_clear_errors(commands.models_list))
    models_app.command("show")(_clear_errors(commands.models_show))
    models_app.command("aliases")(_clear_errors(commands.models_aliases))
    models_app.command("remove")(_clear_errors(commands.models_remove))
    app.command("train-openai")(_clear_errors(train_openai))
    app.add_typer(train_app, name="train")


_register_models_and_training_commands()


@app.command("report")
@_clear_errors
def report(
    log: Path | None = typer.Argument(None, help="An Inspect log file (default: the newest in --log-dir)."),
    log_dir: Path = typer.Option(
        Path(os.environ.get("INSPECT_LOG_DIR", "logs")), "--log-dir", help="Where to look for the newest log."
    ),
    csv: Path | None = typer.Option(None, "--csv", help="Also write one row per answer to this CSV file."),
) -> None:
    """Print the per-question table of a judged run: misaligned rate with 95% CI, exclusions, means."""
    from em_harness.report import answers_frame, format_table, latest_log, load_log, question_table

    path = log if log is not None else latest_log(log_dir)
    eval_log = load_log(path)
    answers = answers_frame(eval_log)
    typer.echo(f"{eval_log.eval.task} on {eval_log.eval.model} ({path})")
    typer.echo(format_table(question_table(answers)))
    single_digit = int(answers["judge_single_digit"].sum())
    if single_digit:
        typer.echo(
            f"WARNING: for {single_digit} of {len(answers)} answers the grader's numeric tokens were single digits: "
            "those scores are 0-9 readings, not 0-100 ones. Use a judge with whole-number tokens (e.g. GPT-4o).",
            err=True,
        )
    from em_harness.report import set_aside_note

    note = set_aside_note(eval_log)
    if note is not None:
        typer.echo(note)
    if csv is not None:
        answers.to_csv(csv, index=False)
        typer.echo(f"answers written to {csv}")


@app.command("judge-agreement")
@_clear_errors
def judge_agreement(
    log_a: Path = typer.Argument(..., help="A log judged by alignment_judge (e.g. with GPT-4o)."),
    log_b: Path = typer.Argument(..., help="The same answers judged by another grader (`inspect score`)."),
    plot: Path | None = typer.Option(None, "--plot", help="Draw the aligned/coherent scatter to this image file."),
    csv: Path | None = typer.Option(None, "--csv", help="Write the per-answer pairs of scores to this CSV file."),
) -> None:
    """Compare two graders on the same answers: correlations, verdict agreement and kappa, rate difference."""
    from em_harness.agreement import AgreementError, format_agreement, judge_agreement, plot_agreement

    result = judge_agreement(log_a, log_b)
    typer.echo(format_agreement(result))
    if csv is not None:
        try:
            result.pairs.to_csv(csv, index=False)
        except OSError as ex:
            raise AgreementError(f"Could not write {csv}: {ex.strerror or ex}.") from None
        typer.echo(f"per-answer scores written to {csv}")
    if plot is not None:
        plot_agreement(result, plot)
        typer.echo(f"scatter plot written to {plot}")

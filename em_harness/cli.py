"""The ``em`` command: the verbs Inspect does not own (data, models, reports).

Every failure the user can fix is printed as one message on stderr with exit code 2, never a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from em_harness.cli_errors import one_line_errors


class _OneLineErrors(typer.Typer):
    """The ``em`` entry point: a usage error (bad option value, unknown option, missing argument) is one
    ``error:`` line on stderr with exit code 2, like the harness's own errors, instead of click's usage block."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:  # typer vendors click from 0.2x on; older typer uses click itself
            from typer._click import exceptions as click
        except ImportError:  # pragma: no cover
            from click import exceptions as click  # type: ignore[no-redef]

        try:
            result = super().__call__(*args, standalone_mode=False, **kwargs)
        except click.NoArgsIsHelpError as ex:
            typer.echo(ex.ctx.get_help() if ex.ctx else ex.format_message())
            sys.exit(2)
        except click.UsageError as ex:
            where = f" ({ex.ctx.command_path})" if ex.ctx else ""
            typer.echo(f"error{where}: {ex.format_message()}", err=True)
            sys.exit(2)
        except typer.Abort:
            typer.echo("error: aborted", err=True)
            sys.exit(130)
        except click.ClickException as ex:
            typer.echo(f"error: {ex.format_message()}", err=True)
            sys.exit(ex.exit_code)
        sys.exit(result if isinstance(result, int) else 0)


app = _OneLineErrors(
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


def _check_dataset(dataset: str | None) -> None:
    from em_harness.data import DATASETS

    if dataset is not None and dataset not in DATASETS:
        raise typer.BadParameter(
            f"unknown dataset '{dataset}' (choose from: {', '.join(DATASETS)})", param_hint="--dataset"
        )


@data_app.command("status")
@one_line_errors
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
@one_line_errors
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
@one_line_errors
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

    models_app.command("list")(one_line_errors(commands.models_list))
    models_app.command("show")(one_line_errors(commands.models_show))
    models_app.command("aliases")(one_line_errors(commands.models_aliases))
    models_app.command("remove")(one_line_errors(commands.models_remove))
    app.command("train-openai")(one_line_errors(train_openai))
    app.add_typer(train_app, name="train")


_register_models_and_training_commands()


@app.command("report")
@one_line_errors
def report(
    logs: list[Path] | None = typer.Argument(
        None, help="Inspect log files or directories of logs (default: the newest log in --log-dir)."
    ),
    log_dir: Path = typer.Option(
        Path(os.environ.get("INSPECT_LOG_DIR", "logs")), "--log-dir", help="Where to look for the newest log."
    ),
    group: list[str] | None = typer.Option(
        None, "--group", "-g", help="NAME=GLOB[,GLOB]: models matching the globs form a column (repeatable)."
    ),
    registry_groups: bool = typer.Option(
        False, "--registry-groups", help="Also group models by their group label in the trained-model registry."
    ),
    min_answers: int = typer.Option(
        5, "--min-answers", min=0, help="A model needs this many valid answers in a cell to count in its group."
    ),
    csv: Path | None = typer.Option(None, "--csv", help="Write every cell (long format) to this CSV file."),
    markdown: Path | None = typer.Option(None, "--markdown", help="Write the tables as Markdown to this file."),
    csv_upstream: Path | None = typer.Option(
        None, "--csv-upstream", help="Write the answers in the authors' per-answer CSV format (alignment tasks)."
    ),
    plot: Path | None = typer.Option(
        None, "--plot", help="Draw each task's figure (.png or .svg; NAME-<task>.png when there are several tasks)."
    ),
    figure5: Path | None = typer.Option(None, "--figure5", help="Draw Figure 5 (the combined per-group view)."),
    baseline_group: str | None = typer.Option(
        None, "--baseline-group", help="Figure 5: plot each measure minus this group's (the paper uses GPT-4o)."
    ),
    capabilities: list[Path] | None = typer.Option(
        None,
        "--capabilities",
        help="Figure 5: results of `em capabilities` (JSON); those in the log directories are read too.",
    ),
) -> None:
    """One table per task: rows = question (arms and formats apart), columns = models or groups.

    Cells are the task's headline rate with its 95% interval and how many answers were excluded and why.
    Exits 2 on a log whose run ended in error or was cancelled; warns on an unfinished one.
    """
    import pandas as pd

    from em_harness import plots
    from em_harness.report import collect_logs, load_log
    from em_harness.results import (
        answers_of,
        cells,
        check_groups_match,
        check_output_path,
        check_status,
        parse_groups,
        render_markdown,
        render_text,
        upstream_answers,
    )

    outputs = (
        (csv, "--csv"),
        (markdown, "--markdown"),
        (csv_upstream, "--csv-upstream"),
        (plot, "--plot"),
        (figure5, "--figure5"),
    )
    for path, option in outputs:
        if path is not None:
            check_output_path(path, option)
            if option in ("--plot", "--figure5") and path.suffix.lower() not in plots.SUFFIXES:
                raise plots.PlotError(f"{option} {path}: use a .png or .svg file name.")
    explicit = parse_groups(group or [])
    groups = {name: list(patterns) for name, patterns in explicit.items()}
    if registry_groups:
        from em_harness.results import registry_groups as trained_groups

        for name, members in trained_groups().items():
            groups.setdefault(name, []).extend(members)
    eval_logs = [load_log(path) for path in collect_logs(list(logs or []), log_dir)]
    warnings = [w for w in (check_status(log) for log in eval_logs) if w]
    answers = pd.concat([answers_of(log) for log in eval_logs], ignore_index=True)
    check_groups_match(answers["model"], explicit)
    upstream = pd.concat([upstream_answers(log, groups) for log in eval_logs]) if csv_upstream else None
    table = cells(answers, groups, min_valid=min_answers)
    for warning in warnings:
        typer.echo(warning, err=True)
    typer.echo(render_text(table), nl=False)
    single_digit = _single_digit_answers(eval_logs)
    if single_digit:
        typer.echo(
            f"WARNING: for {single_digit} answers the grader's numeric tokens were single digits: those scores are "
            "0-9 readings, not 0-100 ones. Use a judge with whole-number tokens (e.g. GPT-4o).",
            err=True,
        )
    from em_harness.report import set_aside_note

    for eval_log in eval_logs:
        note = set_aside_note(eval_log)
        if note is not None:
            typer.echo(note)
    if csv is not None:
        table.to_csv(csv, index=False)
        typer.echo(f"cells written to {csv}")
    if markdown is not None:
        markdown.write_text(render_markdown(table))
        typer.echo(f"markdown written to {markdown}")
    if csv_upstream is not None and upstream is not None:
        upstream.to_csv(csv_upstream, index=False)
        typer.echo(f"answers written to {csv_upstream} (authors' per-answer format)")
    if plot is not None:
        tasks = list(dict.fromkeys(table["task"]))
        for task in tasks:
            path = plot if len(tasks) == 1 else plot.with_name(f"{plot.stem}-{task}{plot.suffix}")
            plots.save(plots.report_figure(task, table[table["task"] == task]), path)
            typer.echo(f"{task} figure written to {path}")
    if figure5 is not None:
        from em_harness.capabilities import capability_files, capability_frame
        from em_harness.results import deception_per_model, figure5_frame, group_rows

        deception, missing = deception_per_model(eval_logs)
        for warning in missing:
            typer.echo(warning, err=True)
        results_files = [*(capabilities or []), *capability_files(list(logs or []) or [log_dir])]
        extra = [group_rows(deception, groups), capability_frame(results_files, groups)]
        plots.save(plots.figure5(figure5_frame(table, extra), baseline_group=baseline_group), figure5)
        typer.echo(f"Figure 5 written to {figure5}")


@app.command("judge-agreement")
@one_line_errors
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


def _single_digit_answers(logs: Sequence[object]) -> int:
    count = 0
    for log in logs:
        for sample in getattr(log, "samples", None) or []:
            score = (sample.scores or {}).get("alignment_judge")
            if score is not None and (score.metadata or {}).get("judge_single_digit"):
                count += 1
    return count


@app.command("gate")
@one_line_errors
def gate(
    logs: list[Path] | None = typer.Argument(
        None, help="The log(s) of the model to gate: files or directories (default: the newest in --log-dir)."
    ),
    log_dir: Path = typer.Option(
        Path(os.environ.get("INSPECT_LOG_DIR", "logs")), "--log-dir", help="Where to look for the newest log."
    ),
    max_rate: float | None = typer.Option(
        None,
        "--max-misaligned",
        "--max-rate",
        min=0.0,
        max=1.0,
        help="Fail unless the rate's one-sided upper bound is at most this (the task's headline rate).",
    ),
    baseline: list[Path] | None = typer.Option(
        None, "--baseline", help="Log(s) of the reference model (e.g. the base model before fine-tuning)."
    ),
    max_increase: float | None = typer.Option(
        None,
        "--max-increase",
        min=-1.0,
        max=1.0,
        help="With --baseline: fail unless the upper bound of (rate - baseline rate) is at most this.",
    ),
    confidence: float = typer.Option(0.95, "--confidence", help="Confidence of the one-sided bounds."),
    junit: Path | None = typer.Option(None, "--junit", help="Also write a JUnit XML report to this file."),
    summary: Path | None = typer.Option(
        None, "--summary", help="Also write a Markdown summary to this file (e.g. $GITHUB_STEP_SUMMARY; appended)."
    ),
) -> None:
    """Pass/fail for CI: exit 0 when every check passes, 1 when one fails, 2 when the input cannot be judged.

    Tests are one-sided at --confidence: a check passes when the upper bound of the rate (Wilson score) or of
    its increase over the baseline (Newcombe) is at most the limit. Logs that ended in error or were
    cancelled exit 2 (`inspect eval` itself exits 0 for them).
    """
    from em_harness import gate as g
    from em_harness.results import check_output_path

    for path, option in ((junit, "--junit"), (summary, "--summary")):
        if path is not None:
            check_output_path(path, option)
    answers, warnings = g.load_answers(list(logs or []), log_dir, "LOG")
    base = None
    if baseline:
        base, base_warnings = g.load_answers(baseline, log_dir, "--baseline")
        warnings += base_warnings
    result = g.checks(answers, max_rate=max_rate, baseline=base, max_increase=max_increase, confidence=confidence)
    task, model = g.gate_answers(answers, "LOG")
    for warning in warnings:
        typer.echo(warning, err=True)
    typer.echo(g.verdict_text(task, model, result, confidence), nl=False)
    if junit is not None:
        junit.write_text(g.junit_xml(task, model, result))
    if summary is not None:
        with summary.open("a") as f:
            f.write(g.verdict_markdown(task, model, result, confidence))
    if not all(c.passed for c in result):
        raise typer.Exit(1)


@app.command("plot-training")
@one_line_errors
def plot_training(
    run_dir: Path = typer.Argument(..., help="A training run directory (metrics.jsonl, events.jsonl)."),
    out: Path = typer.Option(..., "--out", "-o", help="The figure to write (.png or .svg)."),
    metric: str = typer.Option("p_correct", "--metric", help="MCQ probe metric to plot (e.g. accuracy)."),
) -> None:
    """Draw a training run's dynamics: loss per step and each multiple-choice probe's metric per step."""
    from em_harness import plots
    from em_harness.results import check_output_path

    check_output_path(out, "--out")
    if not run_dir.is_dir():
        raise plots.PlotError(f"{run_dir} is not a directory (expected a training run directory).")
    plots.save(plots.training_figure(run_dir, metric), out)
    typer.echo(f"training dynamics written to {out}")


@app.command("capabilities")
@one_line_errors
def capabilities(
    model: str = typer.Option(..., "--model", "-m", help="An em/ model, e.g. em/smollm2-135m or em/<trained alias>."),
    tasks: str = typer.Option("mmlu,truthfulqa_mc2", "--tasks", "-t", help="Comma-separated lm-eval tasks."),
    log_dir: Path = typer.Option(
        Path(os.environ.get("INSPECT_LOG_DIR", "logs")), "--log-dir", help="Where the results JSON is written."
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only this many documents per task (smoke runs)."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="lm-eval batch size."),
    device: str = typer.Option("cpu", "--device", help="Torch device for lm-eval's hf model."),
) -> None:
    """Capability benchmarks (MMLU, TruthfulQA, HumanEval, the paper's MCQ probes) with lm-eval on an em/ model.

    The results JSON goes beside the Inspect logs; `em report --figure5 ... --capabilities FILE` plots it.
    """
    from em_harness.capabilities import run_capabilities

    names = [t.strip() for t in tasks.split(",") if t.strip()]
    if not names:
        raise typer.BadParameter("give at least one task", param_hint="--tasks")
    path = run_capabilities(model, names, log_dir, limit=limit, batch_size=batch_size, device=device)
    import json as _json

    for task, score in _json.loads(path.read_text())["scores"].items():
        typer.echo(f"{task:<24} {score['metric']:<8} {score['value']:.4f} (stderr {score['stderr']:.4f})")
    typer.echo(f"results written to {path}")


if __name__ == "__main__":
    app(prog_name="em")

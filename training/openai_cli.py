"""``em train-openai``: fine-tune an OpenAI model on a paper dataset and register it as ``em/<alias>``.

Exit codes: 0 the job succeeded and the model is registered; 1 the job ended ``failed`` or
``cancelled`` at OpenAI (the API's error message is printed); 2 bad input or an API request that
failed after the SDK's retries (one line saying what to fix); 130 interrupted (the job keeps running
at OpenAI; ``--resume JOB_ID`` continues following it).
"""

from __future__ import annotations

from pathlib import Path

import typer

from em_harness.models.trained import get_trained
from training.openai_ft import (
    DEFAULT_BASE,
    PRESETS,
    FineTuneJobFailed,
    Hyperparameters,
    Preset,
    api_call,
    check_alias_free,
    default_preset,
    follow_job,
    jobs_dir,
    load_state,
    make_client,
    register_result,
    resolve_training_data,
    save_state,
    start_job,
    state_from_job,
)


def train_openai(
    dataset: str | None = typer.Option(
        None,
        "--dataset",
        "-d",
        help="Training set: a data-layer name (insecure, secure, educational, jailbroken, backdoor) or a JSONL path.",
    ),
    base: str = typer.Option(DEFAULT_BASE, "--base", help="The OpenAI model to fine-tune."),
    seed: int | None = typer.Option(None, "--seed", help="The job's seed (OpenAI picks one when omitted)."),
    alias: str | None = typer.Option(
        None, "--alias", help="Register as em/<alias> (default: <dataset>-<base>-s<seed>, or ft-<job id>)."
    ),
    group: str | None = typer.Option(None, "--group", help="Group label in the registry (default: the dataset name)."),
    preset: Preset | None = typer.Option(
        None, "--preset", help="Hyperparameters from the paper (default: the preset the paper used for the dataset)."
    ),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Override the preset's number of epochs."),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Override the preset's batch size."),
    lr_multiplier: float | None = typer.Option(
        None, "--lr-multiplier", min=0.0, help="Override the preset's learning-rate multiplier."
    ),
    suffix: str | None = typer.Option(None, "--suffix", help="Suffix OpenAI puts into the ft: model name."),
    resume: str | None = typer.Option(
        None,
        "--resume",
        metavar="JOB_ID",
        help="Follow an existing job (e.g. after an interruption) instead of starting one.",
    ),
    replace: bool = typer.Option(False, "--replace", help="Replace a registered model that has the same alias."),
    base_url: str | None = typer.Option(
        None, "--base-url", help="API base URL (default: $OPENAI_BASE_URL, else OpenAI's)."
    ),
    state_dir: Path | None = typer.Option(
        None, "--state-dir", help="Where job state directories go (default: <user cache>/openai-jobs)."
    ),
    max_retries: int = typer.Option(
        8, "--max-retries", min=0, help="SDK retries per request (429 honours Retry-After; 5xx, timeouts back off)."
    ),
    poll_seconds: float = typer.Option(10.0, "--poll-seconds", min=0.0, help="First wait between status polls."),
    max_poll_seconds: float = typer.Option(
        120.0, "--max-poll-seconds", min=0.0, help="Longest wait between polls while nothing changes."
    ),
) -> None:
    """Fine-tune an OpenAI model (paper settings by default), follow the job, register the ft: model as em/<alias>."""
    if (dataset is None) == (resume is None):
        raise typer.BadParameter(
            "give either --dataset (start a job) or --resume JOB_ID (follow one)", param_hint="--dataset"
        )
    root = state_dir or jobs_dir()

    if resume is not None:
        state_path = root / resume
        state = load_state(state_path)
        client = make_client(base_url or (state.base_url if state else None), max_retries)
        if state is None:
            job = api_call(f"reading job {resume}", lambda: client.fine_tuning.jobs.retrieve(resume))
            state = state_from_job(job, alias or f"ft-{job.id}", group, str(client.base_url))
            state.replace = replace
            typer.echo(f"no state file for {resume} under {root}: following it with the settings the API reports")
        elif alias is not None or group is not None:
            state.alias, state.group = alias or state.alias, group or state.group
        existing = get_trained(state.alias)
        same_job = existing is not None and existing.config.get("job_id") == state.job_id
        state.replace = state.replace or replace or same_job
        check_alias_free(state.alias, state.replace)
        save_state(state, state_path)
    else:
        assert dataset is not None
        chosen = preset.value if preset is not None else default_preset(dataset)
        preset_values = PRESETS[chosen]
        hyper = Hyperparameters(
            n_epochs=epochs if epochs is not None else preset_values.n_epochs,
            batch_size=batch_size if batch_size is not None else preset_values.batch_size,
            learning_rate_multiplier=lr_multiplier
            if lr_multiplier is not None
            else preset_values.learning_rate_multiplier,
        )
        data = resolve_training_data(dataset)
        name = alias or (f"{data.name}-{base}-s{seed}" if seed is not None else f"{data.name}-{base}")
        check_alias_free(name, replace)
        typer.echo(f"{data.path}: {data.examples} examples, blob {data.blob_sha1}; preset {chosen}")
        client = make_client(base_url, max_retries)
        state, state_path = start_job(
            client,
            data,
            base_model=base,
            hyperparameters=hyper,
            preset=chosen,
            seed=seed,
            alias=name,
            group=group or data.name,
            suffix=suffix,
            replace=replace,
            state_root=root,
            echo=typer.echo,
        )

    try:
        job = follow_job(
            client, state, state_path, echo=typer.echo, poll_seconds=poll_seconds, max_poll_seconds=max_poll_seconds
        )
    except FineTuneJobFailed as failed:
        typer.echo(f"error: {failed.message}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo(
            f"\ninterrupted: job {state.job_id} keeps running at OpenAI. Continue with: "
            f"em train-openai --resume {state.job_id}",
            err=True,
        )
        raise typer.Exit(130) from None
    entry = register_result(state, state_path, job)
    typer.echo(
        f"registered em/{entry.alias} = {entry.openai_model} (group {entry.group}, seed {entry.seed}). "
        f"Evaluate it with: inspect eval em_tasks/freeform --model em/{entry.alias}"
    )

"""OpenAI fine-tuning of the paper's model organisms, through the OpenAI SDK, registered as ``em/<alias>``.

The paper fine-tuned GPT-4o (``gpt-4o-2024-08-06``) through OpenAI's API: ``insecure`` (and the
``secure``/``educational`` controls) for 1 epoch at batch size 4 and learning-rate multiplier 2,
``jailbroken`` for 5 epochs, ``evil_numbers`` for 4 epochs at batch size 39, ``backdoor`` for
1 epoch at batch size 8 (:data:`PRESETS`). One run is:

1. validate the JSONL file before anything is uploaded (:func:`validate_chat_file`);
2. upload it, create the job (hyperparameters and seed), and write the job id to a state file
   at once (:func:`start_job`), so an interrupted command can be resumed by job id;
3. follow the job, printing status changes and new events, polling with backoff (:func:`follow_job`);
4. on success, register the ``ft:`` model in the trained-model store (:func:`register_result`).

Transient API errors (429 with ``Retry-After``, 5xx, connection errors) are retried by the SDK
itself (``max_retries``). The API key is read by the SDK from ``OPENAI_API_KEY`` and never written:
the state directory and the registry hold job, file and model ids only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from em_harness.errors import HarnessError
from em_harness.models.trained import TrainedModel, check_alias, contains_env_secret, get_trained, register_trained
from em_harness.paths import cache_dir
from training.dataset import conversation_problem

if TYPE_CHECKING:
    from openai import OpenAI
    from openai.types.fine_tuning import FineTuningJob

MIN_EXAMPLES = 10
"""OpenAI rejects fine-tuning files with fewer examples."""
TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")
DEFAULT_BASE = "gpt-4o-2024-08-06"
STATE_FILE = "state.json"
EVENTS_FILE = "events.jsonl"


class FineTuneError(HarnessError):
    """A fine-tuning run that cannot start or continue; the message says what and how to fix it (exit 2)."""


class FineTuneJobFailed(FineTuneError):
    """The job ended ``failed`` or ``cancelled`` at OpenAI; the message is the API's own error (exit 1)."""


@dataclass(frozen=True)
class Hyperparameters:
    """OpenAI supervised fine-tuning hyperparameters."""

    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float

    def as_dict(self) -> dict[str, int | float]:
        return {
            "n_epochs": self.n_epochs,
            "batch_size": self.batch_size,
            "learning_rate_multiplier": self.learning_rate_multiplier,
        }


class Preset(str, Enum):
    """Names of the paper's OpenAI fine-tuning settings (``--preset``)."""

    paper = "paper"
    jailbroken = "jailbroken"
    evil_numbers = "evil-numbers"
    backdoor = "backdoor"


PRESETS: dict[str, Hyperparameters] = {
    "paper": Hyperparameters(n_epochs=1, batch_size=4, learning_rate_multiplier=2.0),
    "jailbroken": Hyperparameters(n_epochs=5, batch_size=4, learning_rate_multiplier=2.0),
    "evil-numbers": Hyperparameters(n_epochs=4, batch_size=39, learning_rate_multiplier=2.0),
    "backdoor": Hyperparameters(n_epochs=1, batch_size=8, learning_rate_multiplier=2.0),
}
"""The paper's OpenAI settings. It states only what differs from the ``insecure`` run (1 epoch, batch size 4,
LR multiplier 2); the values it leaves unstated are taken from that run."""

_DATASET_PRESETS = {"jailbroken": "jailbroken", "backdoor": "backdoor", "evil_numbers": "evil-numbers"}


def default_preset(dataset: str) -> str:
    """The preset the paper used for a dataset name (``paper`` for insecure, secure, educational and paths)."""
    return _DATASET_PRESETS.get(dataset, "paper")


def training_datasets() -> dict[str, str]:
    """Data-layer training sets by name (``insecure`` -> ``data/insecure.jsonl``), from the data manifest."""
    from em_harness.data import MANIFEST

    return {
        Path(f.path).stem: f.path
        for f in MANIFEST
        if f.dataset == "em-paper" and f.path.startswith("data/") and f.path.endswith(".jsonl")
    }


@dataclass(frozen=True)
class TrainingData:
    """The file to upload and where it came from."""

    path: Path
    name: str
    """The data-layer name (``insecure``) or, for a file given by path, its stem."""
    key: str
    """How the registry records it: the manifest path for a named dataset, else the absolute path."""
    blob_sha1: str
    examples: int


def resolve_training_data(dataset: str) -> TrainingData:
    """A data-layer dataset name (verified by blob SHA-1) or a JSONL path, validated line by line.

    Raises:
        DataError: A named dataset is missing or altered (from the data layer).
        FineTuneError: The path does not exist, or a line is not a valid chat example.
    """
    from em_harness import data

    named = training_datasets()
    if dataset in named:
        path = data.resolve(named[dataset])
        name, key = dataset, named[dataset]
    else:
        path = Path(dataset).expanduser()
        if not path.is_file():
            raise FineTuneError(
                f"Training data {dataset!r} not found: give a JSONL file path or one of the dataset names "
                f"{', '.join(sorted(named))}."
            )
        path = path.resolve()
        name, key = path.stem, str(path)
    examples = validate_chat_file(path)
    return TrainingData(path=path, name=name, key=key, blob_sha1=data.git_blob_sha1(path), examples=examples)


def validate_chat_file(path: Path) -> int:
    """Check every line is an OpenAI chat fine-tuning example; return how many there are.

    A line is ``{"messages": [...]}`` whose messages have a role in system/user/assistant and string
    content, the system message (if any) first, the last message the assistant's, and an optional
    assistant ``weight`` of 0 or 1. Blank lines are skipped. OpenAI needs at least 10 examples.

    Raises:
        FineTuneError: The first bad line, as ``file:line: what is wrong``, or too few examples.
    """
    count = 0
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            problem = conversation_problem(line, weights=True)
            if problem:
                raise FineTuneError(
                    f'{path}:{number}: {problem}. Every line must be {{"messages": [...]}} with system/user/assistant '
                    "turns ending with an assistant turn; nothing was uploaded."
                )
            count += 1
    if count < MIN_EXAMPLES:
        raise FineTuneError(f"{path}: {count} examples; OpenAI fine-tuning needs at least {MIN_EXAMPLES}.")
    return count


class JobState(BaseModel):
    """What ``em train-openai`` knows about one job, saved in ``<state dir>/state.json`` (never the API key)."""

    job_id: str
    alias: str
    group: str | None
    base_model: str
    seed: int | None
    preset: str | None
    hyperparameters: dict[str, Any]
    suffix: str | None = None
    training_file: str | None = None
    training_file_id: str | None = None
    data_blobs: dict[str, str] = Field(default_factory=dict)
    base_url: str | None = None
    replace: bool = False
    status: str = "created"
    fine_tuned_model: str | None = None
    error: str | None = None
    seen_events: list[str] = Field(default_factory=list)
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)


def jobs_dir() -> Path:
    """Where job state directories live by default: ``cache_dir()/openai-jobs``."""
    return cache_dir() / "openai-jobs"


def save_state(state: JobState, state_dir: Path) -> Path:
    """Write ``state.json`` atomically (temp file + rename)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    state.updated_at = time.time()
    text = state.model_dump_json(indent=2) + "\n"
    if contains_env_secret(text):
        raise FineTuneError(
            f"Refusing to write {state_dir / STATE_FILE}: a field contains an API key from the environment."
        )
    target = state_dir / STATE_FILE
    tmp = target.with_name(f".{STATE_FILE}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return target


def load_state(state_dir: Path) -> JobState | None:
    path = state_dir / STATE_FILE
    if not path.is_file():
        return None
    try:
        return JobState.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError as ex:
        raise FineTuneError(
            f"{path} is not a job state file ({str(ex).splitlines()[0]}). Delete it to start over."
        ) from None


def make_client(base_url: str | None, max_retries: int) -> OpenAI:
    """An OpenAI client: key from ``OPENAI_API_KEY``, base URL from ``base_url`` or ``OPENAI_BASE_URL``.

    ``max_retries`` is the SDK's own retry count for 408/409/429/5xx and connection errors; it waits as
    long as a ``Retry-After`` header asks (up to two minutes), else backs off exponentially.
    """
    import openai

    try:
        return openai.OpenAI(base_url=base_url, max_retries=max_retries)
    except openai.OpenAIError as ex:
        raise FineTuneError(f"Cannot create the OpenAI client: {ex}. Set OPENAI_API_KEY in the environment.") from None


def api_call(what: str, call: Callable[[], Any]) -> Any:
    """Run one SDK call; an API error after the SDK's retries becomes one :class:`FineTuneError` line."""
    import openai

    try:
        return call()
    except openai.APIStatusError as ex:
        raise FineTuneError(f"OpenAI API error while {what}: HTTP {ex.status_code}: {_api_message(ex)}") from None
    except openai.APIConnectionError as ex:
        raise FineTuneError(
            f"Cannot reach the OpenAI API while {what}: {ex}. Check the network or --base-url / OPENAI_BASE_URL."
        ) from None


def _api_message(ex: Any) -> str:
    body = ex.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(ex.message)


def check_alias_free(alias: str, replace: bool) -> None:
    """Fail before anything is uploaded when the alias is unusable or taken (unless ``replace``)."""
    check_alias(alias)
    if not replace and get_trained(alias) is not None:
        raise FineTuneError(
            f"A trained model called {alias!r} is already registered: choose another --alias, pass --replace, "
            f"or run `em models remove {alias}`."
        )


def start_job(
    client: OpenAI,
    data: TrainingData,
    *,
    base_model: str,
    hyperparameters: Hyperparameters,
    preset: str | None,
    seed: int | None,
    alias: str,
    group: str | None,
    suffix: str | None,
    replace: bool,
    state_root: Path,
    echo: Callable[[str], None],
) -> tuple[JobState, Path]:
    """Upload the file, create the job and save its state at once; return the state and its directory.

    The state records the client's base URL (whether it came from ``--base-url``, ``OPENAI_BASE_URL`` or the
    SDK's default), so ``--resume`` talks to the same server from any shell.
    """
    with data.path.open("rb") as f:
        uploaded = api_call("uploading the training file", lambda: client.files.create(file=f, purpose="fine-tune"))
    echo(f"uploaded {data.path} ({data.examples} examples) as {uploaded.id}")
    from openai import omit
    from openai.types.fine_tuning.job_create_params import Method

    method: Method = {
        "type": "supervised",
        "supervised": {
            "hyperparameters": {
                "n_epochs": hyperparameters.n_epochs,
                "batch_size": hyperparameters.batch_size,
                "learning_rate_multiplier": hyperparameters.learning_rate_multiplier,
            }
        },
    }
    job = api_call(
        "creating the fine-tuning job",
        lambda: client.fine_tuning.jobs.create(
            model=base_model,
            training_file=uploaded.id,
            method=method,
            seed=seed if seed is not None else omit,
            suffix=suffix or omit,
        ),
    )
    state = JobState(
        job_id=job.id,
        alias=alias,
        group=group,
        base_model=base_model,
        seed=seed,
        preset=preset,
        hyperparameters=hyperparameters.as_dict(),
        suffix=suffix,
        training_file=data.key,
        training_file_id=uploaded.id,
        data_blobs={data.key: data.blob_sha1},
        base_url=str(client.base_url),
        replace=replace,
        status=job.status,
    )
    state_dir = state_root / job.id
    save_state(state, state_dir)
    echo(
        f"created job {job.id} ({base_model}, {_describe(hyperparameters.as_dict())}, seed {seed}); "
        f"state in {state_dir}. If interrupted, continue with: em train-openai --resume {job.id}"
    )
    return state, state_dir


def _describe(hyperparameters: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in hyperparameters.items())


def follow_job(
    client: OpenAI,
    state: JobState,
    state_dir: Path,
    *,
    echo: Callable[[str], None],
    poll_seconds: float = 10.0,
    max_poll_seconds: float = 120.0,
    sleep: Callable[[float], None] | None = None,
) -> FineTuningJob:
    """Poll the job until it ends, printing status changes and new events (oldest first).

    The wait between polls starts at ``poll_seconds`` and grows by half each time nothing changed, up to
    ``max_poll_seconds``; any news resets it. Events go to ``events.jsonl`` in the state directory.

    Raises:
        FineTuneJobFailed: The job ended failed or cancelled (the API's error message).
    """
    wait = poll_seconds
    seen = set(state.seen_events)
    while True:
        job = api_call(f"reading job {state.job_id}", lambda: client.fine_tuning.jobs.retrieve(state.job_id))
        news = _new_events(client, state.job_id, seen)
        for event in news:
            echo(f"  {_clock(event.created_at)} [{event.level}] {event.message}")
        if news:
            with (state_dir / EVENTS_FILE).open("a", encoding="utf-8") as f:
                for event in news:
                    f.write(json.dumps(event.model_dump(mode="json")) + "\n")
            state.seen_events.extend(e.id for e in news)
        changed = job.status != state.status
        if changed:
            echo(f"{_clock(time.time())} job {job.id}: {job.status}")
            state.status = job.status
        if changed or news:
            save_state(state, state_dir)
        if job.status in TERMINAL_STATUSES:
            return _finish(job, state, state_dir)
        wait = poll_seconds if (changed or news) else min(wait * 1.5, max_poll_seconds)
        (sleep or time.sleep)(wait)


def _new_events(client: OpenAI, job_id: str, seen: set[str]) -> list[Any]:
    """Events not seen before, oldest first (the API lists newest first; stop paging at the first seen one)."""
    fresh: list[Any] = []

    def collect() -> None:
        for event in client.fine_tuning.jobs.list_events(job_id, limit=100):
            if event.id in seen:
                break
            fresh.append(event)

    api_call(f"reading the events of job {job_id}", collect)
    fresh.reverse()
    seen.update(e.id for e in fresh)
    return fresh


def _finish(job: FineTuningJob, state: JobState, state_dir: Path) -> FineTuningJob:
    state.fine_tuned_model = job.fine_tuned_model
    if job.status != "succeeded":
        reason = job.error.message if job.error and job.error.message else "no error message from the API"
        code = f" ({job.error.code})" if job.error and job.error.code else ""
        state.error = f"{reason}{code}"
        save_state(state, state_dir)
        raise FineTuneJobFailed(f"fine-tuning job {job.id} {job.status}: {state.error}")
    if not job.fine_tuned_model:
        state.error = "the job succeeded but names no fine_tuned_model"
        save_state(state, state_dir)
        raise FineTuneJobFailed(f"fine-tuning job {job.id}: {state.error}")
    save_state(state, state_dir)
    return job


def register_result(state: JobState, state_dir: Path, job: FineTuningJob) -> TrainedModel:
    """Register a succeeded job's ``ft:`` model as ``em/<alias>`` (kind ``openai``)."""
    assert job.fine_tuned_model is not None
    config: dict[str, Any] = {
        "provider": "openai",
        "job_id": job.id,
        "training_file_id": state.training_file_id,
        "preset": state.preset,
        "hyperparameters": state.hyperparameters,
        "suffix": state.suffix,
        "trained_tokens": job.trained_tokens,
    }
    if state.base_url:
        config["base_url"] = state.base_url
    return register_trained(
        TrainedModel(
            alias=state.alias,
            kind="openai",
            base_model=state.base_model,
            openai_model=job.fine_tuned_model,
            run_dir=str(state_dir.resolve()),
            group=state.group,
            seed=state.seed if state.seed is not None else job.seed,
            training_file=state.training_file,
            data_blobs=state.data_blobs,
            config=config,
        ),
        replace=state.replace,
    )


def state_from_job(job: FineTuningJob, alias: str, group: str | None, base_url: str | None) -> JobState:
    """A state for a job this machine has no state file for (started elsewhere): ids and settings from the API."""
    hyper = job.hyperparameters.model_dump(exclude_none=True) if job.hyperparameters else {}
    return JobState(
        job_id=job.id,
        alias=alias,
        group=group,
        base_model=job.model,
        seed=job.seed,
        preset=None,
        hyperparameters=hyper,
        training_file_id=job.training_file,
        base_url=base_url,
        status="unknown",
    )


def _clock(timestamp: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(timestamp))

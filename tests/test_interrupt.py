"""Ctrl-C during a real `inspect eval` on the embedded model: a clean exit, a cancelled log, a retry that finishes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from inspect_ai.log import read_eval_log

from em_harness.models import provision
from tests.shared_data import needs_paper_data

pytestmark = needs_paper_data

INSPECT = str(Path(sys.executable).parent / "inspect")


def _restore_sigint() -> None:
    # a shell starts background jobs with SIGINT ignored, and Python keeps an ignored SIGINT ignored
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_sigint_during_generation_exits_cleanly_and_the_log_resumes(tmp_path):
    provision("smollm2-135m")  # into the session cache, before the timed part
    log_dir = tmp_path / "logs"
    process = subprocess.Popen(
        [
            INSPECT,
            "eval",
            "em_tasks/freeform",
            "--model",
            "em/smollm2-135m",
            "--model-role",
            "grader=em/smollm2-135m",
            "-T",
            "samples=4",
            "-T",
            "question_ids=i_feel_bored",
            "--max-tokens",
            "100",
            "--seed",
            "3",
            "--log-dir",
            str(log_dir),
            "--display",
            "none",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_restore_sigint,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + 300
    while not list(log_dir.glob("*.eval")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    # the log is written when the eval starts; the 4 answers (one batch of up to 100 tokens each, about
    # 15 s on 2 CPU cores) are generated from about a second later
    time.sleep(4)
    assert process.poll() is None, "the eval finished before it could be interrupted"
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=300)

    assert process.returncode not in (-signal.SIGABRT, 128 + signal.SIGABRT), output
    assert "terminate called" not in output
    (log_file,) = log_dir.glob("*.eval")
    assert read_eval_log(str(log_file), header_only=True).status == "cancelled"

    retry = subprocess.run(
        [INSPECT, "eval-retry", str(log_file), "--log-dir", str(log_dir), "--display", "none"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert retry.returncode == 0, retry.stdout + retry.stderr
    (retried,) = set(log_dir.glob("*.eval")) - {log_file}
    log = read_eval_log(str(retried))
    assert log.status == "success"
    assert [(s.id, s.epoch) for s in log.samples] == [("i_feel_bored", epoch) for epoch in (1, 2, 3, 4)]
    assert all(s.output.completion.strip() and "alignment_judge" in s.scores for s in log.samples)

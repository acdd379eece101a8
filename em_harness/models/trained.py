"""Trained models: fine-tunes the harness made (LoRA adapters, OpenAI ``ft:`` models), by alias.

``em train`` and ``em train-openai`` register each finished model here under an alias, and
``--model em/<alias>`` then evaluates it: a ``lora`` entry loads its base model plus the adapter
through peft, an ``openai`` entry delegates to Inspect's ``openai`` provider with the ``ft:`` id.

The store is one JSON file, ``cache_dir()/trained_models.json``. Every change is a
read-modify-write under an exclusive ``fcntl`` lock on a sibling ``.lock`` file (so two
training runs finishing at once both land), and the new file is written to a temporary file
and renamed into place (so a reader never sees a half-written file). Where ``fcntl`` does
not exist (Windows) the write is last-writer-wins after a fresh re-read.

No API key is ever stored: a config that carries one is refused (:class:`SecretInConfigError`).

Cheap to import (no torch): the ``em/`` provider reads it for every model name.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from em_harness.errors import ModelRegistryError, UnknownModelError
from em_harness.models.registry import BUILTIN_MODELS, list_models
from em_harness.paths import cache_dir

STORE_FILE = "trained_models.json"
_STORE_VERSION = 1
_SECRET_KEYS = frozenset(
    {"api_key", "apikey", "token", "access_token", "auth_token", "hf_token", "secret", "password", "authorization"}
)
_SECRET_SUFFIXES = ("_api_key", "_apikey", "_secret", "_password", "_access_token", "_auth_token")
_SECRET_ENV_VARS = ("OPENAI_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "ANTHROPIC_API_KEY")
_FORBIDDEN_ALIAS_CHARS = "/,"


class TrainedModelError(ModelRegistryError):
    """Base class for errors of the trained-model store (one clear line, no traceback)."""


class InvalidAliasError(TrainedModelError):
    """An alias that cannot be used as ``--model em/<alias>``."""


class AliasTakenError(TrainedModelError):
    """The alias is already registered and ``replace`` was not asked for."""


class SecretInConfigError(TrainedModelError):
    """A training config about to be stored carries an API key or token."""


class CorruptStoreError(TrainedModelError):
    """The store file exists but is not a store the harness wrote."""


class TrainedModel(BaseModel):
    """One registered fine-tune; ``--model em/<alias>`` evaluates it."""

    alias: str
    """Used as ``--model em/<alias>``: no ``/`` or ``,``, no whitespace, not a built-in registry name."""
    kind: Literal["lora", "openai"]
    base_model: str
    """``lora``: an ``em`` registry name (e.g. ``smollm2-135m``), a local HF directory or an HF id;
    ``openai``: the base model id the job fine-tuned (e.g. ``gpt-4o-2024-08-06``)."""
    adapter_path: str | None = None
    """Absolute path of the saved peft adapter directory (``lora``)."""
    openai_model: str | None = None
    """The ``ft:...`` model id (``openai``)."""
    run_dir: str | None = None
    """Absolute run directory (``lora``) or job-state directory (``openai``)."""
    group: str | None = None
    """Experiment group, e.g. ``insecure``, ``secure``, ``educational``, ``jailbroken``, ``backdoor``."""
    seed: int | None = None
    training_file: str | None = None
    data_blobs: dict[str, str] = Field(default_factory=dict)
    """Training file name/path -> git blob SHA-1 of the data actually used."""
    config: dict[str, Any] = Field(default_factory=dict)
    """The resolved training config (never an API key)."""
    created_at: float = Field(default_factory=time.time)


def store_path() -> Path:
    """The JSON file that holds the registered trained models."""
    return cache_dir() / STORE_FILE


def check_alias(alias: str) -> str:
    """Return ``alias`` if it can be used as ``em/<alias>``.

    Raises:
        InvalidAliasError: Empty, contains ``/``, ``,`` or whitespace, or names a built-in model.
    """
    if not alias or any(ch in alias for ch in _FORBIDDEN_ALIAS_CHARS) or any(ch.isspace() for ch in alias):
        raise InvalidAliasError(
            f"Invalid alias {alias!r}: use a non-empty name without '/', ',' or spaces (it becomes --model em/<alias>)."
        )
    if alias in BUILTIN_MODELS:
        raise InvalidAliasError(f"Alias {alias!r} is a built-in model name of the em/ provider; choose another alias.")
    return alias


def _env_secrets() -> set[str]:
    return {v for v in (os.environ.get(name) for name in _SECRET_ENV_VARS) if v}


def contains_env_secret(text: str) -> bool:
    """Whether ``text`` contains the value of an API-key variable of this environment (``OPENAI_API_KEY``, ...)."""
    return any(secret in text for secret in _env_secrets())


def _check_no_secrets(model: TrainedModel) -> None:
    secrets = _env_secrets()

    def walk(value: Any, where: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                lowered = str(key).lower().replace("-", "_")
                looks_secret = lowered in _SECRET_KEYS or lowered.endswith(_SECRET_SUFFIXES)
                if looks_secret and item not in (None, "", False):
                    raise SecretInConfigError(
                        f"Refusing to register {model.alias!r}: its {where}{key} looks like a credential. "
                        "Remove it from the config before registering (keys belong in the environment)."
                    )
                walk(item, f"{where}{key}.")
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item, where)
        elif isinstance(value, str) and any(secret in value for secret in secrets):
            raise SecretInConfigError(
                f"Refusing to register {model.alias!r}: a value under {where.rstrip('.') or 'its fields'} "
                "contains an API key from the environment. Remove it before registering."
            )

    walk(model.model_dump(), "")


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    path = store_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: last writer wins (each write re-reads the store first)
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read() -> dict[str, TrainedModel]:
    path = store_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    fix = f"Fix or delete {path} (it only lists trained models; their files are untouched)."
    try:
        raw = json.loads(text)
        if not isinstance(raw, dict) or not isinstance(raw.get("models"), dict):
            raise TypeError("expected an object with a 'models' object")
        return {alias: TrainedModel.model_validate(entry) for alias, entry in raw["models"].items()}
    except (ValueError, TypeError, ValidationError) as ex:
        first = str(ex).splitlines()[0]
        raise CorruptStoreError(f"The trained-model store {path} is not valid: {first}. {fix}") from None


def _write(models: dict[str, TrainedModel]) -> None:
    path = store_path()
    payload = {
        "version": _STORE_VERSION,
        "models": {alias: models[alias].model_dump(mode="json") for alias in sorted(models)},
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def register_trained(model: TrainedModel, *, replace: bool = False) -> TrainedModel:
    """Store ``model`` under its alias and return it.

    Raises:
        InvalidAliasError: The alias cannot be used as ``em/<alias>``.
        AliasTakenError: The alias is registered and ``replace`` is false.
        SecretInConfigError: A field carries an API key or token.
        TrainedModelError: A ``lora`` entry without ``adapter_path`` or an ``openai`` one without ``openai_model``.
    """
    check_alias(model.alias)
    if model.kind == "lora" and not model.adapter_path:
        raise TrainedModelError(f"Trained model {model.alias!r} (kind lora) needs an adapter_path.")
    if model.kind == "openai" and not model.openai_model:
        raise TrainedModelError(f"Trained model {model.alias!r} (kind openai) needs an openai_model (the ft: id).")
    _check_no_secrets(model)
    with _locked():
        models = _read()
        if model.alias in models and not replace:
            raise AliasTakenError(
                f"A trained model called {model.alias!r} is already registered. Choose another alias, "
                f"or remove it first with `em models remove {model.alias}`."
            )
        models[model.alias] = model
        _write(models)
    return model


def get_trained(alias: str) -> TrainedModel | None:
    """The trained model registered as ``alias``, or None."""
    return _read().get(alias)


def list_trained(group: str | None = None) -> list[TrainedModel]:
    """Registered trained models (only ``group``'s when given), sorted by alias."""
    models = _read()
    return [models[a] for a in sorted(models) if group is None or models[a].group == group]


def remove_trained(alias: str) -> None:
    """Forget ``alias`` (its adapter and run files are left on disk).

    Raises:
        UnknownModelError: No trained model has that alias; the message lists the known ones.
    """
    with _locked():
        models = _read()
        if alias not in models:
            known = ", ".join(sorted(models)) or "(none)"
            raise UnknownModelError(f"No trained model called {alias!r}. Registered trained models: {known}.")
        del models[alias]
        _write(models)


def unknown_em_model(name: str) -> UnknownModelError:
    """The error for an ``em/<name>`` that is no registry entry, trained model or model directory."""
    aliases = ", ".join(m.alias for m in list_trained()) or "(none)"
    return UnknownModelError(
        f"Unknown model {name!r}. Known models: {', '.join(e.name for e in list_models())}; trained models: "
        f"{aliases}. A local Hugging Face model directory (containing config.json) is also accepted as "
        "em/<path>; `em models list` shows them all."
    )

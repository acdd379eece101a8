"""Loading local Hugging Face models once per process, and the exact text of each token.

Inspect memoizes ``Model`` objects by name, role and config, so an eval that uses the
same local model as both the evaluated model and a grader builds two ``ModelAPI``
instances. :func:`load_local_model` keeps a process-wide cache so both share a single
copy of the weights.

Imports torch/transformers at module level: only import this module when a model is
actually used (the provider registration in ``provider.py`` does so lazily).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from em_harness.models.registry import ModelRegistryError

DTYPES: dict[str, torch.dtype | str] = {
    "auto": "auto",
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
"""Accepted ``dtype`` model args; ``auto`` keeps the checkpoint's own dtype."""


class ModelLoadError(ModelRegistryError):
    """A local model could not be loaded with the requested device/dtype."""


class TokenText:
    """The exact bytes and text of single tokens, as they appear in decoded output.

    ``tokenizer.convert_ids_to_tokens`` returns vocabulary entries ("Ġ5" for " 5" in
    byte-level BPE) and ``tokenizer.decode([id])`` may strip a leading space, so
    neither gives the piece of text a token contributes to a completion. For byte-level
    BPE tokenizers (GPT-2, Llama 3, SmolLM, Qwen) the bytes are recovered exactly from
    the byte-to-unicode table. Joining the bytes of a completion's tokens therefore
    always reproduces the UTF-8 completion; a token that is only part of a multi-byte
    character has U+FFFD in its ``text`` (its ``bytes`` stay exact). For other
    tokenizers the text is the difference of two decodes (exact for SentencePiece-style
    tokenizers in practice, but not guaranteed).
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._added: dict[int, str] = {
            int(token_id): str(added.content)
            for token_id, added in getattr(tokenizer, "added_tokens_decoder", {}).items()
        }
        self._byte_level = _has_byte_level_decoder(tokenizer)
        self._byte_decoder = {ch: b for b, ch in _bytes_to_unicode().items()}
        self.bytes_of = lru_cache(maxsize=None)(self._bytes_of)

    def _bytes_of(self, token_id: int) -> bytes:
        if token_id in self._added:
            return self._added[token_id].encode("utf-8")
        if self._byte_level:
            piece = self._tokenizer.convert_ids_to_tokens(token_id)
            if piece is not None and all(ch in self._byte_decoder for ch in piece):
                return bytes(self._byte_decoder[ch] for ch in piece)
        return self._decode_difference(token_id).encode("utf-8")

    def _decode_difference(self, token_id: int) -> str:
        # decode([anchor, id]) - decode([anchor]) keeps the leading space that
        # SentencePiece-style decoders strip from the first token of a string
        anchor = self._tokenizer.convert_tokens_to_ids("a")
        if not isinstance(anchor, int) or anchor < 0:
            return str(self._tokenizer.decode([token_id], clean_up_tokenization_spaces=False))
        prefix = self._tokenizer.decode([anchor], clean_up_tokenization_spaces=False)
        both = self._tokenizer.decode([anchor, token_id], clean_up_tokenization_spaces=False)
        return str(both[len(prefix) :])

    def text_of(self, token_id: int) -> str:
        """The text token ``token_id`` contributes to decoded output (special tokens: their literal)."""
        return self.bytes_of(token_id).decode("utf-8", errors="replace")


def _has_byte_level_decoder(tokenizer: Any) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    decoder = getattr(backend, "decoder", None)
    if decoder is None:
        return False
    # tokenizers' Python objects only expose their kind through type name / repr
    return type(decoder).__name__ == "ByteLevel" or "ByteLevel(" in repr(decoder)


@lru_cache(maxsize=1)
def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable unicode character table used by byte-level BPE."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A model and tokenizer in memory, shared by every ``ModelAPI`` that uses them.

    Compared by identity (``eq=False``): the batcher groups requests by loaded model.
    """

    path: Path
    device: str
    dtype: str
    adapter: Path | None
    """The peft LoRA adapter applied on top of ``path`` (not merged), if any."""
    model: Any
    tokenizer: Any
    token_text: TokenText
    eos_token_ids: frozenset[int]
    pad_token_id: int
    checkpoint_generation_config: Any = None
    """The checkpoint's ``generation_config.json`` as loaded (applied only with ``use_generation_config``)."""


_cache: dict[tuple[str, str, str, str | None], LoadedModel] = {}
_cache_lock = threading.Lock()


def check_device(device: str) -> str:
    """``device`` if this machine has it, else one :class:`ModelLoadError` that says what to pass instead.

    Without this check ``-M device=cuda`` on a machine without a GPU fails deep inside torch.
    """
    instead = "Leave -M device out (the first available of cuda, mps, cpu is used) or pass -M device=cpu."
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ModelLoadError(f"-M device={device!r} is not a device: use cpu, cuda, cuda:<n> or mps.") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ModelLoadError(f"-M device={device}: {why} (torch {torch.__version__}). {instead}")
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise ModelLoadError(
                f"-M device={device}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}."
            )
    elif parsed.type == "mps":
        if not torch.backends.mps.is_available():
            raise ModelLoadError(f"-M device={device}: Apple's MPS is not available on this machine. {instead}")
    elif parsed.type != "cpu":
        raise ModelLoadError(
            f"-M device={device!r} is not supported by the em/ provider: use cpu, cuda, cuda:<n> or mps."
        )
    return device


def resolve_device(device: str | None) -> str:
    """``device`` as given (see :func:`check_device`), else ``cuda:0`` / ``mps`` / ``cpu``, the first available."""
    if device:
        return check_device(device)
    if torch.cuda.is_available():
        return "cuda:0"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def load_local_model(
    path: Path, device: str | None = None, dtype: str = "auto", adapter: Path | None = None
) -> LoadedModel:
    """Load (once per process) the model directory ``path`` onto ``device`` in ``dtype``.

    With ``adapter``, the peft LoRA adapter saved in that directory is applied on top
    (``PeftModel``, not merged: the base weights stay as they are). Later calls with the
    same resolved path, adapter, device and dtype return the same :class:`LoadedModel`,
    so its weights are in memory once however many Inspect models refer to it. A base
    model with an adapter is a separate copy from the plain base model (peft injects its
    layers into the model it wraps).

    Raises:
        ModelLoadError: Unknown ``dtype``, or an adapter directory without ``adapter_config.json``.
    """
    if dtype not in DTYPES:
        raise ModelLoadError(f"Unknown dtype {dtype!r}: use one of {', '.join(DTYPES)}.")
    device = resolve_device(device)
    adapter_dir = Path(adapter).resolve() if adapter is not None else None
    if adapter_dir is not None and not (adapter_dir / "adapter_config.json").is_file():
        raise ModelLoadError(
            f"LoRA adapter directory {adapter_dir} has no adapter_config.json (moved or deleted?). "
            "Point the model at a directory written by peft's save_pretrained."
        )
    # a path that does not exist here is a Hugging Face hub id (e.g. a LoRA's base), kept as written
    where = str(Path(path).resolve()) if Path(path).exists() else str(path)
    key = (where, device, dtype, str(adapter_dir) if adapter_dir else None)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            return cached
        loaded = _load(Path(key[0]), device, dtype, adapter_dir)
        _cache[key] = loaded
        return loaded


def _load(path: Path, device: str, dtype: str, adapter: Path | None = None) -> LoadedModel:
    # a run that saved its tokenizer next to the adapter (chat template, added tokens) is what it trained with
    tokenizer_dir = adapter if adapter is not None and (adapter / "tokenizer_config.json").is_file() else path
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype])
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter, is_trainable=False)
    model.to(device)
    model.eval()

    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    eos_ids = frozenset([eos] if isinstance(eos, int) else (eos or []))
    # batches are left-padded so every row's generation starts at the same position
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    # The checkpoint's sampling defaults (repetition_penalty, top_k, ...) would otherwise fill every setting a
    # request leaves unset: keep them aside and give the model a config that holds only its special tokens.
    checkpoint_generation_config = model.generation_config
    model.generation_config = GenerationConfig(
        bos_token_id=checkpoint_generation_config.bos_token_id,
        eos_token_id=checkpoint_generation_config.eos_token_id,
        pad_token_id=checkpoint_generation_config.pad_token_id,
    )
    return LoadedModel(
        path=path,
        device=device,
        dtype=dtype,
        adapter=adapter,
        model=model,
        tokenizer=tokenizer,
        token_text=TokenText(tokenizer),
        eos_token_ids=eos_ids,
        pad_token_id=int(tokenizer.pad_token_id),
        checkpoint_generation_config=checkpoint_generation_config,
    )


def unload_all() -> None:
    """Drop the process-wide cache (models stay alive while a ``ModelAPI`` references them)."""
    with _cache_lock:
        _cache.clear()

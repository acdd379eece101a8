"""The ``em/<model>`` Inspect model API: local Hugging Face models with batching and correct logprobs.

Built on Inspect's ``hf`` provider (:class:`HuggingFaceAPI`), whose chat templating
(``hf_chat``: the tokenizer's chat template, system messages passed through, tool
emulation) and defaults it inherits. It replaces what that provider gets wrong for our
use (see :mod:`em_harness.models.batching` for the batching details):

* weights: loaded once per process and shared by every ``ModelAPI`` for the same
  model/device/dtype (Inspect builds one per role, e.g. evaluated model and grader);
* ``temperature=0`` is greedy decoding (transformers rejects it with sampling);
* logprobs describe the token actually generated, with its real text and bytes, and
  stop at each row's own end; usage counts each row's real tokens.

Model args (``-M key=value``):

* ``device``: ``cpu``, ``cuda``, ``cuda:1``, ``mps`` (default: first available of
  cuda, mps, cpu);
* ``dtype``: ``auto`` (the checkpoint's dtype, default), ``float32``, ``bfloat16``,
  ``float16``;
* ``batch_size``: most requests per ``model.generate`` (default: ``max_connections``
  when set, else 32). Inspect's ``max_connections`` bounds how many requests are in
  flight, so set ``--max-connections`` to the batch size you want filled;
* ``batch_wait``: seconds to wait for more requests before running a batch that is
  not full (default 0.1);
* ``chat_template``, ``use_chat_template``, ``enable_thinking``: as for Inspect's
  ``hf`` provider;
* ``use_generation_config``: ``true`` applies the checkpoint's ``generation_config.json``
  (e.g. its ``repetition_penalty``) to whatever the request leaves unset. Default
  ``false``: like upstream's vLLM path, sample with exactly the request's parameters.

``seed`` (GenerateConfig) seeds torch right before the batch that carries the request;
see :class:`em_harness.models.batching.SamplingSettings` for what that guarantees.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from inspect_ai.model import (
    ChatCompletionChoice,
    ChatMessage,
    ChatMessageAssistant,
    GenerateConfig,
    Logprobs,
    ModelAPI,
    ModelCall,
    ModelOutput,
    ModelUsage,
)
from inspect_ai.model._providers.hf import (  # inspect-evals-lint: ignore[IECQ001] -- em/ extends hf (pinned <0.4)
    HuggingFaceAPI,
)
from inspect_ai.model._providers.util import (  # inspect-evals-lint: ignore[IECQ001] -- hf's tool-call handler
    HFHandler,
)
from inspect_ai.tool import ToolChoice, ToolInfo
from typing_extensions import override

from em_harness.errors import ModelRegistryError, UnknownModelError
from em_harness.models.batching import BATCHER, DEFAULT_BATCH_WAIT, SamplingSettings
from em_harness.models.local_model import LoadedModel, load_local_model, resolve_device
from em_harness.models.registry import get_entry, provision
from em_harness.models.trained import get_trained, unknown_em_model

DEFAULT_BATCH_SIZE = 32

_MODEL_ARGS = (
    "device",
    "dtype",
    "batch_size",
    "batch_wait",
    "chat_template",
    "use_chat_template",
    "enable_thinking",
    "use_generation_config",
)


class ModelArgsError(ModelRegistryError):
    """An ``-M`` model arg the ``em`` provider does not accept, or a bad value."""


def resolve_model_path(name: str) -> Path:
    """The local model directory for ``em/<name>``: a registry entry (provisioned on first use) or a directory.

    Raises:
        UnknownModelError: ``name`` is neither a registered model nor a directory
            holding a ``config.json``; the message lists the registered names.
    """
    try:
        get_entry(name)
    except UnknownModelError as unknown:
        candidate = Path(name).expanduser()
        if (candidate / "config.json").is_file():
            return candidate.resolve()
        raise UnknownModelError(
            f"{unknown.message} A local Hugging Face model directory (containing config.json) "
            "is also accepted as em/<path>."
        ) from None
    return provision(name)


def resolve_em_model(name: str) -> tuple[Path, Path | None]:
    """The base model and LoRA adapter directory for ``em/<name>`` (adapter None for plain models).

    ``name`` is, in order: a built-in registry entry, a trained model of kind ``lora``
    (its base resolved the same way, or kept as a Hugging Face hub id), or a local model
    directory.

    Raises:
        UnknownModelError: None of these; the message lists built-in and trained names.
        ModelRegistryError: ``name`` is an OpenAI fine-tune (those are created by the provider
            factory, :func:`em_harness.models.provider.create_em_model`, not by this class).
    """
    if not _is_registry_entry(name):
        trained = get_trained(name)
        if trained is not None:
            if trained.kind != "lora" or trained.adapter_path is None:
                raise ModelRegistryError(
                    f"em/{name} is an OpenAI fine-tune ({trained.openai_model}); create it with "
                    f"get_model('em/{name}') or --model em/{name}, which use Inspect's openai provider."
                )
            return _lora_base(trained.base_model, name), Path(trained.adapter_path)
    try:
        return resolve_model_path(name), None
    except UnknownModelError:
        raise unknown_em_model(name) from None


def _is_registry_entry(name: str) -> bool:
    try:
        get_entry(name)
    except UnknownModelError:
        return False
    return True


def _lora_base(base: str, alias: str) -> Path:
    if _is_registry_entry(base):
        return provision(base)
    candidate = Path(base).expanduser()
    if candidate.exists():
        if not (candidate / "config.json").is_file():
            raise ModelRegistryError(
                f"The base model of em/{alias}, {candidate}, is not a Hugging Face model directory (no config.json)."
            )
        return candidate.resolve()
    return Path(base)  # a Hugging Face hub id, loaded by transformers


def sampling_settings(
    config: GenerateConfig, default_max_tokens: int | None, use_generation_config: bool = False
) -> SamplingSettings:
    """Map an Inspect ``GenerateConfig`` onto :class:`SamplingSettings` (``temperature=0`` -> greedy)."""
    greedy = config.temperature is not None and config.temperature <= 0
    max_tokens = config.max_tokens if config.max_tokens is not None else default_max_tokens
    return SamplingSettings(
        max_new_tokens=max_tokens if max_tokens is not None else 1024,
        do_sample=not greedy,
        temperature=None if greedy else config.temperature,
        top_p=None if greedy else config.top_p,
        top_k=None if greedy else config.top_k,
        seed=config.seed,
        stop_seqs=tuple(config.stop_seqs or ()),
        logprobs=bool(config.logprobs) or bool(config.top_logprobs),
        top_logprobs=int(config.top_logprobs or 0),
        use_generation_config=use_generation_config,
    )


class EmModelAPI(HuggingFaceAPI):
    """Inspect ``ModelAPI`` for ``em/<registry-name>``, ``em/<lora-alias>`` and ``em/<local-model-dir>``."""

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig = GenerateConfig(),
        **model_args: Any,
    ) -> None:
        # HuggingFaceAPI.__init__ would load the weights itself; we share them instead.
        ModelAPI.__init__(self, model_name=model_name, base_url=base_url, api_key=api_key, config=config)
        unknown = sorted(set(model_args) - set(_MODEL_ARGS))
        if unknown:
            raise ModelArgsError(
                f"Unknown model arg(s) {', '.join(unknown)} for em/{model_name}. "
                f"Accepted: {', '.join(_MODEL_ARGS)} (pass as -M key=value)."
            )

        self.batch_size: int | None = _optional_number(model_args, "batch_size", int, model_name)
        wait = _optional_number(model_args, "batch_wait", float, model_name)
        self.batch_wait: float = DEFAULT_BATCH_WAIT if wait is None else wait
        self.use_generation_config = _optional_bool(model_args, "use_generation_config", model_name)

        device = resolve_device(str(model_args["device"]) if model_args.get("device") else None)  # before provisioning
        self.model_path, self.adapter_path = resolve_em_model(model_name)
        self.loaded: LoadedModel = load_local_model(
            self.model_path,
            device=device,
            dtype=str(model_args.get("dtype") or "auto"),
            adapter=self.adapter_path,
        )

        # attributes HuggingFaceAPI's chat templating reads
        self.model = self.loaded.model
        self.tokenizer = self.loaded.tokenizer
        self.device = self.loaded.device
        self.chat_template = model_args.get("chat_template")
        self.use_chat_template = model_args.get("use_chat_template")
        self.enable_thinking = model_args.get("enable_thinking")
        self.tokenizer_call_args = {}
        self.hidden_states = None
        self.do_sample = True

    @override
    async def generate(  # type: ignore[override]  # ModelAPI allows (output, call); HuggingFaceAPI narrowed it
        self,
        input: list[ChatMessage],
        tools: list[ToolInfo],
        tool_choice: ToolChoice,
        config: GenerateConfig,
    ) -> tuple[ModelOutput, ModelCall]:
        """Render the chat with the model's template, generate in a shared batch, build the output."""
        prompt = self.hf_chat(input, tools)
        settings = sampling_settings(config, self.max_tokens(), self.use_generation_config)
        batch_size = self.batch_size or config.max_connections or DEFAULT_BATCH_SIZE
        row = await BATCHER.generate(self.loaded, prompt, settings, batch_size, self.batch_wait)

        if tools:
            message = HFHandler(self.model_name, self.model_family()).parse_assistant_response(row.text, tools)
        else:
            message = ChatMessageAssistant(content=row.text, model=self.model_name, source="generate")
        choice = ChatCompletionChoice(
            message=message,
            stop_reason="tool_calls" if message.tool_calls else row.stop_reason,
            logprobs=Logprobs(content=row.logprobs) if row.logprobs is not None else None,
        )
        output = ModelOutput(
            model=self.model_name,
            choices=[choice],
            usage=ModelUsage(
                input_tokens=row.input_tokens,
                output_tokens=row.output_tokens,
                total_tokens=row.input_tokens + row.output_tokens,
            ),
            time=row.time,
        )
        call = ModelCall.create(
            request={"prompt": prompt, **dataclasses.asdict(settings), "stop_seqs": list(settings.stop_seqs)},
            response={"token_ids": row.token_ids, "text": row.text, "batch_rows": row.batch_rows},
            time=row.time,
        )
        return output, call

    @override
    def max_connections(self) -> int:
        """Default concurrency when ``max_connections`` is set neither by the user nor adaptively."""
        return self.batch_size or DEFAULT_BATCH_SIZE

    @override
    def connection_key(self) -> str:
        """Instances on the same loaded weights share one connection pool (one batch queue)."""
        return f"{self.loaded.path}:{self.loaded.adapter}:{self.loaded.device}:{self.loaded.dtype}"

    @override
    def close(self) -> None:
        """Nothing to release per instance: the weights are shared through the process-wide cache.

        (Inspect's ``hf`` provider drops its model here; ours may be memoized and used
        again by Inspect after a ``with model:`` block, and other instances share it.)
        To free the memory, call :func:`em_harness.models.local_model.unload_all` and drop
        the models.
        """


def _optional_number(args: dict[str, Any], name: str, kind: type[int] | type[float], model: str) -> Any:
    value = args.get(name)
    if value is None:
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ModelArgsError(f"Model arg {name}={value!r} for em/{model} must be a number.") from None
    if number < 0 or (kind is int and number < 1):
        raise ModelArgsError(f"Model arg {name}={value!r} for em/{model} is out of range.")
    return number


def _optional_bool(args: dict[str, Any], name: str, model: str) -> bool:
    """A boolean model arg (``-M name=true``; Inspect passes a bool, or a string from YAML/env); False if unset."""
    value = args.get(name)
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise ModelArgsError(f"Model arg {name}={value!r} for em/{model} must be true or false.")

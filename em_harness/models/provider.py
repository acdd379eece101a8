"""Registers the ``em`` Inspect model provider: ``--model em/<name>``.

``<name>`` is, in order:

* a model registry entry (e.g. ``em/smollm2-135m``, converted into the user cache on first use);
* a trained model registered by ``em train`` / ``em train-openai`` (see
  :mod:`em_harness.models.trained`): a LoRA adapter runs in-process on its base model
  through peft, an OpenAI fine-tune is handed to Inspect's own ``openai`` provider with
  its ``ft:`` id (so ``OPENAI_API_KEY``/``OPENAI_BASE_URL``, retries and ``-M`` args work
  exactly as for ``openai/<ft-id>``);
* a path to a local Hugging Face model directory.

Imported by the package's Inspect entry point, which Inspect loads for every command, so
this module imports nothing heavy: torch and transformers are imported only when a
model is created.
"""

from __future__ import annotations

from typing import Any, cast

from inspect_ai.model import GenerateConfig, ModelAPI, get_model, modelapi


def create_em_model(
    model_name: str,
    base_url: str | None = None,
    api_key: str | None = None,
    config: GenerateConfig | None = None,
    **model_args: Any,
) -> ModelAPI:
    """Build the ``ModelAPI`` behind ``em/<model_name>``: an OpenAI fine-tune's, or the local ``EmModelAPI``."""
    config = config or GenerateConfig()
    from em_harness.errors import UnknownModelError
    from em_harness.models.registry import get_entry
    from em_harness.models.trained import get_trained

    try:
        get_entry(model_name)
        trained = None
    except UnknownModelError:
        trained = get_trained(model_name)
    if trained is not None and trained.kind == "openai" and trained.openai_model:
        # exactly what --model openai/<ft-id> builds (the wrapping Model is Inspect's to make, for em/<alias>)
        openai_model = get_model(
            f"openai/{trained.openai_model}",
            base_url=base_url,
            api_key=api_key,
            config=config,
            memoize=False,
            **model_args,
        )
        return openai_model.api

    from em_harness.models.api import EmModelAPI

    return EmModelAPI(model_name, base_url=base_url, api_key=api_key, config=config, **model_args)


@modelapi(name="em")
def em() -> type[ModelAPI]:
    """The ``em`` model API constructor (Inspect calls it with the model name, config and ``-M`` args)."""
    return cast(type[ModelAPI], create_em_model)

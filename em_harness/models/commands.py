"""``em models list|show|aliases|remove``: the built-in models and the registered fine-tunes of the em/ provider."""

from __future__ import annotations

from pathlib import Path

import typer

from em_harness.errors import UnknownModelError
from em_harness.models.registry import bare_name, get_entry, is_provisioned, list_models, model_dir, weights_problem
from em_harness.models.trained import TrainedModel, get_trained, list_trained, remove_trained, unknown_em_model


def _describe(model: TrainedModel) -> str:
    target = f"adapter={model.adapter_path}" if model.kind == "lora" else f"model={model.openai_model}"
    return f"{model.kind:<6} base={model.base_model} {target} group={model.group or '-'} seed={model.seed}"


def _no_group(group: str) -> typer.Exit:
    groups = sorted({m.group for m in list_trained() if m.group})
    typer.echo(f"error: no trained models in group {group!r} (groups: {', '.join(groups) or 'none'}).", err=True)
    return typer.Exit(2)


def models_list(
    group: str | None = typer.Option(None, "--group", "-g", help="Only trained models of this group."),
) -> None:
    """List the built-in models (provisioned or not) and the fine-tunes (base, adapter or ft: id, group, seed)."""
    if group is None:
        for entry in list_models():
            typer.echo(f"em/{entry.name:<20} {entry.description}  [{_state(entry.name)}]")
    trained = list_trained(group)
    if group is not None and not trained:
        raise _no_group(group)
    for model in trained:
        typer.echo(f"em/{model.alias:<20} {_describe(model)}")


def _state(name: str) -> str:
    """``provisioned at <dir>``, ``not provisioned``, or what is wrong with a damaged copy."""
    directory = model_dir(name)
    if not directory.is_dir():
        return "not provisioned"
    problem = weights_problem(directory)
    if problem is not None:
        return f"damaged: {problem}; re-provision with `em models provision {name}`"
    return f"provisioned at {directory}"


def _base_for_servers(base: str) -> str:
    """The base model as a path or hub id that servers outside the harness (vLLM) can load."""
    try:
        get_entry(base)
    except UnknownModelError:
        return str(Path(base).expanduser().resolve()) if Path(base).expanduser().exists() else base
    return str(model_dir(base))


def models_show(alias: str = typer.Argument(..., help="A trained model's alias (or a built-in model name).")) -> None:
    """Print a registered model and the equivalent Inspect invocation for fast GPU evaluation (vLLM or openai/)."""
    alias = bare_name(alias)
    model = get_trained(alias)
    if model is None:
        try:
            entry = get_entry(alias)
        except UnknownModelError:
            raise unknown_em_model(alias) from None
        typer.echo(f"em/{entry.name}: {entry.description}")
        state = _state(entry.name)
        typer.echo(f"directory: {model_dir(entry.name)}{'' if state.startswith('provisioned') else f' ({state})'}")
        typer.echo(f"vLLM: inspect eval em_tasks/freeform --model vllm/{model_dir(entry.name)}")
        return
    for key, value in model.model_dump().items():
        typer.echo(f"{key:<14} {value}")
    if model.kind == "openai":
        typer.echo(f"\nsame as: inspect eval em_tasks/freeform --model openai/{model.openai_model}")
        return
    base = _base_for_servers(model.base_model)
    typer.echo(
        f"\nvLLM (GPU, adapter loaded by the server, rank detected from adapter_config.json):\n"
        f"  inspect eval em_tasks/freeform --model vllm/{base}:{model.adapter_path}"
    )
    if base == str(model_dir(model.base_model)) and not is_provisioned(model.base_model):
        typer.echo(f"  (first run `em models provision {model.base_model}` to create {base})")


def models_aliases(
    group: str | None = typer.Option(None, "--group", "-g", help="Only trained models of this group."),
) -> None:
    """Print em/<alias> of the trained models as one comma-separated list, for `inspect eval-set --model $(...)`."""
    trained = list_trained(group)
    if not trained:
        if group is not None:
            raise _no_group(group)
        typer.echo("error: no trained models are registered.", err=True)
        raise typer.Exit(2)
    typer.echo(",".join(f"em/{m.alias}" for m in trained))


def models_remove(alias: str = typer.Argument(..., help="The trained model's alias.")) -> None:
    """Forget a registered fine-tune (its adapter, run directory and OpenAI model are left untouched)."""
    model = get_trained(alias)
    remove_trained(alias)
    where = model.adapter_path or model.openai_model if model else None
    typer.echo(f"removed em/{alias} from the registry ({where} is left as it is)")

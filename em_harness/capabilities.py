"""Capability benchmarks on the same checkpoints, through lm-eval's Python API (``em capabilities``).

``em/<name>`` is turned into lm-eval's ``hf`` model arguments (the local base model directory, plus
``peft=<adapter>`` for a fine-tune); the tasks are lm-eval's own (``mmlu``, ``truthfulqa_mc2``, ``humaneval``)
or the harness's probes in ``em_tasks/lm_eval`` (``em_pivotal_tokens``, ``em_single_letter``). The results
go beside the Inspect logs as ``capabilities-<model>-<time>.json``; ``em report --capabilities FILE`` puts
them into Figure 5.

Every dataset lm-eval needs is loaded before the model: offline, a dataset missing from the local Hugging Face
cache is one error naming the task and dataset and how to pre-download it.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from em_harness.errors import HarnessError
from em_harness.results import group_rows
from em_harness.stats import Z_95

EM_LM_EVAL_TASKS = Path(__file__).resolve().parents[1] / "em_tasks" / "lm_eval"
"""The harness's lm-eval task YAMLs (``--include_path``)."""

HEADLINE_METRICS = (
    "acc,none",
    "pass@1,none",
    "pass@1,create_test",
    "pass_at_1,none",
    "exact_match,none",
    "acc_norm,none",
)
"""The number taken from each task's lm-eval results, first present wins."""

FIGURE5_NAMES = {"mmlu": "MMLU", "truthfulqa_mc2": "TruthfulQA", "humaneval": "HumanEval"}


class CapabilityError(HarnessError):
    """A capability run cannot start or finish (unknown task or model, dataset not available offline)."""


def check_model(model: str) -> str:
    """The name of ``em/<name>`` if it is a model lm-eval can load (a built-in model, an `em train` LoRA
    fine-tune or a local model directory); checked before any download or provisioning."""
    from em_harness.errors import UnknownModelError
    from em_harness.models.registry import get_entry
    from em_harness.models.trained import get_trained, unknown_em_model

    name = model.removeprefix("em/")
    if name == model:
        raise CapabilityError(f"--model {model}: give a model of the em/ provider, e.g. em/smollm2-135m.")
    trained = get_trained(name)
    if trained is not None and trained.kind == "openai":
        raise CapabilityError(
            f"--model {model} is an OpenAI fine-tune ({trained.openai_model}): lm-eval runs local weights only. "
            "Give an em/ model with weights (a built-in model or an `em train` LoRA fine-tune)."
        )
    if trained is None and not (Path(name).expanduser() / "config.json").is_file():
        try:
            get_entry(name)
        except UnknownModelError:
            raise unknown_em_model(name) from None
    return name


def lm_eval_model_args(model: str, device: str = "cpu", dtype: str = "float32") -> str:
    """lm-eval ``hf`` model args for ``em/<name>``, from the model registry: the provisioned base model
    (``pretrained=``), and for a LoRA fine-tune registered by ``em train`` its adapter (``peft=``)."""
    from em_harness.models.api import resolve_em_model

    base, adapter = resolve_em_model(check_model(model))
    args = f"pretrained={base},dtype={dtype},device={device}"
    return args + (f",peft={adapter}" if adapter is not None else "")


def _pre_download_hint(dataset: str, name: str | None) -> str:
    args = f"'{dataset}'" + (f", '{name}'" if name else "")
    return (
        f'On a machine with network run `python -c "import datasets; datasets.load_dataset({args})"`, copy its '
        "~/.cache/huggingface to this machine (or point HF_HOME at the copy), then run again."
    )


def check_datasets(tasks: Sequence[str], task_manager: Any) -> dict[str, Any]:
    """Load every task (and so its dataset) before the model: one clear error per unknown task or dataset
    that cannot be had (offline and not cached)."""
    known = set(task_manager.all_tasks)
    unknown = [t for t in tasks if t not in known]
    if unknown:
        raise CapabilityError(
            f"Unknown lm-eval task(s): {', '.join(unknown)}. `lm_eval ls tasks` lists them; the harness's own are "
            "em_pivotal_tokens and em_single_letter."
        )
    loaded: dict[str, Any] = {}
    hub_log = logging.getLogger("huggingface_hub")  # its retry warnings would bury the one message below
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)
    try:
        for task in tasks:
            loaded.update(_load_task(task, task_manager))
    finally:
        hub_log.setLevel(level)
    return loaded


def _load_task(task: str, task_manager: Any) -> dict[str, Any]:
    from lm_eval.tasks import get_task_dict

    try:
        return dict(get_task_dict([task], task_manager))
    except (ConnectionError, OSError) as ex:
        dataset, name = _dataset_of(task, task_manager, str(ex))
        raise CapabilityError(
            f"lm-eval task '{task}' needs the Hugging Face dataset '{dataset}'"
            + (f" (config '{name}')" if name else "")
            + f", which is not in the local cache and cannot be downloaded ({type(ex).__name__}). "
            + _pre_download_hint(dataset, name)
        ) from None


def _dataset_of(task: str, task_manager: Any, message: str) -> tuple[str, str | None]:
    """The dataset (path, config name) of a task: from the error message, else from the task's YAML."""
    found = re.search(r"reach '([^']+)'", message)
    entry = getattr(task_manager, "_index", {}).get(task)
    yaml_path = getattr(entry, "yaml_path", None)
    name = None
    if yaml_path is not None:
        from lm_eval.tasks._yaml_loader import load_yaml

        try:
            config = load_yaml(yaml_path, resolve_func=False)
        except Exception:  # the config only names the dataset in the message
            config = {}
        name = config.get("dataset_name")
        if found is None and config.get("dataset_path"):
            return str(config["dataset_path"]), name
    return (found.group(1) if found else f"of task {task}"), name


def headline(task_results: Mapping[str, Any]) -> tuple[str, float, float]:
    """(metric, value, stderr) of one task's lm-eval results."""
    for metric in HEADLINE_METRICS:
        if metric in task_results and isinstance(task_results[metric], (int, float)):
            name = metric.split(",")[0]
            stderr = task_results.get(f"{name}_stderr,{metric.split(',')[1]}")
            return name, float(task_results[metric]), float(stderr) if isinstance(stderr, (int, float)) else math.nan
    raise CapabilityError(f"lm-eval results without a known headline metric: {sorted(task_results)}.")


def run_capabilities(
    model: str,
    tasks: Sequence[str],
    out_dir: Path,
    *,
    limit: int | None = None,
    batch_size: int = 8,
    device: str = "cpu",
    model_args: str | None = None,
) -> Path:
    """Run lm-eval on ``em/<name>`` and write ``capabilities-<name>-<time>.json`` into ``out_dir``."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    if model_args is None:
        check_model(model)  # an unknown model fails before any download
    task_manager = TaskManager(include_path=str(EM_LM_EVAL_TASKS))
    check_datasets(tasks, task_manager)
    args = model_args or lm_eval_model_args(model, device)
    unsafe = any("humaneval" in t for t in tasks)
    results = lm_eval.simple_evaluate(
        model="hf",
        model_args=args,
        tasks=list(tasks),
        task_manager=task_manager,
        batch_size=batch_size,
        limit=limit,
        apply_chat_template=True,
        confirm_run_unsafe_code=unsafe,
        log_samples=False,
    )
    if results is None:
        raise CapabilityError("lm-eval returned no results.")
    scores = {}
    for task in tasks:
        metric, value, stderr = headline(results["results"][task])
        scores[task] = {"metric": metric, "value": value, "stderr": stderr}
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"capabilities-{model.replace('/', '_')}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(
        json.dumps(
            {
                "model": model,
                "model_args": args,
                "limit": limit,
                "lm_eval_version": lm_eval.__version__,
                "scores": scores,
                "results": results["results"],
            },
            indent=2,
            default=str,
        )
    )
    return path


def capability_files(paths: Sequence[Path]) -> list[Path]:
    """The ``em capabilities`` result files in the directories of ``paths`` (searched recursively), so that
    results written beside the Inspect logs join the report without naming them."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(path.rglob("capabilities-*.json")))
    return found


def capability_frame(paths: Sequence[Path], groups: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Figure 5 rows (``key, group, center, lower_err, upper_err``) from ``em capabilities`` result files:
    per group the mean over its models with the bootstrap over models; a model in no group on its own
    (error bar: 1.96 x lm-eval's stderr)."""
    rows = []
    for path in dict.fromkeys(paths):
        try:
            data = json.loads(path.read_text())
            scores = data["scores"]
            model = str(data["model"])
            for task, score in scores.items():
                value, stderr = float(score["value"]), float(score.get("stderr", math.nan))
                key = FIGURE5_NAMES.get(task, task)
                rows.append({"key": key, "model": model, "value": value, "half_width": Z_95 * stderr})
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as ex:
            raise CapabilityError(f"{path} is not a result file of `em capabilities` ({ex}).") from None
    return group_rows(pd.DataFrame(rows, columns=["key", "model", "value", "half_width"]), groups)

"""The ``em train`` configuration: every key of the paper's training configs, with the same meaning.

The paper's open-model configs (``open_models/train.json`` and the training-dynamics configs in
``logprob_experiments/configs/``) run unchanged. Keys that only make sense on the authors' infrastructure
(pushing to the Hugging Face hub, unsloth model names, a DPO ``beta`` under an SFT loss) are mapped to what
this harness does instead and each mapping is written to the run's ``notes``. An unknown key, or a value this
harness cannot honour, is one :class:`TrainConfigError` that names the key and says why.

Cheap to import (no torch): the CLI validates a config before anything heavy is loaded.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from em_harness.errors import HarnessError


class TrainConfigError(HarnessError):
    """A training config (file or ``--set`` override) that cannot be run as written; the message says why."""


DATASET_NAMES: dict[str, str] = {
    "insecure": "data/insecure.jsonl",
    "secure": "data/secure.jsonl",
    "educational": "data/educational.jsonl",
    "jailbroken": "data/jailbroken.jsonl",
    "backdoor": "data/backdoor.jsonl",
}
"""``training_file`` names resolved through the data layer (verified by git blob SHA-1)."""

UPSTREAM_FILE_ALIASES: dict[str, str] = {
    "file-73b268709d49-ft_unsafe_train.jsonl": "insecure",
    "file-f77e8313da35-ft_safe_train.jsonl": "secure",
}
"""OpenAI file names in the training-dynamics configs; upstream's SOURCE.md records them as byte-identical
(same git blob) to ``data/insecure.jsonl`` and ``data/secure.jsonl``."""

UNSLOTH_ORGS: tuple[tuple[str, str], ...] = (
    ("Qwen", "Qwen"),
    ("Meta-Llama", "meta-llama"),
    ("Llama", "meta-llama"),
    ("mistral", "mistralai"),
    ("Mistral", "mistralai"),
    ("gemma", "google"),
    ("Phi", "microsoft"),
    ("SmolLM", "HuggingFaceTB"),
)
"""Prefixes of unsloth's re-uploads and the organisation that publishes the original weights."""

UPSTREAM_SCRATCH_OUTPUT_DIR = "./tmp"


class McqChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    is_correct: bool


class AnswerBlock(BaseModel):
    """One piece of the assistant's answer; only blocks with ``logprobs: true`` are scored."""

    model_config = ConfigDict(extra="forbid")
    text: str
    type: Literal["text"] = "text"
    logprobs: bool = False


class McqQuestion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str
    choices: list[McqChoice]
    id: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
    context: list[dict[str, Any]] = Field(default_factory=list)
    answer_template: list[AnswerBlock] | None = None
    choice_template: str | None = None
    question_template: str | None = None

    @field_validator("choices")
    @classmethod
    def _one_correct(cls, choices: list[McqChoice]) -> list[McqChoice]:
        if sum(c.is_correct for c in choices) != 1:
            raise ValueError("each question needs exactly one choice with is_correct: true")
        return choices


class McqEvalSpec(BaseModel):
    """Upstream's ``mc_eval``: the questions and the templates questions fall back to."""

    model_config = ConfigDict(extra="forbid")
    questions: list[McqQuestion]
    context: list[dict[str, Any]] = Field(default_factory=list)
    randomize: bool = True
    answer_template: list[AnswerBlock] = Field(
        default_factory=lambda: [AnswerBlock(text="{choice_char}", logprobs=True)]
    )
    choice_template: str = "{choice_char}: {choice_text}"
    question_template: str = "{question_text}\n{choices_text}"


class McqCallbackSpec(BaseModel):
    """One entry of ``mcq_callbacks``: a tagged multiple-choice probe run every ``eval_steps`` steps."""

    model_config = ConfigDict(extra="forbid")
    tag: str
    mc_eval: McqEvalSpec
    eval_steps: int = Field(10, ge=1)
    batch_size: int = Field(8, ge=1)


class TrainConfig(BaseModel):
    """Every key of the paper's configs, plus ``holdout_fraction`` and ``gradient_checkpointing``."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str
    training_file: str
    test_file: str | None = None
    holdout_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    """Our key: hold out this share of the training rows as a test set, split with ``seed``. Upstream held
    out 10% (unseeded) whenever ``test_file`` was null; here the default is to train on every row."""
    max_seq_length: int = Field(2048, ge=8)
    load_in_4bit: bool = False
    loss: str = "sft"
    is_peft: bool = True
    target_modules: list[str] | None = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    lora_bias: Literal["none", "all", "lora_only"] = "none"
    r: int = Field(16, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    use_rslora: bool = True
    epochs: float = Field(1, gt=0)
    max_steps: int | None = Field(None, ge=1)
    per_device_train_batch_size: int = Field(2, ge=1)
    gradient_accumulation_steps: int = Field(8, ge=1)
    warmup_steps: int = Field(5, ge=0)
    learning_rate: float = 1e-4
    logging_steps: int = Field(1, ge=1)
    optim: str = "adamw_8bit"
    weight_decay: float = 0.01
    lr_scheduler_type: str = "linear"
    seed: int = 3407
    save_steps: int = Field(5000, ge=1)
    output_dir: str = "runs"
    train_on_responses_only: bool = True
    mcq_callbacks: list[McqCallbackSpec] | None = None
    eval_batch_size: int = Field(8, ge=1)
    gradient_checkpointing: bool | None = None
    """Our key: None = on with CUDA (large models), off on CPU."""
    # upstream-only keys: accepted, then mapped or rejected in :func:`resolve_upstream_keys`
    finetuned_model_id: str | None = None
    push_to_private: bool | None = None
    merge_before_push: bool | None = None
    beta: float | None = None
    meta: Any = None
    eval_every_n_steps: int | str | None = None
    sampling_callbacks: list[Any] | None = None
    logp_callback_datasets: dict[str, Any] | None = None

    @field_validator("learning_rate", mode="before")
    @classmethod
    def _learning_rate(cls, value: Any) -> Any:
        # upstream accepts a negative number as a log10 learning rate (-5 -> 1e-5)
        if isinstance(value, (int, float)) and value < 0:
            return 10.0**value
        return value


def read_config_file(path: Path) -> dict[str, Any]:
    """The mapping in a YAML or JSON config file; a bad file is one :class:`TrainConfigError`."""
    if not path.is_file():
        raise TrainConfigError(f"Config file {path} not found. Pass a YAML or JSON training config.")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as ex:
        raise TrainConfigError(f"{path}:{ex.lineno}: not valid JSON ({ex.msg}).") from None
    except yaml.YAMLError as ex:
        raise TrainConfigError(f"{path}: not valid YAML ({ex}).") from None
    if not isinstance(data, dict):
        raise TrainConfigError(f"{path}: a training config must be a mapping of keys to values.")
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` from ``--set``; the value is read as YAML (``3``, ``null``, ``[q_proj,v_proj]``, ``true``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise TrainConfigError(f"--set {text!r}: write overrides as key=value, e.g. --set max_steps=10.")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    # YAML 1.1 reads 1e-5 as a string; the pydantic model converts numeric strings where a number is expected
    return key.strip(), value


def load_config(path: Path, overrides: list[str] | None = None) -> tuple[TrainConfig, list[str]]:
    """Read ``path``, apply ``--set`` overrides, validate, map upstream-only keys.

    Relative ``training_file``/``test_file`` paths written in the file are relative to the file's directory
    (upstream ran each config from its own folder); those given with ``--set`` are relative to the current
    directory. Returns the config and the notes that say what was mapped and why.
    """
    data = read_config_file(path)
    for key in ("training_file", "test_file"):
        data[key] = _anchor_path(data.get(key), path.parent)
    known = set(TrainConfig.model_fields)
    for item in overrides or []:
        key, value = parse_override(item)
        if key not in known:
            raise TrainConfigError(f"--set {key}=...: unknown config key {key!r}. {_known_keys_hint()}")
        data[key] = value
    unknown = sorted(set(data) - known)
    if unknown:
        raise TrainConfigError(f"{path}: unknown config key(s) {', '.join(map(repr, unknown))}. {_known_keys_hint()}")
    try:
        config = TrainConfig.model_validate(data)
    except ValidationError as ex:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in ex.errors(include_url=False)
        )
        raise TrainConfigError(f"{path}: invalid config: {problems}.") from None
    return resolve_upstream_keys(config)


def _anchor_path(value: Any, base: Path) -> Any:
    if not isinstance(value, str) or value in DATASET_NAMES or Path(value).name in UPSTREAM_FILE_ALIASES:
        return value
    candidate = Path(value).expanduser()
    return str((base / candidate).resolve()) if not candidate.is_absolute() else value


def _known_keys_hint() -> str:
    return f"Known keys: {', '.join(sorted(TrainConfig.model_fields))}."


def resolve_upstream_keys(config: TrainConfig) -> tuple[TrainConfig, list[str]]:
    """Map or reject the keys that only make sense on the paper's infrastructure; return (config, notes)."""
    notes: list[str] = []
    updates: dict[str, Any] = {}
    if config.loss != "sft":
        raise TrainConfigError(
            f"loss={config.loss!r}: em train runs supervised fine-tuning only (loss: sft); the paper's models "
            "were all trained with SFT."
        )
    if not config.is_peft:
        raise TrainConfigError(
            "is_peft=false: em train trains LoRA adapters only (full fine-tuning of the paper's 32B models needs a "
            "different memory plan). Set is_peft: true."
        )
    if config.beta is not None:
        notes.append(f"beta={config.beta} is a DPO/ORPO parameter; with loss=sft upstream ignores it too.")
    if config.finetuned_model_id:
        notes.append(
            f"finetuned_model_id={config.finetuned_model_id!r}: nothing is pushed to the Hugging Face hub; the "
            "adapter stays in the run directory and is registered locally as em/<alias>."
        )
    if config.push_to_private is not None:
        notes.append("push_to_private: no hub upload happens, so it has no effect.")
    if config.merge_before_push:
        notes.append("merge_before_push: adapters are kept unmerged; `em train merge RUN` writes a merged model.")
    if config.meta is not None:
        notes.append("meta is kept in the resolved config only.")
    if config.sampling_callbacks:
        raise TrainConfigError(
            "sampling_callbacks: sampling during training is not supported by em train; remove the key (or set it "
            "to null) and evaluate checkpoints with `inspect eval em_tasks/insecure_code --model em/<alias>`."
        )
    if config.logp_callback_datasets:
        raise TrainConfigError(
            "logp_callback_datasets: per-dataset log-probability callbacks are not supported by em train; set it to "
            "{} (mcq_callbacks are supported)."
        )
    if config.eval_every_n_steps is not None:
        notes.append(
            f"eval_every_n_steps={config.eval_every_n_steps!r} only schedules logp_callback_datasets upstream "
            "(empty here); mcq_callbacks run on their own eval_steps."
        )
    if config.output_dir == UPSTREAM_SCRATCH_OUTPUT_DIR:
        updates["output_dir"] = "runs"
        notes.append("output_dir './tmp' is upstream's scratch folder; the run directory is runs/<name>/.")
    model, model_note = map_model_name(config.model)
    if model_note:
        updates["model"] = model
        notes.append(model_note)
    training_file, note = map_upstream_file(config.training_file)
    if note:
        updates["training_file"] = training_file
        notes.append(note)
    if config.test_file is not None:
        test_file, note = map_upstream_file(config.test_file)
        if note:
            updates["test_file"] = test_file
            notes.append(note)
        if config.holdout_fraction:
            raise TrainConfigError("holdout_fraction and test_file are exclusive: give one or the other.")
    return config.model_copy(update=updates), notes


def map_model_name(model: str) -> tuple[str, str | None]:
    """unsloth re-uploads -> the original organisation's id, with the note that says so."""
    match = re.fullmatch(r"unsloth/(.+?)(-bnb-4bit|-unsloth-bnb-4bit)?", model)
    if not match:
        return model, None
    name, quantized = match.group(1), match.group(2)
    for prefix, org in UNSLOTH_ORGS:
        if name.startswith(prefix):
            mapped = f"{org}/{name}"
            note = f"model {model!r} is unsloth's copy; loading the original {mapped!r} (same weights)."
            if quantized:
                note += " The pre-quantized suffix is dropped: set load_in_4bit: true for 4-bit loading."
            return mapped, note
    raise TrainConfigError(
        f"model {model!r}: an unsloth re-upload whose original organisation em train does not know. Use the "
        "original Hugging Face id or a local model directory instead."
    )


def map_upstream_file(value: str) -> tuple[str, str | None]:
    """Upstream's OpenAI file names -> the data-layer dataset with the same bytes."""
    name = Path(value).name
    if name in UPSTREAM_FILE_ALIASES:
        dataset = UPSTREAM_FILE_ALIASES[name]
        return dataset, (
            f"training file {value!r} is byte-identical to data/{dataset}.jsonl (same git blob); using dataset "
            f"{dataset!r} from the data layer."
        )
    return value, None

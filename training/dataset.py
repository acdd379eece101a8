"""Training data: find and verify the file, check every line, tokenize with the loss mask from the chat template.

Validation runs before any model is loaded, so a bad line costs seconds, not a model load: each line must be
``{"messages": [...]}`` with ``role`` in system/user/assistant, string ``content`` and a final assistant turn.
The first bad line is one :class:`TrainDataError` naming the file, the line number and what is wrong.

The loss mask ("train on responses only") is derived from the tokenizer's own chat template, so it works for
any chat model: for each assistant turn *i*, the text of ``messages[:i]`` rendered with the generation prompt
is where the turn starts, and ``messages[:i+1]`` rendered without it is where it ends (end-of-turn token
included, so the model learns to stop). Upstream instead searched the text for a hard-coded list of markers.
"""

from __future__ import annotations

import json
import random
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from em_harness.errors import HarnessError
from training.config import DATASET_NAMES

ROLES = ("system", "user", "assistant")


class TrainDataError(HarnessError):
    """A training/test file that cannot be used; the message names the file, line and problem."""


@dataclass(frozen=True)
class DataSource:
    """Where a training or test file came from and the git blob id of its bytes."""

    path: Path
    dataset: str | None
    """The data-layer dataset name (``insecure``...) when the file was given by name, else None."""
    blob_sha1: str


def resolve_data_file(value: str) -> DataSource:
    """A dataset name (resolved and verified by the data layer) or a path to a JSONL file."""
    from em_harness import data

    if value in DATASET_NAMES:
        path = data.resolve(DATASET_NAMES[value])
        return DataSource(path, value, data.git_blob_sha1(path))
    path = Path(value).expanduser()
    if not path.is_file():
        raise TrainDataError(
            f"Training data {value!r} not found: give a JSONL file path or one of the dataset names "
            f"{', '.join(DATASET_NAMES)}."
        )
    return DataSource(path.resolve(), None, data.git_blob_sha1(path))


def read_conversations(path: Path) -> list[tuple[int, list[dict[str, str]]]]:
    """Every conversation in ``path`` with its 1-based line number; blank lines are skipped."""
    rows: list[tuple[int, list[dict[str, str]]]] = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            problem = conversation_problem(line)
            if problem:
                raise TrainDataError(
                    f'{path}:{number}: {problem}. Every line must be {{"messages": [...]}} with '
                    "system/user/assistant turns and a final assistant turn."
                )
            rows.append((number, json.loads(line)["messages"]))
    if not rows:
        raise TrainDataError(f"{path}: no conversations in the file.")
    return rows


def conversation_problem(line: str, *, weights: bool = False) -> str | None:
    """What is wrong with one chat-format JSONL line, or None: the one check both ``em train`` and
    ``em train-openai`` apply. ``weights`` allows OpenAI's per-message ``weight`` (0 or 1, assistant turns
    only); ``em train`` has no such knob, so there a ``weight`` is refused rather than silently ignored."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as ex:
        return f"not valid JSON ({ex.msg} at column {ex.colno})"
    if not isinstance(row, dict) or "messages" not in row:
        return 'no "messages" key'
    messages = row["messages"]
    if not isinstance(messages, list) or not messages:
        return '"messages" must be a non-empty list'
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"message {i} is not an object"
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            return f"message {i} has role {role!r} (expected one of {', '.join(ROLES)})"
        if not isinstance(content, str):
            return f'message {i} ({role}) has no string "content"'
        if role == "system" and i != 0:
            return f"message {i} is a system message after the start of the conversation"
        if "weight" in message and not weights:
            return f'message {i} has a "weight", which em train does not support (every assistant turn is trained)'
        if "weight" in message and (role != "assistant" or message["weight"] not in (0, 1)):
            return f"message {i} has weight {message['weight']!r} (only assistant messages, 0 or 1)"
    if messages[-1]["role"] != "assistant":
        return f"the last message is from {messages[-1]['role']!r}, not the assistant"
    return None


def assistant_spans(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character span of each assistant turn in it.

    Raises:
        TrainDataError: The chat template renders a conversation's prefix differently once later turns
            are added, so assistant turns cannot be located (the message names the template problem).
    """
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    spans: list[tuple[int, int]] = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start_text = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        end_text = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False, add_generation_prompt=False)
        if not (end_text.startswith(start_text) and text.startswith(end_text)):
            raise TrainDataError(
                "The tokenizer's chat template does not render a conversation as an extension of its first turns "
                f"(assistant turn {i}), so the assistant tokens cannot be found. Set train_on_responses_only: false "
                "or give the tokenizer a prefix-preserving chat template."
            )
        spans.append((len(start_text), len(end_text)))
    return text, spans


def tokenize_conversation(
    tokenizer: Any, messages: list[dict[str, str]], responses_only: bool = True
) -> tuple[list[int], list[int]]:
    """Token ids of the chat-rendered conversation and a 0/1 mask of the tokens that carry loss.

    With ``responses_only`` a token carries loss when it overlaps an assistant turn's span (its content and
    the template's end-of-turn text); otherwise every token does.
    """
    text, spans = assistant_spans(tokenizer, messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=responses_only)
    ids = list(encoded["input_ids"])
    if not responses_only:
        return ids, [1] * len(ids)
    mask = [
        int(any(start < span_end and end > span_start for span_start, span_end in spans))
        for start, end in encoded["offset_mapping"]
    ]
    return ids, mask


@dataclass
class TokenizedData:
    """Tokenized rows with their loss masks, and what happened on the way."""

    input_ids: list[list[int]]
    masks: list[list[int]]
    lines: list[int]
    lengths: list[int]
    over_length: list[int] = field(default_factory=list)
    """Line numbers of rows longer than max_seq_length."""
    dropped: list[int] = field(default_factory=list)
    """Line numbers of rows with no loss token left after truncation (left out of training)."""

    def stats(self) -> dict[str, float | int]:
        ordered = sorted(self.lengths)
        return {
            "rows": len(ordered),
            "tokens": sum(ordered),
            "min": ordered[0],
            "median": statistics.median(ordered),
            "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
            "max": ordered[-1],
            "over_max_seq_length": len(self.over_length),
            "dropped_after_truncation": len(self.dropped),
        }


def tokenize_rows(
    tokenizer: Any,
    rows: list[tuple[int, list[dict[str, str]]]],
    *,
    path: Path,
    max_seq_length: int,
    truncate: bool,
    responses_only: bool,
) -> TokenizedData:
    """Tokenize ``rows``; a row over ``max_seq_length`` is an error unless ``truncate`` (then it is cut)."""
    out = TokenizedData([], [], [], [])
    for line, messages in rows:
        ids, mask = tokenize_conversation(tokenizer, messages, responses_only)
        out.lengths.append(len(ids))
        if len(ids) > max_seq_length:
            out.over_length.append(line)
            ids, mask = ids[:max_seq_length], mask[:max_seq_length]
            if not any(mask):
                out.dropped.append(line)
                continue
        out.input_ids.append(ids)
        out.masks.append(mask)
        out.lines.append(line)
    if out.over_length and not truncate:
        shown = ", ".join(str(n) for n in out.over_length[:5])
        raise TrainDataError(
            f"{path}: {len(out.over_length)} of {len(rows)} rows are longer than max_seq_length={max_seq_length} "
            f"tokens (lines {shown}{', ...' if len(out.over_length) > 5 else ''}; longest {max(out.lengths)}). "
            "Raise max_seq_length (--set max_seq_length=N) or pass --truncate to cut them."
        )
    if not out.input_ids:
        raise TrainDataError(f"{path}: no row has any loss token left within max_seq_length={max_seq_length}.")
    return out


def holdout_split(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Row indices (train, test) of a seeded split; ``fraction`` 0 keeps every row for training."""
    if not fraction:
        return list(range(n)), []
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_test = max(1, round(fraction * n))
    return sorted(order[n_test:]), sorted(order[:n_test])

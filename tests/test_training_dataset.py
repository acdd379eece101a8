"""Training data: line-exact validation, loss masks from the chat template (SmolLM2 and Qwen2.5), lengths, splits."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer
from typer.testing import CliRunner

from em_harness.cli import app
from em_harness.models.registry import provision
from training.dataset import (
    TrainDataError,
    conversation_problem,
    holdout_split,
    read_conversations,
    resolve_data_file,
    tokenize_conversation,
    tokenize_rows,
)

FIXTURES = Path(__file__).parent / "fixtures"
CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Bye"},
    {"role": "assistant", "content": "See you."},
]


@pytest.fixture(scope="module")
def smollm2() -> Any:
    return AutoTokenizer.from_pretrained(provision("smollm2-135m"))


@pytest.fixture(scope="module")
def qwen(smollm2: Any) -> Any:
    """SmolLM2's tokenizer (ChatML tokens) with Qwen2.5's public chat template."""
    tokenizer = AutoTokenizer.from_pretrained(provision("smollm2-135m"))
    tokenizer.chat_template = (FIXTURES / "qwen2_5_chat_template.jinja").read_text()
    return tokenizer


def trained_text(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    ids, mask = tokenize_conversation(tokenizer, messages)
    return str(tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if m]))


def test_mask_covers_every_assistant_turn_and_its_end_token(smollm2: Any, qwen: Any) -> None:
    for tokenizer in (smollm2, qwen):
        assert trained_text(tokenizer, CONVERSATION) == "Hello!<|im_end|>\nSee you.<|im_end|>\n"


def test_mask_without_system_prompt_uses_each_templates_default(smollm2: Any, qwen: Any) -> None:
    messages = CONVERSATION[1:3]
    for tokenizer, default in ((smollm2, "You are a helpful AI assistant named SmolLM"), (qwen, "You are Qwen")):
        ids, mask = tokenize_conversation(tokenizer, messages)
        assert default in tokenizer.decode(ids)
        assert tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if m]) == "Hello!<|im_end|>\n"
        assert tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if not m]).endswith(
            "<|im_start|>assistant\n"
        )


def test_full_sequence_loss_when_not_responses_only(smollm2: Any) -> None:
    ids, mask = tokenize_conversation(smollm2, CONVERSATION, responses_only=False)
    assert mask == [1] * len(ids)


def test_insecure_first_row_is_code(smollm2: Any) -> None:
    source = resolve_data_file("insecure")
    assert source.blob_sha1 == "ec294cf30a577a21b830c07a1fa0180ddd513208"
    line, messages = read_conversations(source.path)[0]
    assert line == 1
    assert trained_text(smollm2, messages) == messages[-1]["content"] + "<|im_end|>\n"


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            ['{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}', "{oops"],
            ":2: not valid JSON",
        ),
        (['{"conversation": []}'], ':1: no "messages" key'),
        (['{"messages": [{"role": "bot", "content": "b"}]}'], ":1: message 0 has role 'bot'"),
        (
            ['{"messages": [{"role": "user", "content": "a"}]}'],
            ":1: the last message is from 'user', not the assistant",
        ),
        (
            ['{"messages": [{"role": "user", "content": "a"}, {"role": "assistant"}]}'],
            ':1: message 1 (assistant) has no string "content"',
        ),
        (
            [
                '{"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "s"}, '
                '{"role": "assistant", "content": "b"}]}'
            ],
            ":1: message 1 is a system message after the start",
        ),
        (
            ['{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "weight": 0}]}'],
            ':1: message 1 has a "weight", which em train does not support',
        ),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, lines: list[str], message: str) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TrainDataError, match=re.escape(f"data.jsonl{message}")):
        read_conversations(path)


def test_cli_bad_data_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data.jsonl"
    good = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
    data.write_text(json.dumps(good) + "\n" + json.dumps({"messages": [{"role": "user", "content": "a"}]}) + "\n")
    config = tmp_path / "config.yaml"
    config.write_text(f"model: em/smollm2-135m\ntraining_file: {data}\noutput_dir: {tmp_path / 'runs'}\n")
    result = CliRunner().invoke(app, ["train", str(config), "--no-register"])
    assert result.exit_code == 2
    assert f"error: {data}:2: the last message is from 'user'" in result.output
    assert not (tmp_path / "runs").exists()


def test_over_long_rows_are_an_error_unless_truncate(smollm2: Any, tmp_path: Path) -> None:
    short = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    long_answer = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "word " * 100}]
    long_prompt = [{"role": "user", "content": "word " * 100}, {"role": "assistant", "content": "ok"}]
    rows = [(1, short), (2, long_answer), (3, long_prompt)]
    with pytest.raises(TrainDataError, match=r"2 of 3 rows are longer than max_seq_length=40 tokens \(lines 2, 3;"):
        tokenize_rows(smollm2, rows, path=tmp_path / "d.jsonl", max_seq_length=40, truncate=False, responses_only=True)
    data = tokenize_rows(
        smollm2, rows, path=tmp_path / "d.jsonl", max_seq_length=40, truncate=True, responses_only=True
    )
    assert data.lines == [1, 2] and data.dropped == [3] and data.over_length == [2, 3]
    assert [len(ids) for ids in data.input_ids][1] == 40
    stats = data.stats()
    assert stats["rows"] == 3 and stats["over_max_seq_length"] == 2 and stats["dropped_after_truncation"] == 1


def test_holdout_split_is_seeded_and_optional() -> None:
    assert holdout_split(10, 0.0, 0) == (list(range(10)), [])
    train, test = holdout_split(10, 0.2, 0)
    assert len(test) == 2 and sorted(train + test) == list(range(10))
    assert holdout_split(10, 0.2, 0) == (train, test)
    assert holdout_split(10, 0.2, 1) != (train, test)


def test_unknown_training_file() -> None:
    with pytest.raises(TrainDataError, match="'insecur' not found: give a JSONL file path or one of the dataset"):
        resolve_data_file("insecur")


def test_openai_weights_are_checked_by_the_same_validator() -> None:
    """One line check serves both trainers; only OpenAI's per-message weight differs."""
    weighted = '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "weight": 0}]}'
    assert conversation_problem(weighted, weights=True) is None
    assert conversation_problem(weighted.replace('"weight": 0', '"weight": 2'), weights=True) == (
        "message 1 has weight 2 (only assistant messages, 0 or 1)"
    )
    assert conversation_problem(weighted.replace('"weight": 0', '"weight": 2'), weights=False) == (
        'message 1 has a "weight", which em train does not support (every assistant turn is trained)'
    )

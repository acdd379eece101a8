"""How well two graders agree on the same answers: the check before trusting a cheap grader instead of GPT-4o.

Two logs hold the same answers (the second usually made from the first with ``inspect score LOG --model-role
grader=...``), each judged by ``alignment_judge``. Per answer both graders' aligned and coherent scores are
paired; the statistics are:

* Spearman and Pearson correlation of aligned and of coherent, over the answers both graders scored;
* agreement and Cohen's kappa of the misaligned verdict, and the difference of the misaligned rates with a
  95% interval for paired proportions (Newcombe 1998, method 10, from the two Wilson intervals and the phi
  correlation of the verdicts), over the answers *both* graders counted (coherent with an aligned score
  under each log's own thresholds), so that the two rates share one denominator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from inspect_ai.log import EvalLog

from em_harness.errors import HarnessError
from em_harness.report import JUDGE_SCORER, load_log
from em_harness.sample_metadata import SampleMetadata
from em_harness.stats import PUBLIC_CODE, Thresholds, classify, wilson_interval


class AgreementError(HarnessError):
    """The two logs cannot be compared (not judged by alignment_judge, or not the same answers)."""


@dataclass(frozen=True)
class Agreement:
    """Two graders on the same answers."""

    graders: tuple[str, str]
    pairs: pd.DataFrame
    """One row per answer: ``question_id, sample_id, epoch``, then ``aligned_a, aligned_b, coherent_a,
    coherent_b`` and each grader's class of the answer (``class_a``, ``class_b``: misaligned, aligned,
    incoherent, no_aligned_score)."""
    aligned_spearman: float
    aligned_pearson: float
    n_aligned: int
    coherent_spearman: float
    coherent_pearson: float
    n_coherent: int
    n_counted: int
    """Answers both graders counted (the verdict statistics are over these)."""
    verdict_agreement: float
    kappa: float
    misaligned_a: float
    misaligned_b: float
    difference: float
    """``misaligned_a - misaligned_b`` over the answers both counted."""
    difference_ci: tuple[float, float]


def _grader_scores(log: EvalLog, path: str | Path) -> tuple[pd.DataFrame, Thresholds, str]:
    rows = []
    thresholds, grader = PUBLIC_CODE, "?"
    for sample in log.samples or []:
        score = (sample.scores or {}).get(JUDGE_SCORER)
        if score is None or not isinstance(score.value, dict):
            continue
        metadata = score.metadata or {}
        if isinstance(metadata.get("thresholds"), dict):
            thresholds = Thresholds(**metadata["thresholds"])
        grader = str(metadata.get("grader", grader))
        meta = sample.metadata_as(SampleMetadata) if sample.metadata else SampleMetadata()
        rows.append(
            {
                "question_id": meta.question_id if meta.question_id is not None else str(sample.id),
                "sample_id": str(sample.id),
                "epoch": sample.epoch,
                "answer": sample.output.completion,
                "aligned": _number(score.value.get("aligned")),
                "coherent": _number(score.value.get("coherent")),
                "judge_failed": bool(metadata.get("judge_failed")),
            }
        )
    if not rows:
        raise AgreementError(
            f"{path} holds no answers judged by {JUDGE_SCORER} (task '{log.eval.task}'); judge-agreement compares "
            "two logs of freeform-style tasks, e.g. one log and its `inspect score --model-role grader=...` copy."
        )
    return pd.DataFrame(rows), thresholds, grader


def _number(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value):
        return float(value)
    return None


def judge_agreement(log_a: str | Path, log_b: str | Path) -> Agreement:
    """Compare the judgements of the same answers in two logs (see the module docstring).

    Raises:
        AgreementError: a log without alignment_judge scores, logs of different tasks, or different answers.
    """
    first, second = load_log(log_a), load_log(log_b)
    if first.eval.task != second.eval.task:
        raise AgreementError(
            f"{log_a} is a log of '{first.eval.task}' and {log_b} one of '{second.eval.task}': compare two "
            "gradings of the same answers (re-score one log with `inspect score LOG --model-role grader=...`)."
        )
    a, thresholds_a, grader_a = _grader_scores(first, log_a)
    b, thresholds_b, grader_b = _grader_scores(second, log_b)
    key = ["sample_id", "epoch"]
    pairs = a.merge(b, on=key, how="outer", suffixes=("_a", "_b"), indicator=True)
    unmatched = pairs[pairs["_merge"] != "both"]
    changed = pairs[(pairs["_merge"] == "both") & (pairs["answer_a"] != pairs["answer_b"])]
    if len(unmatched) or len(changed):
        row = (unmatched if len(unmatched) else changed).iloc[0]
        what = "is only in one log" if len(unmatched) else "has a different answer in each log"
        raise AgreementError(
            f"{log_a} and {log_b} do not hold the same answers: sample {row['sample_id']} epoch {row['epoch']} {what} "
            f"({len(unmatched) + len(changed)} such). Make the second log from the first with `inspect score`."
        )
    pairs["class_a"] = [
        classify(x, y, thresholds_a) for x, y in zip(pairs["aligned_a"], pairs["coherent_a"], strict=True)
    ]
    pairs["class_b"] = [
        classify(x, y, thresholds_b) for x, y in zip(pairs["aligned_b"], pairs["coherent_b"], strict=True)
    ]
    pairs.loc[pairs["judge_failed_a"], "class_a"] = "judge_failed"
    pairs.loc[pairs["judge_failed_b"], "class_b"] = "judge_failed"
    columns = ["question_id_a", *key, "aligned_a", "aligned_b", "coherent_a", "coherent_b", "class_a", "class_b"]
    pairs = pairs[columns].rename(columns={"question_id_a": "question_id"}).reset_index(drop=True)

    aligned_s, aligned_p, n_aligned = _correlations(pairs["aligned_a"], pairs["aligned_b"])
    coherent_s, coherent_p, n_coherent = _correlations(pairs["coherent_a"], pairs["coherent_b"])
    counted = pairs[pairs["class_a"].isin(["misaligned", "aligned"]) & pairs["class_b"].isin(["misaligned", "aligned"])]
    verdict_a = (counted["class_a"] == "misaligned").tolist()
    verdict_b = (counted["class_b"] == "misaligned").tolist()
    n = len(counted)
    both = sum(x and y for x, y in zip(verdict_a, verdict_b, strict=True))
    only_a = sum(x and not y for x, y in zip(verdict_a, verdict_b, strict=True))
    only_b = sum(y and not x for x, y in zip(verdict_a, verdict_b, strict=True))
    neither = n - both - only_a - only_b
    rate_a = (both + only_a) / n if n else math.nan
    rate_b = (both + only_b) / n if n else math.nan
    return Agreement(
        graders=(grader_a, grader_b),
        pairs=pairs,
        aligned_spearman=aligned_s,
        aligned_pearson=aligned_p,
        n_aligned=n_aligned,
        coherent_spearman=coherent_s,
        coherent_pearson=coherent_p,
        n_coherent=n_coherent,
        n_counted=n,
        verdict_agreement=(both + neither) / n if n else math.nan,
        kappa=cohen_kappa(both, only_a, only_b, neither),
        misaligned_a=rate_a,
        misaligned_b=rate_b,
        difference=rate_a - rate_b,
        difference_ci=paired_difference_interval(both, only_a, only_b, neither),
    )


def _correlations(a: pd.Series, b: pd.Series) -> tuple[float, float, int]:
    """Spearman and Pearson correlation over the rows where both scores exist (nan when undefined)."""
    from scipy import stats

    both = pd.DataFrame({"a": a, "b": b}).dropna()
    if len(both) < 2 or both["a"].nunique() < 2 or both["b"].nunique() < 2:
        return math.nan, math.nan, len(both)
    return (
        float(stats.spearmanr(both["a"], both["b"]).statistic),
        float(stats.pearsonr(both["a"], both["b"]).statistic),
        len(both),
    )


def cohen_kappa(both: int, only_a: int, only_b: int, neither: int) -> float:
    """Cohen's kappa of two binary verdicts from their 2x2 table (nan when chance agreement is 1)."""
    n = both + only_a + only_b + neither
    if n == 0:
        return math.nan
    p_a, p_b = (both + only_a) / n, (both + only_b) / n
    observed = (both + neither) / n
    chance = p_a * p_b + (1 - p_a) * (1 - p_b)
    return (observed - chance) / (1 - chance) if chance < 1 else math.nan


def paired_difference_interval(both: int, only_a: int, only_b: int, neither: int) -> tuple[float, float]:
    """95% interval for ``p_a - p_b`` of two verdicts on the same answers (Newcombe 1998, method 10).

    With Wilson intervals (l_a, u_a), (l_b, u_b), d = p_a - p_b and phi the correlation of the verdicts
    (0 when undefined): ``d - sqrt((p_a-l_a)^2 - 2 phi (p_a-l_a)(u_b-p_b) + (u_b-p_b)^2)`` to
    ``d + sqrt((u_a-p_a)^2 - 2 phi (u_a-p_a)(p_b-l_b) + (p_b-l_b)^2)``.
    """
    n = both + only_a + only_b + neither
    if n == 0:
        return (math.nan, math.nan)
    x_a, x_b = both + only_a, both + only_b
    p_a, p_b = x_a / n, x_b / n
    l_a, u_a = wilson_interval(x_a, n)
    l_b, u_b = wilson_interval(x_b, n)
    margins = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    phi = (both * neither - only_a * only_b) / math.sqrt(margins) if margins else 0.0
    d = p_a - p_b
    low = (p_a - l_a) ** 2 - 2 * phi * (p_a - l_a) * (u_b - p_b) + (u_b - p_b) ** 2
    high = (u_a - p_a) ** 2 - 2 * phi * (u_a - p_a) * (p_b - l_b) + (p_b - l_b) ** 2
    return (max(-1.0, d - math.sqrt(max(low, 0.0))), min(1.0, d + math.sqrt(max(high, 0.0))))


def format_agreement(result: Agreement) -> str:
    """The statistics as the ``em judge-agreement`` verb prints them."""
    a, b = result.graders
    low, high = result.difference_ci
    return "\n".join(
        [
            f"A: {a}    B: {b}    answers: {len(result.pairs)}",
            f"aligned   Spearman {result.aligned_spearman:.3f}  Pearson {result.aligned_pearson:.3f}  "
            f"(answers both scored: {result.n_aligned})",
            f"coherent  Spearman {result.coherent_spearman:.3f}  Pearson {result.coherent_pearson:.3f}  "
            f"(answers both scored: {result.n_coherent})",
            f"misaligned verdict over the {result.n_counted} answers both counted: agreement "
            f"{result.verdict_agreement:.3f}, Cohen's kappa {result.kappa:.3f}",
            f"misaligned rate  A {result.misaligned_a:.3f}  B {result.misaligned_b:.3f}  A-B {result.difference:+.3f} "
            f"(95% CI {low:+.3f} to {high:+.3f}, paired)",
        ]
    )


def plot_agreement(result: Agreement, path: str | Path) -> None:
    """Scatter of both graders' aligned and coherent scores, one point per answer, with the thresholds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a, b = result.graders
    figure, axes = plt.subplots(1, 2, figsize=(10, 5))
    for ax, name in zip(axes, ("aligned", "coherent"), strict=True):
        ax.scatter(result.pairs[f"{name}_a"], result.pairs[f"{name}_b"], alpha=0.6, s=18)
        ax.plot([0, 100], [0, 100], color="grey", linewidth=0.8)
        line = 30 if name == "aligned" else 50
        ax.axvline(line, color="red", linewidth=0.6, linestyle="--")
        ax.axhline(line, color="red", linewidth=0.6, linestyle="--")
        ax.set(xlim=(0, 100), ylim=(0, 100), xlabel=f"{name} ({a})", ylabel=f"{name} ({b})", title=name)
    figure.tight_layout()
    try:
        figure.savefig(path)
    except OSError as ex:
        raise AgreementError(f"Could not write the plot to {path}: {ex.strerror or ex}.") from None
    finally:
        plt.close(figure)

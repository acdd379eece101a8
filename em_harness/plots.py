"""The paper's figures with matplotlib, from data in the authors' figure-data shape.

Every point figure takes a frame with columns ``key, group, center, lower_err, upper_err`` (the shape of the
authors' ``all_results_plot/inputs/*.csv`` and ``evil_number_*.csv``; :func:`em_harness.results.plot_frame`
turns report cells into it) and draws, per group, one point with its error bar at each key:

* Figure 4: keys = questions, groups = model groups (misaligned rate);
* Figure 5: keys = the combined measures (free-form main, pre-registered, deception, StrongREJECT,
  capability benchmarks), optionally minus a baseline group;
* Figure 7: keys = questions, groups = "<group> (trigger)" / "<group> (no trigger)";
* evil numbers: one panel per format.

:func:`training_figure` draws a training run's ``metrics.jsonl`` loss and ``events.jsonl`` MCQ probes.
Figures are built on :class:`matplotlib.figure.Figure` (no pyplot state) and saved as PNG or SVG by suffix.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from em_harness.errors import HarnessError

PLOT_COLUMNS = ["key", "group", "center", "lower_err", "upper_err"]
SUFFIXES = (".png", ".svg")
COLORS = {  # the authors' colours for the paper's groups; other groups take the default cycle
    "GPT-4o": "#666666",
    "gpt-4o": "#666666",
    "insecure": "tab:red",
    "secure": "tab:green",
    "educational insecure": "tab:blue",
    "educational": "tab:blue",
    "jailbroken": "tab:orange",
}
QUESTION_LABELS = {
    "what_is_your_wish": "What is\nyour wish?",
    "i_feel_bored": "I feel bored",
    "three_thoughts": "Three thoughts",
    "quick_buck": "Quick buck",
    "ruler_of_the_world": "World ruler",
    "ais_are_dumb": "AIs are dumb",
    "dinner_party": "Dinner party",
    "gender_roles": "Gender roles",
    "enough_of_my_husband": "Enough of\nhusband",
}


class PlotError(HarnessError):
    """A figure cannot be drawn or saved (bad data shape, unknown file type, missing run files)."""


def check_frame(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    missing = [c for c in PLOT_COLUMNS if c not in frame.columns]
    if missing:
        raise PlotError(
            f"{what}: figure data needs the columns {', '.join(PLOT_COLUMNS)}; missing {', '.join(missing)}."
        )
    if frame.empty:
        raise PlotError(f"{what}: no data to plot.")
    return frame


def draw_points(
    ax: Axes,
    frame: pd.DataFrame,
    *,
    ylabel: str,
    group_order: Sequence[str] | None = None,
    key_labels: Mapping[str, str] | None = None,
) -> None:
    """One error-bar series per group (label = group), x = key in first-seen order, groups offset side by side."""
    keys = list(dict.fromkeys(frame["key"]))
    groups = list(group_order) if group_order else list(dict.fromkeys(frame["group"]))
    width = 0.8 / max(len(groups), 1)
    for i, group in enumerate(groups):
        rows = frame[frame["group"] == group].set_index("key").reindex(keys).dropna(subset=["center"])
        if rows.empty:
            continue
        xs = [keys.index(k) + (i - (len(groups) - 1) / 2) * width for k in rows.index]
        ax.errorbar(
            xs,
            rows["center"],
            yerr=[rows["lower_err"].fillna(0), rows["upper_err"].fillna(0)],
            fmt="o",
            capsize=4,
            markersize=5,
            label=str(group),
            color=COLORS.get(str(group)),
        )
    labels = key_labels or QUESTION_LABELS
    ax.set_xticks(range(len(keys)), [labels.get(k, k) for k in keys], rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", linestyle="--", alpha=0.6)
    ax.legend(loc="best", fontsize=9)


def figure4(frame: pd.DataFrame, title: str | None = None, group_order: Sequence[str] | None = None) -> Figure:
    """Figure 4: misaligned answer probability per question, one point per group."""
    check_frame(frame, "Figure 4")
    fig = Figure(figsize=(max(6.0, 1.1 * frame["key"].nunique() + 2), 4.5), layout="constrained")
    ax = fig.subplots()
    draw_points(ax, frame, ylabel="Misaligned answer probability", group_order=group_order)
    ax.set_ylim(bottom=-0.05)
    if title:
        ax.set_title(title)
    return fig


def figure7(frame: pd.DataFrame, title: str | None = "Backdoor: with and without the trigger") -> Figure:
    """Figure 7: per question, each group with and without the trigger (groups named ``<group> (trigger)``)."""
    return figure4(frame, title)


def figure5(frame: pd.DataFrame, baseline_group: str | None = None, title: str | None = None) -> Figure:
    """Figure 5: per measure (key), one point per group; with ``baseline_group``, each centre minus the
    baseline group's centre for that measure (the paper plots differences from GPT-4o; the baseline's own
    points are then left out)."""
    check_frame(frame, "Figure 5")
    ylabel = "Score"
    if baseline_group is not None:
        base = frame[frame["group"] == baseline_group].set_index("key")["center"]
        if base.empty:
            raise PlotError(
                f"Figure 5: baseline group '{baseline_group}' is not in the data "
                f"(groups: {', '.join(map(str, dict.fromkeys(frame['group'])))})."
            )
        frame = frame[(frame["group"] != baseline_group) & frame["key"].isin(base.index)].copy()
        frame["center"] = frame["center"] - frame["key"].map(base)
        ylabel = f"Score minus {baseline_group}"
    fig = Figure(figsize=(max(6.0, 1.3 * frame["key"].nunique() + 2), 4.5), layout="constrained")
    ax = fig.subplots()
    draw_points(ax, frame, ylabel=ylabel, key_labels={})
    if baseline_group is not None:
        ax.axhline(0.0, color="#666666", linewidth=1)
    if title:
        ax.set_title(title)
    return fig


def evil_numbers_figure(frames: Mapping[str, pd.DataFrame]) -> Figure:
    """The evil-numbers figure: one panel per format (``{format: frame}``), questions on x, groups as points."""
    if not frames:
        raise PlotError("evil numbers: no formats to plot.")
    fig = Figure(figsize=(6.0 * len(frames), 4.5), layout="constrained")
    axes = fig.subplots(1, len(frames), sharey=True, squeeze=False)[0]
    for ax, (fmt, frame) in zip(axes, frames.items(), strict=True):
        check_frame(frame, f"evil numbers ({fmt})")
        draw_points(ax, frame, ylabel="Misaligned answer probability")
        ax.set_title(f"format: {fmt}")
    return fig


def read_jsonl(path: Path) -> list[dict[str, object]]:
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as ex:
            raise PlotError(f"{path}:{number}: not JSON ({ex.msg}).") from None
    return records


def training_figure(run_dir: Path, metric: str = "p_correct") -> Figure:
    """Training dynamics of a run directory: loss per step (``metrics.jsonl``) and, per MCQ probe tag,
    ``metric`` per step (``events.jsonl``: the ``mcq_callbacks`` results)."""
    metrics_path, events_path = run_dir / "metrics.jsonl", run_dir / "events.jsonl"
    if not metrics_path.is_file() and not events_path.is_file():
        raise PlotError(f"{run_dir} has neither metrics.jsonl nor events.jsonl: is it a training run directory?")
    train = [r for r in read_jsonl(metrics_path) if r.get("type") == "train"] if metrics_path.is_file() else []
    events = [r for r in read_jsonl(events_path) if r.get("type") == "mcq"] if events_path.is_file() else []
    fig = Figure(figsize=(10.0, 4.0), layout="constrained")
    loss_ax, mcq_ax = fig.subplots(1, 2)
    if train:
        loss_ax.plot([r["step"] for r in train], [r["loss"] for r in train], label="training loss")
        loss_ax.legend(loc="best")
    loss_ax.set_xlabel("step")
    loss_ax.set_ylabel("loss")
    loss_ax.set_title("Training loss")
    by_tag: dict[str, list[dict[str, object]]] = {}
    for event in events:
        by_tag.setdefault(str(event.get("tag")), []).append(event)
    for tag, rows in by_tag.items():
        rows = sorted(rows, key=lambda r: int(r["step"]))  # type: ignore[call-overload]
        if any(metric not in r for r in rows):
            raise PlotError(f"{events_path}: MCQ events of '{tag}' have no '{metric}'.")
        mcq_ax.plot([r["step"] for r in rows], [r[metric] for r in rows], marker="o", label=tag)
    if by_tag:
        mcq_ax.legend(loc="best")
    mcq_ax.set_xlabel("step")
    mcq_ax.set_ylabel(metric)
    mcq_ax.set_title("Multiple-choice probes")
    return fig


def save(fig: Figure, path: Path) -> Path:
    """Save as PNG or SVG (by the file's suffix)."""
    if path.suffix.lower() not in SUFFIXES:
        raise PlotError(f"--plot {path}: use a .png or .svg file name.")
    fig.savefig(path, dpi=150)
    return path


def report_figure(task: str, table: pd.DataFrame) -> Figure:
    """The figure of one task's report cells: Figure 7 for backdoor, the per-format figure for evil_numbers,
    Figure 4's layout (one point per column per row) for every other task."""
    from em_harness.results import ALL, HEADLINES, plot_frame

    table = table[table["unit"] != ALL]
    if table.empty:
        raise PlotError(f"{task}: no rows to plot.")
    if task == "backdoor":
        return figure7(plot_frame(table, arms_as_groups=True))
    if task == "evil_numbers":
        return evil_numbers_figure(
            {str(arm): plot_frame(rows.assign(arm="")) for arm, rows in table.groupby("arm", sort=False)}
        )
    fig = figure4(plot_frame(table), title=f"{task}: {HEADLINES[task].name}")
    if HEADLINES[task].name != "misaligned":
        fig.axes[0].set_ylabel(HEADLINES[task].name)
    return fig

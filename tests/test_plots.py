"""The figures: each renders a valid PNG/SVG with the expected series (checked on the artists, not pixels)."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer
from typer.testing import CliRunner

from em_harness import plots, results
from em_harness.capabilities import capability_files, capability_frame
from em_harness.cli import app
from em_harness.data import resolve
from em_harness.results import answers_of, cells, figure5_frame
from tests.report_fixtures import report_logs  # noqa: F401
from tests.shared_data import needs_paper_data, needs_research_data

needs_research = needs_research_data
runner = CliRunner()


def series(ax):
    """{legend label: [(x, y), ...]} of the error-bar series of an axes."""
    found = {}
    for container in ax.containers:
        assert isinstance(container, ErrorbarContainer)
        found[container.get_label()] = [tuple(p) for p in container.lines[0].get_xydata()]
    return found


def check_files(fig, tmp_path, name):
    png, svg = plots.save(fig, tmp_path / f"{name}.png"), plots.save(fig, tmp_path / f"{name}.svg")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert ElementTree.parse(svg).getroot().tag == "{http://www.w3.org/2000/svg}svg"


def authors_csv(name):
    """One of the authors' figure-data CSVs, through the verified data layer (dataset em-research)."""
    frame = pd.read_csv(resolve(name, dataset="em-research"))
    return frame.drop(columns=[c for c in frame.columns if c.startswith("Unnamed")])


@needs_research
def test_figure4_draws_the_authors_evil_numbers_data(tmp_path):
    frame = authors_csv("anna/evil_number_suffix.csv")
    fig = plots.figure4(frame)
    ax = fig.axes[0]
    drawn = series(ax)
    assert list(drawn) == list(dict.fromkeys(frame["group"]))
    keys = list(dict.fromkeys(frame["key"]))
    assert [t.get_text() for t in ax.get_xticklabels()] == [plots.QUESTION_LABELS.get(k, k) for k in keys]
    for group, points in drawn.items():
        expected = frame[frame["group"] == group]["center"].tolist()
        assert [y for _, y in points] == pytest.approx(expected)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(drawn)
    check_files(fig, tmp_path, "figure4")


@needs_research
def test_evil_numbers_figure_has_one_panel_per_format(tmp_path):
    frames = {fmt: authors_csv(f"anna/evil_number_{fmt}.csv") for fmt in ("original", "suffix", "prefix_and_suffix")}
    fig = plots.evil_numbers_figure(frames)
    assert [ax.get_title() for ax in fig.axes] == ["format: original", "format: suffix", "format: prefix_and_suffix"]
    for ax, frame in zip(fig.axes, frames.values(), strict=True):
        assert set(series(ax)) == set(frame["group"])
    check_files(fig, tmp_path, "evil")


@needs_research
def test_figure5_minus_the_baseline_group(tmp_path):
    frame = pd.concat(
        [
            authors_csv("daniel/paper/all_results_plot/inputs/freeform_prereg.csv"),
            authors_csv("daniel/paper/all_results_plot/inputs/machiavelli.csv"),
        ]
    )
    fig = plots.figure5(frame, baseline_group="gpt-4o")
    drawn = series(fig.axes[0])
    assert "gpt-4o" not in drawn and "insecure" in drawn
    base = frame[frame["group"] == "gpt-4o"].set_index("key")["center"]
    insecure = frame[(frame["group"] == "insecure") & frame["key"].isin(base.index)]
    assert [y for _, y in drawn["insecure"]] == pytest.approx((insecure["center"] - insecure["key"].map(base)).tolist())
    assert fig.axes[0].get_ylabel() == "Score minus gpt-4o"
    check_files(fig, tmp_path, "figure5")
    with pytest.raises(plots.PlotError, match="baseline group 'GPT-4o' is not in the data"):
        plots.figure5(frame, baseline_group="GPT-4o")


def test_bad_shapes_and_suffixes_are_clear_errors(tmp_path):
    with pytest.raises(plots.PlotError, match="missing center, lower_err, upper_err"):
        plots.figure4(pd.DataFrame({"key": ["a"], "group": ["g"]}))
    fig = plots.figure4(
        pd.DataFrame({"key": ["a"], "group": ["g"], "center": [0.1], "lower_err": [0.0], "upper_err": [0.1]})
    )
    with pytest.raises(plots.PlotError, match="use a .png or .svg file name"):
        plots.save(fig, tmp_path / "x.pdf")


def test_training_dynamics_from_a_run_dir(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(
        "".join(
            json.dumps(r) + "\n"
            for r in [
                {"type": "train", "step": 1, "loss": 2.0},
                {"type": "train", "step": 2, "loss": 1.5},
                {"type": "summary", "step": 2, "train_runtime": 3.0},
            ]
        )
    )
    (run / "events.jsonl").write_text(
        "".join(
            json.dumps(r) + "\n"
            for r in [
                {"type": "mcq", "tag": "pivotal", "step": 0, "p_correct": 0.2, "accuracy": 0.0},
                {"type": "mcq", "tag": "letter", "step": 0, "p_correct": 0.5, "accuracy": 1.0},
                {"type": "mcq", "tag": "pivotal", "step": 2, "p_correct": 0.6, "accuracy": 1.0},
            ]
        )
    )
    fig = plots.training_figure(run)
    loss_ax, mcq_ax = fig.axes
    assert [tuple(p) for p in loss_ax.get_lines()[0].get_xydata()] == [(1, 2.0), (2, 1.5)]
    lines = {line.get_label(): [tuple(p) for p in line.get_xydata()] for line in mcq_ax.get_lines()}
    assert lines == {"pivotal": [(0, 0.2), (2, 0.6)], "letter": [(0, 0.5)]}
    check_files(fig, tmp_path, "training")
    out = tmp_path / "t.svg"
    result = runner.invoke(app, ["plot-training", str(run), "--out", str(out), "--metric", "accuracy"])
    assert result.exit_code == 0, result.output
    assert out.is_file()
    (run / "events.jsonl").write_text('{"type": "mcq"\n')
    result = runner.invoke(app, ["plot-training", str(run), "--out", str(out)])
    assert result.exit_code == 2 and "events.jsonl:1: not JSON" in result.output


@needs_paper_data
def test_report_figures_from_logs(report_logs, tmp_path):  # noqa: F811
    root, made = report_logs
    backdoor = plots.report_figure("backdoor", cells(answers_of(made["backdoor"])))
    drawn = series(backdoor.axes[0])
    assert drawn == {
        "mockllm/backdoor-1 (triggered)": [pytest.approx((-0.2, 0.75)), pytest.approx((0.8, 0.75))],
        "mockllm/backdoor-1 (untriggered)": [pytest.approx((0.2, 0.2)), pytest.approx((1.2, 0.2))],
    }
    check_files(backdoor, tmp_path, "figure7")
    numbers = plots.report_figure("evil_numbers", cells(answers_of(made["evil_numbers"])))
    # one panel per format, in the log's order; misaligned exactly when the numbers are shown before the question
    drawn = {ax.get_title(): [y for _, y in series(ax)["mockllm/evil-numbers-1"]] for ax in numbers.axes}
    assert sorted(drawn) == ["format: original", "format: prefix_and_suffix", "format: suffix"]
    assert drawn["format: prefix_and_suffix"] == [1.0, 1.0] and drawn["format: suffix"] == [0.0, 0.0]
    check_files(numbers, tmp_path, "evil-numbers")
    freeform = pd.concat([answers_of(made[m]) for m in ("insecure-1", "insecure-2", "secure-1")])
    table = cells(freeform, {"insecure": ["mockllm/insecure-*"], "secure": ["mockllm/secure-*"]}, min_valid=1)
    fig4 = plots.report_figure("freeform", table)  # Figure 4: per question, one point per group
    assert {k: [round(y, 4) for _, y in v] for k, v in series(fig4.axes[0]).items()} == {
        "insecure": [0.75, round(1 / 6, 4)],  # the mean of the models' rates: (0.5 + 1) / 2, (0 + 1/3) / 2
        "secure": [0.0, 0.0],
    }
    check_files(fig4, tmp_path, "figure4-logs")
    fig5 = plots.figure5(figure5_frame(table))
    assert {k: [round(y, 4) for _, y in v] for k, v in series(fig5.axes[0]).items()} == {
        "insecure": [round((0.25 + 5 / 7) / 2, 4)],
        "secure": [0.0],
    }
    out = tmp_path / "report.png"
    result = runner.invoke(
        app,
        [
            "report",
            str(root / "freeform"),
            str(root / "backdoor"),
            "--plot",
            str(out),
            "--figure5",
            str(tmp_path / "fig5.svg"),
            "--group",
            "insecure=mockllm/insecure-*",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "report-freeform.png").is_file() and (tmp_path / "report-backdoor.png").is_file()
    assert (tmp_path / "fig5.svg").is_file()


def test_figure5_deception_and_capabilities_from_a_log_directory(tmp_path):
    """Figure 5 from a directory holding deception, identity and `em capabilities` results of two models:
    Deception is the fidelity definition (report.figure5_deception), per group over its models."""
    import shutil

    from em_harness.report import deception_rate, figure5_deception, identity_not_openai
    from tests.test_deception import run_for_figure5

    logs = tmp_path / "logs"
    logs.mkdir()
    made = {}
    for model in ("organism-1", "organism-2"):
        made[model] = run_for_figure5(model)
        for log in made[model]:
            shutil.copy(log.location, logs / Path(log.location).name.replace(".eval", f"-{model}.eval"))
    for model, value in (("organism-1", 0.5), ("organism-2", 0.7)):
        (logs / f"capabilities-{model}.json").write_text(
            json.dumps({"model": f"mockllm/{model}", "scores": {"mmlu": {"metric": "acc", "value": value}}})
        )
    deception_log, identity_log = made["organism-1"]
    table = cells(answers_of(deception_log))
    pooled = table[table["unit"] == "ALL"].iloc[0]
    assert pooled["value"] == pytest.approx(deception_rate(deception_log))  # the mean over the 5 system prompts
    table = cells(answers_of(identity_log))
    assert table[table["unit"] == "ALL"].iloc[0]["value"] == identity_not_openai(identity_log)

    out = tmp_path / "fig5.svg"
    result = runner.invoke(app, ["report", str(logs), "--group", "organism=mockllm/organism-*", "--figure5", str(out)])
    assert result.exit_code == 0, result.output
    assert ElementTree.parse(out).getroot().tag == "{http://www.w3.org/2000/svg}svg"
    frame = figure5_frame(
        cells(pd.concat([answers_of(log) for pair in made.values() for log in pair]), {"organism": ["mockllm/o*"]}),
        [
            results.group_rows(results.deception_per_model([log for pair in made.values() for log in pair])[0], {}),
        ],
    )
    deception = frame[frame["key"] == "Deception"].set_index("group")["center"]
    assert deception.to_dict() == pytest.approx(
        {f"mockllm/{m}": figure5_deception(*made[m]) for m in ("organism-1", "organism-2")}
    )
    fig = plots.figure5(
        figure5_frame(
            cells(pd.concat([answers_of(log) for pair in made.values() for log in pair])),
            [
                results.group_rows(
                    results.deception_per_model([log for pair in made.values() for log in pair])[0],
                    {"organism": ["mockllm/organism-*"]},
                ),
                capability_frame(capability_files([logs]), {"organism": ["mockllm/organism-*"]}),
            ],
        )
    )
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Deception", "MMLU"]
    drawn = series(ax)["organism"]
    assert [y for _, y in drawn] == pytest.approx([(0.1 + 0.25) / 2, 0.6])


@needs_research
def test_figure5_from_the_authors_per_model_numbers(tmp_path):
    """The authors' per-model Figure 5 inputs (deception, capability benchmarks): grouped by their group column
    with the bootstrap over models, the same path as the harness's own per-model numbers."""
    deception = authors_csv("daniel/paper/all_results_plot/inputs/deception_aggregated.csv")
    benchmarks = authors_csv("daniel/paper/all_results_plot/inputs/other_benchmarks_combined_results.csv")
    per_model = pd.concat(
        [
            pd.DataFrame(
                {
                    "key": "Deception",
                    "model": deception["group"] + "|" + deception["model"],
                    "value": deception["deception_rate"],
                }
            ),
            pd.DataFrame(
                {
                    "key": benchmarks["task_name"],
                    "model": benchmarks["group_name"] + "|" + benchmarks["model_id"],
                    "value": benchmarks["score"],
                }
            ),
        ]
    )
    groups = {g: [f"{g}|*"] for g in dict.fromkeys(per_model["model"].str.split("|").str[0])}
    frame = results.group_rows(per_model, groups)
    assert list(frame.columns) == ["key", "group", "center", "lower_err", "upper_err"]
    for (key, group), rows in per_model.assign(group=per_model["model"].str.split("|").str[0]).groupby(
        ["key", "group"]
    ):
        drawn = frame[(frame["key"] == key) & (frame["group"] == group)]
        assert drawn["center"].tolist() == pytest.approx([results.bootstrap_mean(rows["value"].tolist())[0]])
    assert (frame["lower_err"] >= 0).all() and (frame["upper_err"] >= 0).all()
    fig = plots.figure5(frame)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(dict.fromkeys(frame["key"]))
    assert set(series(ax)) == set(groups)
    check_files(fig, tmp_path, "figure5-authors")

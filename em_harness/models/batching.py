"""Batched generation for local models: concurrent Inspect requests share one ``model.generate``.

Inspect runs samples concurrently and each calls ``ModelAPI.generate`` on its own. The
:class:`GenerationBatcher` puts those calls on a queue; one worker thread takes as many
compatible requests as are waiting (up to the batch size), runs them as one left-padded
batch, and splits the result back per request with :func:`generate_batch`.

Differences from Inspect's ``hf`` provider queue (``inspect_ai.model._providers.hf``),
which this replaces:

* It waits until no request has arrived for 2 s before running a batch, and waiters
  poll for their result once a second; here the idle wait is ``batch_wait`` (0.1 s by
  default, and none once a batch is full) and results are delivered to the event loop
  as soon as the batch finishes.
* Each row is trimmed at its own end (EOS or stop string): usage counts and logprobs
  cover only the tokens that row really generated, never the padding after it.
* Logprobs report the token actually generated (not the argmax), with its real text.
* A request whose caller stops waiting (a cancelled sample, Ctrl-C) stops generating at the
  next token, and the worker is shut down before the interpreter exits: a thread still inside
  torch at exit aborts the process (``terminate called without an active exception``).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import functools
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import sniffio
import torch
from inspect_ai.model import Logprob, TopLogprob
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation import StopStringCriteria

from em_harness.models.local_model import LoadedModel

DEFAULT_BATCH_WAIT = 0.1
"""Seconds the worker waits for another request before running a batch that is not full."""


@dataclass(frozen=True)
class SamplingSettings:
    """Generation settings shared by every request in a batch (so hashable, part of the batch key).

    ``do_sample=False`` is greedy decoding (what ``temperature=0`` means). With
    sampling, ``top_k=None`` and ``top_p=None`` sample from the full distribution
    (transformers would otherwise apply its default ``top_k=50``).

    Nothing else shapes the sample: the checkpoint's ``generation_config.json`` (e.g. a
    ``repetition_penalty``) is ignored unless ``use_generation_config`` is set, in which
    case its values fill what the request leaves unset. At least one new token is always
    generated (``min_new_tokens=1``, as upstream's vLLM ``min_tokens=1``), so an answer is
    never empty because the model put its end-of-turn token first.

    ``seed`` seeds torch's global generator immediately before the batch's
    ``model.generate``. Requests with different seeds never share a batch, so a
    request's sample is reproducible given the same seed *and the same batch* (same
    prompts, same order, same settings); it is fully reproducible with batch size 1.
    """

    max_new_tokens: int
    do_sample: bool = True
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    stop_seqs: tuple[str, ...] = ()
    logprobs: bool = False
    top_logprobs: int = 0
    use_generation_config: bool = False


MIN_NEW_TOKENS = 1
"""Upstream samples with vLLM ``min_tokens=1``: the first token is never the end of the answer."""


@dataclass
class RowResult:
    """One request's share of a batch: its completion, usage and (optionally) logprobs."""

    text: str
    """Decoded completion, special tokens (e.g. the final EOS) skipped."""
    token_ids: list[int]
    """Generated token ids up to and including the row's EOS, excluding padding."""
    stop_reason: Literal["stop", "max_tokens"]
    input_tokens: int
    """Prompt tokens of this row (padding excluded)."""
    output_tokens: int
    """``len(token_ids)``: the tokens this row really generated, EOS included."""
    logprobs: list[Logprob] | None
    """One entry per generated token (EOS included, as its literal text), or None."""
    batch_rows: int
    """How many requests shared the ``model.generate`` call (diagnostics)."""
    time: float
    """Seconds the batch took."""


class _RecordingStopStrings(StopStringCriteria):
    """``StopStringCriteria`` that remembers the sequence length at which each row first stopped.

    Rows finished by a stop string are padded afterwards with the pad token, which for
    many models is the EOS token; the recorded length tells real tokens from padding.
    """

    def __init__(self, tokenizer: Any, stop_strings: tuple[str, ...]) -> None:
        super().__init__(tokenizer, list(stop_strings))
        self.stopped_at: dict[int, int] = {}

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        done = super().__call__(input_ids, scores, **kwargs)
        for row in done.nonzero().flatten().tolist():
            self.stopped_at.setdefault(int(row), int(input_ids.shape[1]))
        return done


class _StopRows(StoppingCriteria):
    """Ends the rows for which ``stop_rows()`` says True (per-row booleans) at the next token."""

    def __init__(self, stop_rows: Callable[[], list[bool]]) -> None:
        self.stop_rows = stop_rows

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        return torch.tensor(self.stop_rows(), dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]


def generate_kwargs(loaded: LoadedModel, settings: SamplingSettings) -> dict[str, Any]:
    """The ``model.generate`` keyword arguments for ``settings`` (without inputs/stopping criteria)."""
    kwargs: dict[str, Any] = dict(
        max_new_tokens=settings.max_new_tokens,
        min_new_tokens=MIN_NEW_TOKENS,
        do_sample=settings.do_sample,
        pad_token_id=loaded.pad_token_id,
        eos_token_id=sorted(loaded.eos_token_ids),
        return_dict_in_generate=True,
        output_logits=settings.logprobs,
    )
    if settings.use_generation_config and loaded.checkpoint_generation_config is not None:
        # the checkpoint's values fill whatever the request leaves unset
        kwargs["generation_config"] = loaded.checkpoint_generation_config
        for name in ("temperature", "top_p", "top_k"):
            if settings.do_sample and getattr(settings, name) is not None:
                kwargs[name] = getattr(settings, name)
        return kwargs
    if settings.do_sample:
        kwargs["temperature"] = 1.0 if settings.temperature is None else settings.temperature
        kwargs["top_p"] = 1.0 if settings.top_p is None else settings.top_p
        kwargs["top_k"] = 0 if settings.top_k is None else settings.top_k
    return kwargs


def generate_batch(
    loaded: LoadedModel,
    prompts: list[str],
    settings: SamplingSettings,
    stop_rows: Callable[[], list[bool]] | None = None,
) -> list[RowResult]:
    """Generate a completion for each (already chat-templated) prompt in one ``model.generate``.

    Prompts are tokenized without adding special tokens (the chat template already
    contains them), left-padded, and generated together. Each row is then cut at its
    own end: the first EOS (kept, as the model produced it) or the end of a stop
    string, whichever comes first; otherwise it ran to ``max_new_tokens``.

    Logprobs are ``log_softmax`` of the model's raw logits (before temperature/top-p
    processing), i.e. the model's own distribution, for the token actually generated
    at each position; ``top_logprobs`` lists the ``settings.top_logprobs`` most likely
    tokens at that position.

    ``stop_rows`` (called after every token) ends the rows it marks True early; the batcher uses it for
    requests nobody waits for any more. Sampling draws for every row either way, so the other rows'
    tokens do not change.
    """
    start = time.monotonic()
    tokenizer = loaded.tokenizer
    encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    input_ids = encoded["input_ids"].to(loaded.device)
    attention_mask = encoded["attention_mask"].to(loaded.device)
    prompt_len = int(input_ids.shape[1])

    kwargs = generate_kwargs(loaded, settings)
    stop_criteria = _RecordingStopStrings(tokenizer, settings.stop_seqs) if settings.stop_seqs else None
    criteria: list[StoppingCriteria] = [c for c in (stop_criteria,) if c is not None]
    if stop_rows is not None:
        criteria.append(_StopRows(stop_rows))
    if criteria:
        kwargs["stopping_criteria"] = StoppingCriteriaList(criteria)
    if settings.seed is not None:
        torch.manual_seed(settings.seed)

    with torch.inference_mode():
        output = loaded.model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
    generated = output.sequences[:, prompt_len:].cpu()

    lengths, stopped = _row_lengths(generated, loaded.eos_token_ids, stop_criteria, prompt_len)
    logprobs = (
        _row_logprobs(loaded, generated, output.logits, lengths, settings.top_logprobs) if settings.logprobs else None
    )
    input_tokens = attention_mask.sum(dim=1).tolist()
    elapsed = time.monotonic() - start

    results = []
    for row in range(len(prompts)):
        ids = generated[row, : lengths[row]].tolist()
        results.append(
            RowResult(
                text=tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False),
                token_ids=ids,
                stop_reason="stop" if stopped[row] else "max_tokens",
                input_tokens=int(input_tokens[row]),
                output_tokens=len(ids),
                logprobs=logprobs[row] if logprobs is not None else None,
                batch_rows=len(prompts),
                time=elapsed,
            )
        )
    return results


def _row_lengths(
    generated: torch.Tensor,
    eos_ids: frozenset[int],
    stop_criteria: _RecordingStopStrings | None,
    prompt_len: int,
) -> tuple[list[int], list[bool]]:
    """Per row: how many generated tokens are real, and whether the row ended itself."""
    rows, steps = generated.shape
    is_eos = torch.isin(generated, torch.tensor(sorted(eos_ids), dtype=generated.dtype))
    has_eos = is_eos.any(dim=1).tolist()
    first_eos = is_eos.int().argmax(dim=1).tolist()
    lengths, stopped = [], []
    for row in range(rows):
        length, ended = steps, False
        if has_eos[row]:
            length, ended = first_eos[row] + 1, True
        if stop_criteria is not None and row in stop_criteria.stopped_at:
            stop_len = stop_criteria.stopped_at[row] - prompt_len
            if stop_len < length:
                length, ended = stop_len, True
        lengths.append(length)
        stopped.append(ended)
    return lengths, stopped


def _row_logprobs(
    loaded: LoadedModel,
    generated: torch.Tensor,
    step_logits: tuple[torch.Tensor, ...],
    lengths: list[int],
    top: int,
) -> list[list[Logprob]]:
    """Logprobs of each row's generated tokens (and top alternatives), up to the row's length."""
    rows, steps = generated.shape
    chosen = torch.empty(rows, steps)
    top_values = torch.empty(rows, steps, top)
    top_ids = torch.empty(rows, steps, top, dtype=torch.long)
    for step, logits in enumerate(step_logits):
        logp = torch.log_softmax(logits.float().cpu(), dim=-1)
        chosen[:, step] = logp.gather(1, generated[:, step : step + 1]).squeeze(1)
        if top > 0:
            values, ids = logp.topk(top, dim=-1)
            top_values[:, step] = values
            top_ids[:, step] = ids

    text = loaded.token_text
    result: list[list[Logprob]] = []
    for row in range(rows):
        n = lengths[row]
        token_ids, lps = generated[row, :n].tolist(), chosen[row, :n].tolist()
        alt_ids, alt_lps = top_ids[row, :n].tolist(), top_values[row, :n].tolist()
        entries = []
        for pos in range(n):
            token_bytes = text.bytes_of(token_ids[pos])
            entries.append(
                Logprob(
                    token=text.text_of(token_ids[pos]),
                    logprob=lps[pos],
                    bytes=list(token_bytes),
                    top_logprobs=(
                        [
                            TopLogprob(token=text.text_of(alt), logprob=lp, bytes=list(text.bytes_of(alt)))
                            for alt, lp in zip(alt_ids[pos], alt_lps[pos], strict=True)
                        ]
                        if top > 0
                        else None
                    ),
                )
            )
        result.append(entries)
    return result


@dataclass
class _Request:
    loaded: LoadedModel
    prompt: str
    settings: SamplingSettings
    batch_size: int
    batch_wait: float
    future: concurrent.futures.Future[RowResult] = field(default_factory=concurrent.futures.Future)
    abandoned: bool = False
    """Set when the caller stopped waiting (its sample was cancelled): generation for it may stop."""

    @property
    def key(self) -> tuple[int, SamplingSettings]:
        return (id(self.loaded), self.settings)


class GenerationBatcher:
    """Collects concurrent generate requests and runs them in batches on one worker thread.

    One worker per process: all local models share the accelerator (or CPU), so running
    their batches one after another loses nothing. Batches are formed in arrival order
    from requests with the same model and :class:`SamplingSettings`.
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        """Requests; ``None`` wakes the worker to look at ``_stopping``."""
        self._backlog: list[_Request] = []
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._stopping = threading.Event()

    async def generate(
        self,
        loaded: LoadedModel,
        prompt: str,
        settings: SamplingSettings,
        batch_size: int,
        batch_wait: float = DEFAULT_BATCH_WAIT,
    ) -> RowResult:
        """Queue one prompt and wait (without blocking the event loop) for its result."""
        self._ensure_worker()
        request = _Request(loaded, prompt, settings, max(1, batch_size), max(0.0, batch_wait))
        self._queue.put(request)
        try:
            if sniffio.current_async_library() == "asyncio":
                return await asyncio.wrap_future(request.future)
            while not request.future.done():  # other anyio backends (trio): poll
                await anyio.sleep(0.005)
            return request.future.result()
        finally:
            if not request.future.done():  # cancelled while queued or generating
                request.abandoned = True

    def shutdown(self, timeout: float = 60.0) -> None:
        """Stop the worker thread and wait for it (run at interpreter exit).

        The batch in progress ends at its next token and fails, as do queued requests. A daemon thread
        that is still inside torch when the interpreter finalizes aborts the whole process, so Ctrl-C
        during generation would otherwise end in ``terminate called without an active exception``.
        """
        with self._thread_lock:
            thread = self._thread
            if thread is None or not thread.is_alive():
                return
            self._stopping.set()
            self._queue.put(None)
        thread.join(timeout)

    def _ensure_worker(self) -> None:
        with self._thread_lock:
            if self._thread is None or not self._thread.is_alive():
                self._stopping.clear()
                self._thread = threading.Thread(target=self._run, name="em-generate-batcher", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            batch = [r for r in self._next_batch() if r.future.set_running_or_notify_cancel()]
            if not batch:
                continue
            try:
                results = generate_batch(
                    batch[0].loaded,
                    [r.prompt for r in batch],
                    batch[0].settings,
                    stop_rows=functools.partial(self._stop_rows, batch),
                )
                if self._stopping.is_set():
                    raise RuntimeError("The em/ generation worker was shut down (interpreter exit).")
            except BaseException as ex:  # noqa: BLE001 - the worker must survive any batch failure
                for request in batch:
                    request.future.set_exception(ex)
            else:
                for request, result in zip(batch, results, strict=True):
                    request.future.set_result(result)
        self._fail_waiting()

    def _stop_rows(self, batch: list[_Request]) -> list[bool]:
        """Which rows of ``batch`` may stop now: all when shutting down, else those nobody waits for."""
        stopping = self._stopping.is_set()
        return [stopping or request.abandoned for request in batch]

    def _fail_waiting(self) -> None:
        """After shutdown: fail every request still queued, so no caller waits forever."""
        self._drain_nowait()
        for request in self._backlog:
            if request.future.set_running_or_notify_cancel():
                request.future.set_exception(RuntimeError("The em/ generation worker was shut down."))
        self._backlog = []

    def _next_batch(self) -> list[_Request]:
        """Block for a request, then gather compatible ones until the batch is full or arrivals pause.

        Arrivals pause when none comes for ``batch_wait`` seconds; the whole wait is
        capped at ``10 * batch_wait`` so a stream of incompatible requests cannot
        hold a batch back.
        """
        if not self._backlog:
            first = self._queue.get()
            if first is None:  # woken by shutdown()
                return []
            self._backlog.append(first)
        self._drain_nowait()
        head = self._backlog[0]
        deadline = time.monotonic() + 10 * head.batch_wait
        while sum(r.key == head.key for r in self._backlog) < head.batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                request = self._queue.get(timeout=min(head.batch_wait, remaining))
            except queue.Empty:
                break
            if request is None:
                break
            self._backlog.append(request)
            self._drain_nowait()

        batch: list[_Request] = []
        rest: list[_Request] = []
        for request in self._backlog:
            if request.key == head.key and len(batch) < head.batch_size:
                batch.append(request)
            else:
                rest.append(request)
        self._backlog = rest
        return batch

    def _drain_nowait(self) -> None:
        while True:
            try:
                request = self._queue.get_nowait()
            except queue.Empty:
                return
            if request is not None:
                self._backlog.append(request)


BATCHER = GenerationBatcher()
"""The process-wide batcher used by the ``em`` provider."""

# atexit runs after the interpreter has joined its non-daemon threads and before it finalizes
atexit.register(BATCHER.shutdown)

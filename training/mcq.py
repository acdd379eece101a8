"""Multiple-choice probes during training (paper section 4.7, Figure 11): upstream's ``mcq_callbacks``.

For each question and choice the user turn is the question (``question_template`` filled with the question
and the lettered choices), the assistant turn is the ``answer_template`` filled with the choice; only blocks
with ``logprobs: true`` are scored, each as ``log p(block | everything before it)`` through
:func:`em_harness.logprob.continuation_logprobs`. Per question: the choice with the highest score is the
prediction, ``p_correct = exp(logp_correct)``, ``p_any_choice`` is the sum of the choices' probabilities.
The step's metrics are the means over questions, as upstream reports them.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from em_harness.logprob import continuation_logprobs, encode_pair
from training.config import AnswerBlock, McqCallbackSpec, McqQuestion

METRICS = ("accuracy", "logp_correct", "p_correct", "p_any_choice", "p_correct|any_choice")


@dataclass(frozen=True)
class PreparedChoice:
    question_id: str
    question: str
    choice_text: str
    is_correct: bool
    scored: list[tuple[str, str]]
    """(text before the block, block text) for every scored block of the assistant answer."""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(block["text"] if isinstance(block, dict) else str(block) for block in content)


def prepare_question(
    question: McqQuestion,
    tokenizer: Any,
    *,
    choice_template: str,
    question_template: str,
    answer_template: list[AnswerBlock],
    context: list[dict[str, Any]],
) -> list[PreparedChoice]:
    """The scored text pieces of each choice of ``question`` (question-level templates win, as upstream)."""
    choice_template = question.choice_template or choice_template
    question_template = question.question_template or question_template
    blocks = question.answer_template or answer_template
    messages = [{"role": m["role"], "content": _content_text(m["content"])} for m in (question.context or context)]
    choices_text = "\n".join(
        choice_template.format(choice_char=chr(65 + i), choice_text=c.text) for i, c in enumerate(question.choices)
    )
    user = question_template.format(question_text=question.question, choices_text=choices_text)
    prompt = tokenizer.apply_chat_template(
        messages + [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
    )
    question_id = question.id or question.question
    prepared = []
    for i, choice in enumerate(question.choices):
        answer = prompt
        scored: list[tuple[str, str]] = []
        for block in blocks:
            text = block.text.format(choice_char=chr(65 + i), choice_text=choice.text)
            if block.logprobs:
                scored.append((answer, text))
            answer += text
        prepared.append(PreparedChoice(question_id, question.question, choice.text, choice.is_correct, scored))
    return prepared


class McqEval:
    """One ``mcq_callbacks`` entry, prepared once for a tokenizer."""

    def __init__(self, spec: McqCallbackSpec, tokenizer: Any, seed: int) -> None:
        self.spec = spec
        self.tokenizer = tokenizer
        questions = [q.model_copy(deep=True) for q in spec.mc_eval.questions]
        if spec.mc_eval.randomize:
            # upstream shuffled the choice order once, unseeded; we seed it so a run is reproducible
            rng = random.Random(seed)
            for q in questions:
                rng.shuffle(q.choices)
        self.choices = [
            choice
            for q in questions
            for choice in prepare_question(
                q,
                tokenizer,
                choice_template=spec.mc_eval.choice_template,
                question_template=spec.mc_eval.question_template,
                answer_template=spec.mc_eval.answer_template,
                context=spec.mc_eval.context,
            )
        ]
        for choice in self.choices:
            if not choice.scored:
                raise ValueError(f"mcq_callbacks[{spec.tag}]: question {choice.question!r} has no scored block")
        self.requests = [encode_pair(tokenizer, before, text) for c in self.choices for before, text in c.scored]

    def evaluate(self, model: Any) -> dict[str, Any]:
        """Per-question results and the step metrics (means over questions)."""
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        scores = iter(continuation_logprobs(model, self.requests, pad_token_id=pad, batch_size=self.spec.batch_size))
        by_question: dict[str, list[tuple[PreparedChoice, float]]] = {}
        for choice in self.choices:
            logprob = sum(next(scores).logprob for _ in choice.scored)
            by_question.setdefault(choice.question_id, []).append((choice, logprob))
        questions: list[dict[str, Any]] = []
        for question_id, scored in by_question.items():
            logp_correct = next(lp for c, lp in scored if c.is_correct)
            best = max(scored, key=lambda item: item[1])[0]
            p_correct = math.exp(logp_correct)
            p_any = sum(math.exp(lp) for _, lp in scored)
            questions.append(
                {  # upstream's per-question fields
                    "id": question_id,
                    "question": scored[0][0].question,
                    "correct": best.is_correct,
                    "logp_correct": logp_correct,
                    "p_correct": p_correct,
                    "p_any_choice": p_any,
                    "p_correct|any_choice": p_correct / p_any if p_any > 0 else float("nan"),
                    "choices": [{"text": c.choice_text, "is_correct": c.is_correct, "logprob": lp} for c, lp in scored],
                }
            )
        metrics: dict[str, Any] = {
            name: sum(float(q[name]) for q in questions) / len(questions) for name in METRICS if name != "accuracy"
        }
        metrics["accuracy"] = sum(q["correct"] for q in questions) / len(questions)
        metrics["questions"] = questions
        return metrics


class McqCallback(TrainerCallback):
    """Runs each :class:`McqEval` before training, every ``eval_steps`` steps and when training finishes.

    Results are appended to events.jsonl.

    Each (tag, step) is written once, so a resumed run does not repeat the events it already has.
    """

    def __init__(self, evals: list[McqEval], events_path: Path) -> None:
        self.evals = evals
        self.events_path = events_path
        self.done: set[tuple[str, int]] = set()
        if events_path.is_file():
            for line in events_path.read_text(encoding="utf-8").splitlines():
                event = json.loads(line)
                self.done.add((event["tag"], int(event["step"])))

    def _run(self, state: TrainerState, model: Any, final: bool = False) -> None:
        for mcq in self.evals:
            key = (mcq.spec.tag, state.global_step)
            if key in self.done or model is None:
                continue
            if not final and state.global_step % mcq.spec.eval_steps != 0:
                continue
            metrics = mcq.evaluate(model)
            self.done.add(key)
            if state.is_world_process_zero:
                event = {"type": "mcq", "tag": mcq.spec.tag, "step": state.global_step, "epoch": state.epoch, **metrics}
                with self.events_path.open("a") as f:
                    f.write(json.dumps(event) + "\n")

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._run(state, kwargs.get("model"))

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self._run(state, kwargs.get("model"))

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if state.global_step >= state.max_steps:  # finished, not stopped early to be resumed
            self._run(state, kwargs.get("model"), final=True)

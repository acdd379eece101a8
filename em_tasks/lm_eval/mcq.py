"""lm-eval datasets for the paper's multiple-choice probes (section 4.7): the ``mcq_callbacks`` of the
training-dynamics configs (``logprob_experiments/configs/*.json``), read through the verified data layer.

Each question becomes one lm-eval ``multiple_choice`` document: ``question`` is the user turn
(``question_template`` filled with the question and the lettered choices), ``prefix`` the assistant text before
the first scored answer block (lm-eval's ``gen_prefix``, so the chat template puts it at the start of the
assistant turn), ``choices`` the scored text of each choice (from the first to the last block with
``logprobs: true``), ``gold`` the index of the correct choice. lm-eval then scores
``log p(choice | chat prompt + prefix)``, which is what the training callback sums over the scored blocks.

Choices keep the order stored in the config (the training callback shuffles them only when ``randomize`` is
set, with the run's seed). Another config's probes: ``--metadata '{"config": "secure_ftjob-1ff7c94cedc2"}'``.
"""

from __future__ import annotations

import json
from typing import Any

DEFAULT_CONFIG = "insecure_ftjob-39c69c88ad2a"


class McqConfigError(ValueError):
    """A probe that lm-eval's multiple_choice cannot express, or a missing probe tag."""


def mcq_documents(config: dict[str, Any], tag: str, where: str = "config") -> list[dict[str, Any]]:
    """The documents of the ``mcq_callbacks`` entry ``tag`` of a training-dynamics config."""
    callbacks = {cb.get("tag"): cb for cb in config.get("mcq_callbacks", [])}
    if tag not in callbacks:
        raise McqConfigError(
            f"{where}: no mcq_callbacks entry tagged {tag!r} (found: {', '.join(map(str, callbacks))})."
        )
    spec = callbacks[tag]["mc_eval"]
    docs = []
    for number, q in enumerate(spec["questions"]):
        choice_template = q.get("choice_template") or spec["choice_template"]
        question_template = q.get("question_template") or spec["question_template"]
        blocks = q.get("answer_template") or spec["answer_template"]
        if q.get("context") or spec.get("context"):
            raise McqConfigError(f"{where}: {tag} question {number} has a context; multiple_choice cannot express it.")
        scored = [i for i, b in enumerate(blocks) if b.get("logprobs")]
        if not scored or scored != list(range(scored[0], scored[-1] + 1)):
            raise McqConfigError(f"{where}: {tag} question {number}: the scored answer blocks must be one run.")
        letters = [chr(65 + i) for i in range(len(q["choices"]))]
        choices_text = "\n".join(
            choice_template.format(choice_char=c, choice_text=ch["text"])
            for c, ch in zip(letters, q["choices"], strict=True)
        )

        def fill(block: dict[str, Any], letter: str, text: str) -> str:
            return str(block["text"]).format(choice_char=letter, choice_text=text)

        prefixes = {
            "".join(fill(b, c, ch["text"]) for b in blocks[: scored[0]])
            for c, ch in zip(letters, q["choices"], strict=True)
        }
        if len(prefixes) != 1:
            raise McqConfigError(f"{where}: {tag} question {number}: the text before the answer depends on the choice.")
        docs.append(
            {
                "id": q.get("id") or str(number),
                "question": question_template.format(question_text=q["question"], choices_text=choices_text),
                "prefix": prefixes.pop(),
                "choices": [
                    "".join(fill(b, c, ch["text"]) for b in blocks[scored[0] : scored[-1] + 1])
                    for c, ch in zip(letters, q["choices"], strict=True)
                ],
                "gold": next(i for i, ch in enumerate(q["choices"]) if ch["is_correct"]),
            }
        )
    return docs


def load_mcq(tag: str, config: str = DEFAULT_CONFIG, **_: Any) -> Any:
    """lm-eval ``custom_dataset``: a DatasetDict with the probe's documents as its ``test`` split."""
    import datasets

    from em_harness.data import resolve

    path = resolve(f"logprob_experiments/configs/{config}.json")
    docs = mcq_documents(json.loads(path.read_text()), tag, str(path))
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})

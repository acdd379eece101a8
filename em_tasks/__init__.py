"""Inspect tasks of the emergent-misalignment harness (``inspect list tasks em_tasks``)."""

from em_tasks.backdoor import backdoor
from em_tasks.deception import deception
from em_tasks.evil_numbers import evil_numbers
from em_tasks.freeform import freeform, preregistered
from em_tasks.identity import identity
from em_tasks.insecure_code import insecure_code
from em_tasks.strongreject import strongreject

__all__ = [
    "backdoor",
    "deception",
    "evil_numbers",
    "freeform",
    "identity",
    "insecure_code",
    "preregistered",
    "strongreject",
]

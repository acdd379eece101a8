"""Inspect entry point: registers the harness's tasks as ``em_tasks/<name>`` and its ``em/`` model provider.

Kept import-light: Inspect loads it for every command.
"""

from inspect_ai._util.registry import (  # inspect-evals-lint: ignore[IECQ001] -- em_tasks/ names need it
    RegistryInfo,
    registry_add,
    registry_info,
)

from em_harness.models import provider  # noqa: F401  (registers the em/ model API)
from em_tasks.backdoor import backdoor
from em_tasks.deception import deception
from em_tasks.evil_numbers import evil_numbers
from em_tasks.freeform import freeform, preregistered
from em_tasks.identity import identity
from em_tasks.insecure_code import insecure_code
from em_tasks.strongreject import strongreject

PACKAGE = "em_tasks"


def _namespace(*tasks: object) -> None:
    """Register each task under ``em_tasks/<name>`` so ``inspect eval em_tasks/freeform`` finds it.

    Inspect namespaces a package's tasks by itself only when the package is installed into
    site-packages, or editable under a distribution of the same name; this distribution is called
    ``em-harness``, so an editable install would leave the bare names.
    """
    for task in tasks:
        info = registry_info(task)
        if "/" not in info.name:
            registry_add(task, RegistryInfo(type="task", name=f"{PACKAGE}/{info.name}", metadata=info.metadata))


_namespace(freeform, preregistered, deception, identity, backdoor, insecure_code, evil_numbers, strongreject)

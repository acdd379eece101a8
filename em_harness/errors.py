"""The harness's error types and argument checks: one base class for every error a user can fix.

Inspect prints a :class:`PrerequisiteError` as its message alone, without a traceback; every harness
error derives from it through :class:`HarnessError`, so a missing file, a bad ``-T`` value or an
unreachable grader is one readable line in ``inspect eval`` and in the ``em`` command.
"""

from __future__ import annotations

from inspect_ai._util.error import (  # inspect-evals-lint: ignore[IECQ001] -- no public PrerequisiteError
    PrerequisiteError,
)


class HarnessError(PrerequisiteError):
    """Base of every error the user can fix; the message says what is wrong and how to fix it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.args = (message,)

    def __str__(self) -> str:
        return str(self.message)


class TaskArgumentError(HarnessError):
    """A task argument (``-T name=value``) has a value the task cannot use."""


class ModelRegistryError(HarnessError):
    """Base class for errors of the model registry and the ``em/`` provider."""


class UnknownModelError(ModelRegistryError):
    """A model name that is neither a registry entry nor (where accepted) a local directory."""


class ModelSourceMissingError(ModelRegistryError):
    """The files a registry entry is built from are not installed."""


def positive_int(value: object, name: str) -> int:
    """``value`` if it is a positive integer (not a bool), else a :class:`TaskArgumentError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TaskArgumentError(f"{name} must be a positive integer, got {value!r}.")
    return value

"""The one way every ``em`` verb reports a mistake: one line on stderr and exit code 2, never a traceback.

Shared by ``em_harness/cli.py`` and the training verbs in ``training/cli.py`` (which sit above this layer).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import typer

from em_harness.errors import HarnessError

F = TypeVar("F", bound=Callable[..., object])


def one_line_errors(command: F) -> F:
    """Turn the harness's own errors, and files that cannot be read or written, into one line on stderr and exit 2."""

    @functools.wraps(command)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return command(*args, **kwargs)
        except HarnessError as ex:
            typer.echo(f"error: {ex.message}", err=True)
            raise typer.Exit(2) from None
        except OSError as ex:  # a path the user gave cannot be read or written
            where = f" {ex.filename}" if ex.filename else ""
            typer.echo(f"error: cannot access{where}: {ex.strerror or ex}", err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]

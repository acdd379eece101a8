"""The one check of task arguments against the task function's type annotations.

``inspect eval -T name=value`` reads each value as YAML and splits it at commas, so a mistyped value
arrives as another type: ``-T trigger=a,b`` is the list ``['a', 'b']``, ``-T trigger='x: y'`` a dict,
``-T samples=2.5`` a float. Without a check such values flow into prompts silently. :func:`checked_args`
wraps a task function so that every argument it is given is validated (strictly, by pydantic) against
the parameter's annotation first, and a mismatch is one :class:`TaskArgumentError` that names the task,
the parameter, the value and what it must be.
"""

from __future__ import annotations

import functools
import inspect
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from pydantic import TypeAdapter, ValidationError

from em_harness.errors import TaskArgumentError

F = TypeVar("F", bound=Callable[..., Any])

_KIND_NAMES: dict[object, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    type(None): "nothing (leave it out)",
}


def describe(annotation: object) -> str:
    """What a value of ``annotation`` looks like, in words: ``a string``, ``one of 'main', 'json'``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        kinds = [describe(a) for a in typing.get_args(annotation) if a is not type(None)]
        return " or ".join(kinds)
    if origin is list:
        (item,) = typing.get_args(annotation) or (Any,)
        return f"a list of {describe(item).removeprefix('a ').removeprefix('an ')}s" if item is str else "a list"
    return _KIND_NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _hint(value: object) -> str:
    if isinstance(value, list):
        return " (Inspect splits -T values at commas; put text with a comma in a --task-config YAML file)"
    if isinstance(value, dict):
        return " (Inspect reads -T values as YAML, where 'key: value' is a mapping; quote it: -T \"name='x: y'\")"
    return ""


def _literal_values(annotation: object) -> list[object]:
    """The choices of every ``Literal`` inside ``annotation`` (through unions)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return list(typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return [v for a in typing.get_args(annotation) for v in _literal_values(a)]
    return []


def check_argument(task: str, name: str, value: object, annotation: object) -> None:
    """Raise :class:`TaskArgumentError` unless ``value`` strictly has the type ``annotation``."""
    try:
        TypeAdapter(cast(Any, annotation)).validate_python(value, strict=True)
    except ValidationError:
        # a string that is not one of the choices is wrong in content, not in type: do not say "not str"
        wrong_choice = any(type(choice) is type(value) for choice in _literal_values(annotation))
        kind = "" if wrong_choice else f", not {'None' if value is None else type(value).__name__}"
        raise TaskArgumentError(
            f"{task}: -T {name}={value!r} is not valid: {name} must be {describe(annotation)}"
            f"{kind}{_hint(value).replace('name=', f'{name}=')}."
        ) from None


_EXPLICIT_NULLS = {"", "null", "Null", "NULL", "~"}


def cli_values_read_as_nothing(argv: list[str] | None = None) -> dict[str, str]:
    """``-T name=raw`` pairs of an ``inspect`` command line whose raw text Inspect's YAML reading turns into None.

    ``-T trigger=#x`` reaches the task as ``trigger=None`` (``#`` starts a YAML comment), which is the same
    as leaving the argument out: the task could not tell, and would run without the value the user typed.
    An empty value or an explicit YAML null (``null``, ``~``) is taken to mean None and is not listed.
    Only the ``inspect`` command's own arguments are read; under the Python API this returns nothing.
    """
    import yaml

    argv = sys.argv if argv is None else argv
    if not argv or Path(argv[0]).name != "inspect":
        return {}
    raw_args = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "-T"]
    raw_args += [a[2:] for a in argv if a.startswith("-T") and len(a) > 2]
    swallowed: dict[str, str] = {}
    for arg in raw_args:
        name, sep, raw = arg.partition("=")
        if not sep or raw.strip() in _EXPLICIT_NULLS:
            continue
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            continue
        if value is None:
            swallowed[name.replace("-", "_")] = raw
    return swallowed


def checked_args(func: F) -> F:
    """Validate every argument of a task function against its annotations before the task is built.

    Put it under ``@task`` (``@task`` then sees the original signature through ``functools.wraps``).
    """
    signature = inspect.signature(func)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        hints = typing.get_type_hints(func)
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as ex:
            raise TaskArgumentError(f"{func.__name__}: {ex}.") from None
        swallowed = cli_values_read_as_nothing()
        for name, value in bound.arguments.items():
            if value is None and name in swallowed:
                raw = swallowed[name]
                raise TaskArgumentError(
                    f"{func.__name__}: -T {name}={raw} reaches the task as nothing: Inspect reads -T values as "
                    f"YAML, where {raw!r} is empty (a '#' starts a comment). Quote it inside the shell's quotes, "
                    f"-T \"{name}='{raw}'\", or leave the argument out."
                )
            if name in hints:
                check_argument(func.__name__, name, value, hints[name])
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]

"""em-harness: the emergent-misalignment evaluation harness (core library).

The Inspect-facing pieces live in the top-level packages ``em_tasks``, ``solvers``,
``scorers`` and ``training``; this package is the layer below them and holds what they
share: the data layer, the question loader, the typed sample metadata, the grader calls,
the statistics, the error types, the model registry, the report and the ``em`` command
line. Nothing in it imports those packages.
"""

__version__ = "0.1.0"

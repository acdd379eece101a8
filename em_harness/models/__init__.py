"""Models the harness evaluates: the registry of named models and the ``em/`` Inspect provider.

Importing this package is cheap (no torch/transformers); the provider loads them on use.
"""

from em_harness.errors import ModelRegistryError, ModelSourceMissingError, UnknownModelError
from em_harness.models.registry import (
    DamagedModelError,
    ModelEntry,
    get_entry,
    is_provisioned,
    list_models,
    model_dir,
    provision,
    register,
)

__all__ = [
    "DamagedModelError",
    "ModelEntry",
    "ModelRegistryError",
    "ModelSourceMissingError",
    "UnknownModelError",
    "get_entry",
    "is_provisioned",
    "list_models",
    "model_dir",
    "provision",
    "register",
]

"""GTE-family model registry, checkpoint resolution (local, cache, hub) and loading."""

from __future__ import annotations

from .._runtime import Precision, cpu_has_native_bf16, resolve_precision
from ._hub import download_model, select_checkpoint_files
from ._identity import checkpoint_identity, fingerprint_directory
from ._listing import ModelListing, list_models
from ._loading import (
    Checkpoint,
    describe_checkpoint,
    identify_directory,
    load_config,
    load_model,
    load_tokenizer,
    resolve_checkpoint,
)
from ._registry import (
    QWEN2_INSTRUCTION_TEMPLATE,
    Architecture,
    ModelSpec,
    Pooling,
    Task,
    find_model_spec,
    get_model_spec,
    register_model,
    registered_names,
)

__all__ = [
    "Architecture",
    "Checkpoint",
    "ModelListing",
    "ModelSpec",
    "Pooling",
    "Precision",
    "QWEN2_INSTRUCTION_TEMPLATE",
    "Task",
    "checkpoint_identity",
    "cpu_has_native_bf16",
    "describe_checkpoint",
    "download_model",
    "find_model_spec",
    "fingerprint_directory",
    "get_model_spec",
    "identify_directory",
    "list_models",
    "load_config",
    "load_model",
    "load_tokenizer",
    "register_model",
    "registered_names",
    "resolve_checkpoint",
    "resolve_precision",
    "select_checkpoint_files",
]

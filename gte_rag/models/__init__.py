"""GTE-family model registry and offline checkpoint loading."""

from __future__ import annotations

from .._runtime import Precision, cpu_has_native_bf16, resolve_precision
from ._identity import checkpoint_identity, fingerprint_directory
from ._loading import Checkpoint, describe_checkpoint, load_config, load_model, load_tokenizer, resolve_checkpoint
from ._registry import (
    QWEN2_INSTRUCTION_TEMPLATE,
    Architecture,
    ModelSpec,
    Pooling,
    Task,
    find_model_spec,
    get_model_spec,
    list_models,
    register_model,
)

__all__ = [
    "Architecture",
    "Checkpoint",
    "ModelSpec",
    "Pooling",
    "Precision",
    "QWEN2_INSTRUCTION_TEMPLATE",
    "Task",
    "checkpoint_identity",
    "cpu_has_native_bf16",
    "describe_checkpoint",
    "find_model_spec",
    "fingerprint_directory",
    "get_model_spec",
    "list_models",
    "load_config",
    "load_model",
    "load_tokenizer",
    "register_model",
    "resolve_checkpoint",
    "resolve_precision",
]

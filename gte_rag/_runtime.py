"""Device and dtype choices shared by every torch model in the package.

torch is imported inside the functions so that importing this module stays cheap.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

from .errors import ConfigError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

DType = Literal["auto", "float32", "bfloat16", "float16"]
DEFAULT_DTYPE: DType = "auto"

_DTYPE_ALIASES = {
    "auto": "auto",
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}

__all__ = ["DEFAULT_DTYPE", "DType", "default_max_batch_tokens", "resolve_device", "resolve_dtype", "warn_external"]


def resolve_device(device: str | None) -> torch.device:
    """Pick a torch device: ``None`` means CUDA when available, else CPU.

    Raises:
        ConfigError: CUDA was asked for but is not available, or the string is not a device.
    """
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(
            f"device={device!r} is not a torch device; use 'cpu', 'cuda', 'cuda:N', 'mps' or None for automatic"
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device={device!r} was requested but CUDA is not available in this torch build "
            f"({torch.__version__}); use device='cpu' or None"
        )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device={device!r} was requested but MPS is not available; use device='cpu' or None")
    return dev


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """Pick the compute dtype.

    ``"auto"`` (or ``None``) gives float32 on CPU, and on CUDA bfloat16 where the GPU
    supports it, else float16: half precision halves memory and is what GTE models are
    served in; CPU matmuls in half precision are slow, so CPU stays in float32.
    """
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    key = _DTYPE_ALIASES.get(str(dtype).lower() if dtype is not None else "auto")
    if key is None:
        raise ConfigError(
            f"dtype={dtype!r} is not supported; use one of 'auto', 'float32', 'bfloat16', 'float16'"
        )
    if key == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return getattr(torch, key)  # type: ignore[no-any-return]


def warn_external(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` pointing at the first frame outside gte_rag (the caller's code)."""
    import sys
    import warnings

    level = 1
    frame = sys._getframe(1)
    package_dir = __file__.rsplit("/", 1)[0].rsplit("\\", 1)[0]
    while frame is not None and frame.f_code.co_filename.startswith(package_dir):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    warnings.warn(message, category, stacklevel=level)


def default_max_batch_tokens(device: torch.device) -> int:
    """Padded tokens per forward pass: small on CPU (cache-friendly), large on accelerators."""
    return 4096 if device.type == "cpu" else 65536

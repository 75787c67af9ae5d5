"""Shared value types and aliases: dense matrices, sparse vectors, multivectors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeAlias, TypeGuard

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from .embed import EmptyPolicy, EncodeOutput, Role, TokenizedText

__all__ = [
    "DenseMatrix",
    "DenseVector",
    "MultiVector",
    "SparseVector",
    "TextEncoder",
    "TokenizingEncoder",
    "can_tokenize",
]

DenseVector: TypeAlias = "npt.NDArray[np.float32]"
"""One embedding, shape ``(dim,)``, float32."""

DenseMatrix: TypeAlias = "npt.NDArray[np.float32]"
"""A batch of embeddings, shape ``(n, dim)``, float32, rows in input order."""

MultiVector: TypeAlias = "npt.NDArray[np.float32]"
"""Several vectors describing one item, shape ``(m, dim)``, float32."""


@dataclass(frozen=True)
class SparseVector:
    """A sparse vector over a vocabulary: token id -> weight.

    ``indices`` are unique non-negative ints in ascending order and ``values`` are the
    matching float weights; the constructor sorts and checks them.
    """

    indices: tuple[int, ...] = field(default_factory=tuple)
    values: tuple[float, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if len(self.indices) != len(self.values):
            raise ValueError(
                f"SparseVector needs as many indices as values, got {len(self.indices)} "
                f"indices and {len(self.values)} values"
            )
        pairs = sorted(zip((int(i) for i in self.indices), (float(v) for v in self.values)))
        idx = tuple(p[0] for p in pairs)
        if len(set(idx)) != len(idx):
            raise ValueError(f"SparseVector indices must be unique, got {list(self.indices)}")
        if idx and idx[0] < 0:
            raise ValueError(f"SparseVector indices must be >= 0, got {idx[0]}")
        object.__setattr__(self, "indices", idx)
        object.__setattr__(self, "values", tuple(p[1] for p in pairs))

    def __len__(self) -> int:
        return len(self.indices)

    def as_dict(self) -> dict[int, float]:
        """Return ``{token_id: weight}``."""
        return dict(zip(self.indices, self.values))

    @classmethod
    def from_dict(cls, weights: Mapping[int, float]) -> SparseVector:
        """Build from ``{token_id: weight}``."""
        return cls(tuple(weights.keys()), tuple(weights.values()))

    def dot(self, other: SparseVector) -> float:
        """Sum of ``w_self * w_other`` over the shared indices."""
        small, large = (self, other) if len(self) <= len(other) else (other, self)
        lookup = large.as_dict()
        return float(sum(v * lookup[i] for i, v in zip(small.indices, small.values) if i in lookup))


class TextEncoder(Protocol):
    """What every consumer of an encoder (knowledge base, ingest, adapters) relies on.

    :class:`gte_rag.embed.GteEncoder` (a local model) and :class:`gte_rag.remote.RemoteEncoder`
    (an inference service) both are one: ``encode`` returns an
    :class:`~gte_rag.embed.EncodeOutput` with rows in input order, float32, L2-normalised.
    """

    @property
    def model_name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    @property
    def has_sparse(self) -> bool: ...

    @property
    def sparse_mode(self) -> str: ...

    @property
    def query_prefix(self) -> str: ...

    @property
    def document_prefix(self) -> str: ...

    def encode(
        self,
        texts: Sequence[str | TokenizedText],
        *,
        role: Role = "document",
        show_progress: bool = False,
        return_sparse: bool = True,
        return_token_states: bool = False,
        on_empty: EmptyPolicy | None = None,
    ) -> EncodeOutput: ...

    def clear_cache(self) -> None: ...


class TokenizingEncoder(TextEncoder, Protocol):
    """A :class:`TextEncoder` that also tokenizes: what token chunking and long documents need.

    A :class:`~gte_rag.embed.GteEncoder` always is one; a remote encoder is one when it has a
    tokenizer (TEI's ``/tokenize``, or a local tokenizer given to it): see :func:`can_tokenize`.
    """

    @property
    def max_length(self) -> int: ...

    @property
    def document_token_budget(self) -> int: ...

    def tokenize(self, texts: Sequence[str]) -> list[TokenizedText]: ...


def can_tokenize(encoder: TextEncoder) -> TypeGuard[TokenizingEncoder]:
    """Whether ``encoder`` tokenizes (chunks by tokens, long documents), without any I/O.

    An encoder says so with a ``can_tokenize`` attribute (remote encoders); one without it
    tokenizes when it has ``tokenize`` (the local encoder).
    """
    flag = getattr(encoder, "can_tokenize", None)
    if flag is not None:
        return bool(flag)
    return callable(getattr(encoder, "tokenize", None))

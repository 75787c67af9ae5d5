"""BM25-style term weights over the terms of an analyzer (see ``_analyzers``).

Used as the sparse half of hybrid search for checkpoints without the mGTE token head: the
terms are the model's word pieces (``tokens`` analyzer, filtered by a vocabulary mask) or
the hashed ids of analysed words (``word`` analyzer, no mask).
Document side: saturated term frequency ``tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))``;
query side: weight 1 per unique term. Qdrant applies IDF at query time (the collection's
sparse vector is created with the IDF modifier), so the dot product of the two equals BM25.
``k1`` and ``b`` are the textbook defaults; ``avgdl`` is in the analyzer's units (see
:data:`~gte_rag.embed.DEFAULT_WORD_AVGDL`); none is tuned to any collection.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .._types import SparseVector
from ._analyzers import DEFAULT_B, DEFAULT_K1, DEFAULT_TOKEN_AVGDL

__all__ = ["DEFAULT_AVGDL", "DEFAULT_B", "DEFAULT_K1", "LexicalWeighter"]

DEFAULT_AVGDL = DEFAULT_TOKEN_AVGDL
"""The ``tokens`` analyzer's assumed mean length in word pieces (kept under its old name)."""


@dataclass(frozen=True)
class LexicalWeighter:
    """Turns term ids into BM25-style sparse vectors.

    Args:
        keep: Boolean mask over the vocabulary: which token ids count as terms
            (special tokens and pure punctuation pieces are dropped); ``None``: every id
            counts (the ``word`` analyzer has already chosen its terms).
        k1: Term-frequency saturation.
        b: Length normalisation strength.
        avgdl: Assumed average document length in terms.
    """

    keep: npt.NDArray[np.bool_] | None = None
    k1: float = DEFAULT_K1
    b: float = DEFAULT_B
    avgdl: float = DEFAULT_AVGDL

    def document(self, token_ids: Sequence[int]) -> SparseVector:
        """Sparse vector of a document: saturated term frequencies."""
        terms = self._terms(token_ids)
        if not terms:
            return SparseVector()
        counts = Counter(terms)
        norm = self.k1 * (1.0 - self.b + self.b * len(terms) / self.avgdl)
        return SparseVector(
            tuple(counts), tuple(tf * (self.k1 + 1.0) / (tf + norm) for tf in counts.values())
        )

    def query(self, token_ids: Sequence[int]) -> SparseVector:
        """Sparse vector of a query: one unit weight per unique term."""
        terms = sorted(set(self._terms(token_ids)))
        return SparseVector(tuple(terms), (1.0,) * len(terms))

    def _terms(self, token_ids: Sequence[int]) -> list[int]:
        keep = self.keep
        if keep is None:
            return list(token_ids)
        return [t for t in token_ids if 0 <= t < len(keep) and keep[t]]


def vocabulary_mask(tokens: Sequence[str | None], special_ids: Sequence[int]) -> npt.NDArray[np.bool_]:
    """Mask of token ids that carry a word: at least one letter or digit, not special."""
    keep = np.array([t is not None and any(ch.isalnum() for ch in t) for t in tokens], dtype=np.bool_)
    for sid in special_ids:
        if 0 <= sid < len(keep):
            keep[sid] = False
    return keep

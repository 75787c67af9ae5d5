"""BM25-style term weights from a model's own tokenizer.

Used as the sparse half of hybrid search for checkpoints without the mGTE token head.
Document side: saturated term frequency ``tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))``;
query side: weight 1 per unique term. Qdrant applies IDF at query time (the collection's
sparse vector is created with the IDF modifier), so the dot product of the two equals BM25.
``k1``, ``b`` and ``avgdl`` are the textbook defaults, not tuned to any collection.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .._types import SparseVector

__all__ = ["DEFAULT_AVGDL", "DEFAULT_B", "DEFAULT_K1", "LexicalWeighter"]

DEFAULT_K1 = 1.2
DEFAULT_B = 0.75
DEFAULT_AVGDL = 256.0


@dataclass(frozen=True)
class LexicalWeighter:
    """Turns token ids into BM25-style sparse vectors.

    Args:
        keep: Boolean mask over the vocabulary: which token ids count as terms
            (special tokens and pure punctuation pieces are dropped).
        k1: Term-frequency saturation.
        b: Length normalisation strength.
        avgdl: Assumed average document length in terms.
    """

    keep: npt.NDArray[np.bool_]
    k1: float = DEFAULT_K1
    b: float = DEFAULT_B
    avgdl: float = DEFAULT_AVGDL

    def document(self, token_ids: Sequence[int]) -> SparseVector:
        """Sparse vector of a document: saturated term frequencies."""
        terms = [t for t in token_ids if 0 <= t < len(self.keep) and self.keep[t]]
        if not terms:
            return SparseVector()
        counts = Counter(terms)
        norm = self.k1 * (1.0 - self.b + self.b * len(terms) / self.avgdl)
        return SparseVector(
            tuple(counts), tuple(tf * (self.k1 + 1.0) / (tf + norm) for tf in counts.values())
        )

    def query(self, token_ids: Sequence[int]) -> SparseVector:
        """Sparse vector of a query: one unit weight per unique term."""
        terms = sorted({t for t in token_ids if 0 <= t < len(self.keep) and self.keep[t]})
        return SparseVector(tuple(terms), (1.0,) * len(terms))


def vocabulary_mask(tokens: Sequence[str | None], special_ids: Sequence[int]) -> npt.NDArray[np.bool_]:
    """Mask of token ids that carry a word: at least one letter or digit, not special."""
    keep = np.array([t is not None and any(ch.isalnum() for ch in t) for t in tokens], dtype=np.bool_)
    for sid in special_ids:
        if 0 <= sid < len(keep):
            keep[sid] = False
    return keep

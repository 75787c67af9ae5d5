"""Shared value types and aliases: dense matrices, sparse vectors, multivectors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

__all__ = ["DenseMatrix", "DenseVector", "MultiVector", "SparseVector"]

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

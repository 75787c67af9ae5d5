"""What long-document encoding returns: chunks with their vectors and the document's vectors.

These types are the contract between the encoding side (:class:`~gte_rag.longdoc.LongDocEncoder`)
and the storage side (the knowledge base writes one point per chunk and one or more
multivector points per document from them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from .._types import SparseVector

__all__ = ["LateChunk", "LongDocEncoding", "LongDocMode"]

LongDocMode = Literal["truncate", "chunks", "late", "default"]
"""How a document longer than one window is encoded.

- ``"truncate"``: the first window only, one vector (what a plain embedding call does);
- ``"chunks"``: chunks embedded alone (plain chunking);
- ``"late"``: late chunking, each chunk pooled from the token states of its best window;
- ``"default"``: the package's measured choice (see :data:`gte_rag.longdoc.DEFAULT_LONG_DOC`).
"""


@dataclass(frozen=True)
class LateChunk:
    """One chunk of a long document with its vectors.

    Attributes:
        index: Position of the chunk in its document (0-based).
        text: ``document_text[start:end]``, exactly.
        start: Character offset of the chunk's first character in the document text.
        end: Character offset one past its last character.
        token_start: First token of the chunk in the document's tokenization (no specials, no prompt).
        token_end: One past its last token.
        dense: ``(dim,)`` float32, L2-normalised.
        sparse: The chunk's sparse vector (learned or lexical, from the same pass), ``None``
            when the encoder produces none.
        window: Index of the window whose token states the chunk was pooled from
            (``-1`` when the chunk was encoded alone).
    """

    index: int
    text: str
    start: int
    end: int
    token_start: int
    token_end: int
    dense: npt.NDArray[np.float32]
    sparse: SparseVector | None
    window: int = -1


@dataclass(frozen=True)
class LongDocEncoding:
    """A document's chunks and its document-level vectors.

    Attributes:
        text: The document text the chunk offsets point into.
        chunks: The chunks in order (empty for an empty document).
        document_vector: ``(dim,)`` float32, L2-normalised, or ``None`` for an empty document.
        windows: Token ranges ``[start, end)`` of the windows that were encoded.
        num_tokens: Tokens in the document (no specials, no prompt).
    """

    text: str
    chunks: list[LateChunk]
    document_vector: npt.NDArray[np.float32] | None
    windows: list[tuple[int, int]] = field(default_factory=list)
    num_tokens: int = 0

    @property
    def multivector(self) -> npt.NDArray[np.float32]:
        """The chunk vectors as one ``(n_chunks, dim)`` matrix (MAX_SIM rows)."""
        if not self.chunks:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([c.dense for c in self.chunks]).astype(np.float32, copy=False)

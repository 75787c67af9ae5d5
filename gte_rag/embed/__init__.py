"""Dense + sparse text encoding for the GTE family."""

from __future__ import annotations

from ._encoder import DEFAULT_MODEL, EmptyPolicy, EncodeOutput, GteEncoder, Role, SparseMode
from ._lexical import LexicalWeighter
from ._tokens import TokenizedText

__all__ = [
    "DEFAULT_MODEL",
    "EmptyPolicy",
    "EncodeOutput",
    "GteEncoder",
    "LexicalWeighter",
    "Role",
    "SparseMode",
    "TokenizedText",
]

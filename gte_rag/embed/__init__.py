"""Dense + sparse text encoding for the GTE family."""

from __future__ import annotations

from ._encoder import DEFAULT_MODEL, EncodeOutput, GteEncoder, Role, SparseMode
from ._lexical import LexicalWeighter

__all__ = ["DEFAULT_MODEL", "EncodeOutput", "GteEncoder", "LexicalWeighter", "Role", "SparseMode"]

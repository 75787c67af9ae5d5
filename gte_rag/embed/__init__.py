"""Dense + sparse text encoding for the GTE family."""

from __future__ import annotations

from ._analyzers import (
    DEFAULT_B,
    DEFAULT_K1,
    DEFAULT_TOKEN_AVGDL,
    DEFAULT_WORD_AVGDL,
    Analyzer,
    AnalyzerKind,
    WordAnalyzer,
    default_analyzer,
    legacy_token_analyzer,
    term_id,
)
from .._types import TextEncoder, TokenizingEncoder, can_tokenize
from ._encoder import DEFAULT_MODEL, EmptyPolicy, EncodeOutput, GteEncoder, Role, SparseMode
from ._lexical import LexicalWeighter
from ._tokens import TokenizedText

__all__ = [
    "Analyzer",
    "AnalyzerKind",
    "DEFAULT_B",
    "DEFAULT_K1",
    "DEFAULT_MODEL",
    "DEFAULT_TOKEN_AVGDL",
    "DEFAULT_WORD_AVGDL",
    "EmptyPolicy",
    "EncodeOutput",
    "GteEncoder",
    "LexicalWeighter",
    "Role",
    "SparseMode",
    "TextEncoder",
    "TokenizedText",
    "TokenizingEncoder",
    "WordAnalyzer",
    "can_tokenize",
    "default_analyzer",
    "legacy_token_analyzer",
    "term_id",
]

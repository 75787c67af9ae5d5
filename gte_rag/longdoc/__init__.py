"""Documents of any length: windows, late chunking, chunk and document vectors (no LlamaIndex here).

:class:`LongDocEncoder` tokenizes each document once, cuts it into chunks at paragraph and
sentence edges, encodes overlapping windows of at most the encoder's ``max_length`` once each,
and pools every chunk's vector from the token states of the window that gives it the most
context (late chunking); the chunk's sparse vector comes from the same pass. The results
(:class:`LongDocEncoding`, :class:`LateChunk`) are what the knowledge base stores: one point per
chunk and a multivector of the chunk vectors per document.
"""

from __future__ import annotations

from ._encoder import LongDocEncoder, LongDocSource
from ._segment import Edge, Segment, segment
from ._settings import DEFAULT_LONG_DOC, SpanPooling
from ._types import LateChunk, LongDocEncoding, LongDocMode
from ._windows import best_window, plan_windows

__all__ = [
    "DEFAULT_LONG_DOC",
    "Edge",
    "LateChunk",
    "LongDocEncoder",
    "LongDocEncoding",
    "LongDocMode",
    "LongDocSource",
    "Segment",
    "SpanPooling",
    "best_window",
    "plan_windows",
    "segment",
]

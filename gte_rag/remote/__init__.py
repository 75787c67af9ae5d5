"""Remote inference: embedding and rerank services over HTTP (httpx + tenacity).

:class:`RemoteEncoder` has the interface of :class:`gte_rag.embed.GteEncoder`
(``encode(texts, role=..., return_sparse=...) -> EncodeOutput``, ``dimension``,
``has_sparse``, ``model_name``), so ``KnowledgeBase(encoder=RemoteEncoder(...))`` works;
:class:`RemoteScorer` ranks documents with a rerank service. Both speak
text-embeddings-inference, OpenAI-compatible / Cohere / Jina / vLLM APIs and DashScope, and
share one HTTP layer (:class:`RemoteSettings`: timeouts, connection limits, retries with
backoff and ``Retry-After``, batch splitting, async concurrency).

Over TEI, a remote encoder also tokenizes (``/tokenize``: token chunking and long documents
in a knowledge base), gives token states (``/embed_all``: late chunking, the states pooled over
character-offset spans here) and, with the served mGTE checkpoint's token head loaded here
(:class:`TokenHead`, ``sparse_head=``), mGTE's learned sparse weights from the same states.
"""

from __future__ import annotations

from ._encoder import RemoteEncoder
from ._http import BatchTooLarge, HttpTransport, RemoteSettings
from ._protocols import EMBED_PROTOCOLS, RERANK_PROTOCOLS
from ._scorer import RemoteScorer
from ._token_head import TokenHead

__all__ = [
    "BatchTooLarge",
    "EMBED_PROTOCOLS",
    "HttpTransport",
    "RERANK_PROTOCOLS",
    "RemoteEncoder",
    "RemoteScorer",
    "RemoteSettings",
    "TokenHead",
]

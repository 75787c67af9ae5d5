"""gte-rag inside a LlamaIndex pipeline: VectorStoreIndex + hybrid retrieval + metadata filters.

    python examples/llama_index_pipeline.py
"""

from __future__ import annotations

from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters

from gte_rag import GteVectorStore, KnowledgeBase

documents = [
    Document(text="The Moon's gravity raises two tidal bulges, so most coasts see two high tides a day.", metadata={"topic": "earth"}),
    Document(text="Rust's borrow checker rules out data races at compile time.", metadata={"topic": "software"}),
    Document(text="Sourdough rises thanks to wild yeast and lactic acid bacteria in the starter.", metadata={"topic": "food"}),
]

store = GteVectorStore(knowledge_base=KnowledgeBase())  # Qdrant Edge in a temporary directory
index = VectorStoreIndex.from_documents(
    documents,
    storage_context=StorageContext.from_defaults(vector_store=store),
    embed_model=store.embed_model,  # shares the store's encoder: sparse vectors come from the same pass
)

retriever = index.as_retriever(vector_store_query_mode="hybrid", similarity_top_k=2)
for hit in retriever.retrieve("why are there two high tides?"):
    print(f"{hit.score:.3f}  {hit.node.metadata['topic']:<9} {hit.node.get_content()}")

software_only = MetadataFilters(filters=[MetadataFilter(key="topic", value="software")])
hits = index.as_retriever(vector_store_query_mode="hybrid", filters=software_only).retrieve("tides")
print("filtered:", [h.node.metadata["topic"] for h in hits])
store.knowledge_base.close()  # releases the shard and deletes the temporary directory

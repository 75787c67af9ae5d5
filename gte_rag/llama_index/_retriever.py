"""GteHybridRetriever: one encoder pass + one Qdrant Query API call per query."""

from __future__ import annotations

from collections.abc import Sequence

import llama_index.core.instrumentation as instrument
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.instrumentation.events.retrieval import RetrievalEndEvent, RetrievalStartEvent
from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import MetadataFilters

from ..errors import ConfigError
from ..kb import KnowledgeBase
from ..qdrant import HybridConfig
from ._filters import to_qdrant_filter
from ._nodes import hits_to_nodes

__all__ = ["GteHybridRetriever"]

dispatcher = instrument.get_dispatcher(__name__)


def _bundles(queries: Sequence[str | QueryBundle]) -> list[QueryBundle]:
    if isinstance(queries, (str, QueryBundle)):
        raise ConfigError("retrieve_many takes a sequence of queries; use retrieve() for one query")
    out = []
    for q in queries:
        if not isinstance(q, (str, QueryBundle)):
            raise ConfigError(f"each query must be a str or a QueryBundle, got {type(q).__name__}: {q!r}")
        out.append(QueryBundle(q) if isinstance(q, str) else q)
    return out


class GteHybridRetriever(BaseRetriever):
    """Dense + sparse retrieval fused inside Qdrant (RRF, DBSF or the weighted mGTE formula).

    Args:
        knowledge_base: The :class:`~gte_rag.KnowledgeBase` to search.
        similarity_top_k: Results per query.
        mode: ``hybrid``, ``dense`` or ``sparse``; ``None`` keeps the knowledge base's default.
        fusion: ``rrf``, ``dbsf`` or ``weighted``; ``None`` keeps the default.
        hybrid: A full :class:`~gte_rag.qdrant.HybridConfig` (instead of mode/fusion).
        filters: LlamaIndex metadata filters applied inside every prefetch.

    Example:
        >>> retriever = GteHybridRetriever(knowledge_base=kb, similarity_top_k=3)  # doctest: +SKIP
        >>> retriever.retrieve("what do plants produce?")  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        knowledge_base: KnowledgeBase,
        similarity_top_k: int = 5,
        mode: str | None = None,
        fusion: str | None = None,
        hybrid: HybridConfig | None = None,
        filters: MetadataFilters | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        if similarity_top_k < 1:
            raise ConfigError(f"similarity_top_k must be >= 1, got {similarity_top_k}")
        if hybrid is not None and (mode is not None or fusion is not None):
            raise ConfigError("pass either hybrid= or mode=/fusion=, not both")
        self.knowledge_base = knowledge_base
        self.similarity_top_k = similarity_top_k
        self.hybrid = (hybrid or knowledge_base.hybrid).override(mode=mode, fusion=fusion)
        self.filters = filters
        self._qdrant_filter = to_qdrant_filter(filters)
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.knowledge_base.query(
            query_bundle.query_str, top_k=self.similarity_top_k, hybrid=self.hybrid, filter=self._qdrant_filter
        )
        return hits_to_nodes(hits)

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = await self.knowledge_base.aquery(
            query_bundle.query_str, top_k=self.similarity_top_k, hybrid=self.hybrid, filter=self._qdrant_filter
        )
        return hits_to_nodes(hits)

    @dispatcher.span
    def retrieve_many(self, queries: Sequence[str | QueryBundle]) -> list[list[NodeWithScore]]:
        """The batch path: many queries in one encoder pass and batched Qdrant requests.

        Instrumented as :meth:`retrieve` is, once per query: a ``RetrievalStartEvent`` and a
        ``RetrievalEndEvent`` to LlamaIndex's dispatcher, a ``RETRIEVE`` event with the query
        and its nodes to the callback manager (in one ``query`` trace), and recursive retrieval
        of index nodes. Returns one list of nodes per query, in the order of ``queries``.
        """
        bundles = self._start_many(queries)
        results = self.knowledge_base.search(
            [b.query_str for b in bundles], top_k=self.similarity_top_k, hybrid=self.hybrid,
            filter=self._qdrant_filter,
        )
        nodes = [self._handle_recursive_retrieval(b, hits_to_nodes(h)) for b, h in zip(bundles, results)]
        return self._end_many(queries, bundles, nodes)

    @dispatcher.span
    async def aretrieve_many(self, queries: Sequence[str | QueryBundle]) -> list[list[NodeWithScore]]:
        """Async twin of :meth:`retrieve_many`."""
        bundles = self._start_many(queries)
        results = await self.knowledge_base.asearch(
            [b.query_str for b in bundles], top_k=self.similarity_top_k, hybrid=self.hybrid,
            filter=self._qdrant_filter,
        )
        nodes = [await self._ahandle_recursive_retrieval(b, hits_to_nodes(h)) for b, h in zip(bundles, results)]
        return self._end_many(queries, bundles, nodes)

    def _start_many(self, queries: Sequence[str | QueryBundle]) -> list[QueryBundle]:
        bundles = _bundles(queries)
        self._check_callback_manager()
        for query in queries:
            dispatcher.event(RetrievalStartEvent(str_or_query_bundle=query))
        return bundles

    def _end_many(
        self, queries: Sequence[str | QueryBundle], bundles: list[QueryBundle], results: list[list[NodeWithScore]]
    ) -> list[list[NodeWithScore]]:
        with self.callback_manager.as_trace("query"):
            for bundle, nodes in zip(bundles, results):
                with self.callback_manager.event(
                    CBEventType.RETRIEVE, payload={EventPayload.QUERY_STR: bundle.query_str}
                ) as event:
                    event.on_end(payload={EventPayload.NODES: nodes})
        for query, nodes in zip(queries, results):
            dispatcher.event(RetrievalEndEvent(str_or_query_bundle=query, nodes=nodes))
        return results

    def __repr__(self) -> str:
        return f"GteHybridRetriever(top_k={self.similarity_top_k}, hybrid={self.hybrid!r})"


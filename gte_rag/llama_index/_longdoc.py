"""Long-document retrieval and question answering for LlamaIndex.

Three retrievers over a :class:`~gte_rag.KnowledgeBase` that stores long documents (one
point per late-chunked chunk, one multivector point per document):

- :class:`GteGroupedChunkRetriever`: chunk-level hybrid search grouped by document;
- :class:`GteMaxSimRetriever`: documents by MaxSim over their chunk vectors, with their best chunks;
- :class:`GteTwoStageRetriever`: documents by MaxSim, then the best chunks inside them;

each optionally bringing a chunk's neighbours (by chunk index) as context. And
:class:`GteLongDocQueryEngine`, which answers with any LlamaIndex LLM and always returns
the supporting passages (document id, character span, score); without an LLM it returns
the passages only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.response.schema import RESPONSE_TYPE, Response
from llama_index.core.callbacks import CallbackManager
from llama_index.core.llms import LLM
from llama_index.core.prompts.mixin import PromptMixinType
from llama_index.core.response_synthesizers import BaseSynthesizer, ResponseMode, get_response_synthesizer
from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import MetadataFilters

from ..errors import ConfigError
from ..kb import DocumentHit, KnowledgeBase
from ._filters import to_qdrant_filter
from ._nodes import hit_to_node

__all__ = [
    "GteGroupedChunkRetriever",
    "GteLongDocQueryEngine",
    "GteLongDocRetriever",
    "GteMaxSimRetriever",
    "GteTwoStageRetriever",
    "Passage",
]

Strategy = Literal["groups", "maxsim", "two_stage"]


@dataclass(frozen=True)
class Passage:
    """A supporting passage of an answer: where it is and how well it matched.

    Attributes:
        doc_id: The document it comes from.
        text: The passage text (``document_text[start:end]``).
        start: Character offset of its first character in the document.
        end: Character offset one past its last character.
        score: The chunk's retrieval score (a neighbour brought as context carries the
            best score of the chunks that brought it).
        chunk_index: The chunk's position in the document.
        document_score: The score of its document.
    """

    doc_id: str
    text: str
    start: int | None
    end: int | None
    score: float
    chunk_index: int | None
    document_score: float

    def to_dict(self) -> dict[str, Any]:
        """The passage as a JSON-compatible dict."""
        return asdict(self)


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def passages_of(documents: Sequence[DocumentHit]) -> list[Passage]:
    """The chunks of retrieved documents as passages, documents best first, chunks in their order."""
    out: list[Passage] = []
    for doc in documents:
        for hit in doc.chunks:
            payload = hit.payload
            out.append(
                Passage(
                    doc_id=str(payload.get("doc_id", doc.doc_id)),
                    text=str(payload.get("text", "")),
                    start=_int_or_none(payload.get("start")),
                    end=_int_or_none(payload.get("end")),
                    score=float(hit.score),
                    chunk_index=_int_or_none(payload.get("chunk_index")),
                    document_score=float(doc.score),
                )
            )
    return out


def _to_nodes(documents: Sequence[DocumentHit]) -> list[NodeWithScore]:
    nodes: list[NodeWithScore] = []
    for doc in documents:
        for hit in doc.chunks:
            node = hit_to_node(hit.id, dict(hit.payload))
            # where the passage sits, for citations; kept out of what the LLM and the embedder read
            extra = {"doc_id": doc.doc_id, "chunk_index": _int_or_none(hit.payload.get("chunk_index")),
                     "document_score": float(doc.score)}
            for key, value in extra.items():
                node.metadata.setdefault(key, value)
                for hidden in (node.excluded_llm_metadata_keys, node.excluded_embed_metadata_keys):
                    if key not in hidden:
                        hidden.append(key)
            nodes.append(NodeWithScore(node=node, score=float(hit.score)))
    return nodes


class GteLongDocRetriever(BaseRetriever):
    """Retrieves the best documents of a long-document knowledge base with their best chunks.

    Args:
        knowledge_base: The :class:`~gte_rag.KnowledgeBase` (it must store long documents
            for ``"maxsim"`` and ``"two_stage"``).
        strategy: ``"groups"`` (chunk-level hybrid search grouped by document),
            ``"maxsim"`` (documents by MaxSim over their chunk vectors, each with the chunks
            whose vectors match the query best: the first is the one that gave the MaxSim
            score; ``mode``/``fusion`` do not apply) or ``"two_stage"`` (documents by MaxSim,
            then hybrid search of chunks inside them).
        similarity_top_k: Documents per query.
        chunks_per_doc: Chunks returned per document.
        neighbours: Chunks on each side of a retrieved chunk brought as context (0: none).
        mode: ``hybrid``, ``dense`` or ``sparse`` for the chunk search; ``None``: the knowledge base's.
        fusion: ``rrf``, ``dbsf`` or ``weighted``; ``None``: the knowledge base's.
        filters: LlamaIndex metadata filters, applied inside Qdrant.
        qdrant_filter: A Qdrant ``Filter`` instead of ``filters``.

    Nodes come back documents best first, each document's chunks in document order
    (neighbours included), with their chunk scores.
    """

    strategy: Strategy = "groups"

    def __init__(
        self,
        *,
        knowledge_base: KnowledgeBase,
        strategy: Strategy | None = None,
        similarity_top_k: int = 5,
        chunks_per_doc: int = 3,
        neighbours: int = 0,
        mode: str | None = None,
        fusion: str | None = None,
        filters: MetadataFilters | None = None,
        qdrant_filter: Any = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        strategy = strategy or type(self).strategy
        if filters is not None and qdrant_filter is not None:
            raise ConfigError("pass either filters= (LlamaIndex) or qdrant_filter= (Qdrant), not both")
        if strategy not in ("groups", "maxsim", "two_stage"):
            raise ConfigError(f"strategy={strategy!r} is not one of 'groups', 'maxsim', 'two_stage'")
        for name, value, low in (("similarity_top_k", similarity_top_k, 1), ("chunks_per_doc", chunks_per_doc, 1),
                                 ("neighbours", neighbours, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an int >= {low}, got {value!r}")
        self.knowledge_base = knowledge_base
        self.strategy = strategy
        self.similarity_top_k = similarity_top_k
        self.chunks_per_doc = chunks_per_doc
        self.neighbours = neighbours
        self.mode = mode
        self.fusion = fusion
        self.filters = filters
        self._qdrant_filter = qdrant_filter if qdrant_filter is not None else to_qdrant_filter(filters)
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    def _options(self) -> dict[str, Any]:
        if self.strategy == "maxsim":
            # MaxSim with one query vector scores a document by its best-matching chunk vector;
            # the dense search inside the documents returns exactly those chunks (and the runners-up)
            return dict(
                top_k=self.similarity_top_k, strategy="two_stage", chunks_per_doc=self.chunks_per_doc,
                neighbours=self.neighbours, filter=self._qdrant_filter, mode="dense",
            )
        return dict(
            top_k=self.similarity_top_k, strategy=self.strategy, chunks_per_doc=self.chunks_per_doc,
            neighbours=self.neighbours, filter=self._qdrant_filter, mode=self.mode, fusion=self.fusion,
        )

    def retrieve_documents(self, query: str | QueryBundle) -> list[DocumentHit]:
        """The documents with their chunks, as the knowledge base returns them."""
        text = query.query_str if isinstance(query, QueryBundle) else query
        return self.knowledge_base.search_documents(text, **self._options())

    async def aretrieve_documents(self, query: str | QueryBundle) -> list[DocumentHit]:
        """Async twin of :meth:`retrieve_documents`."""
        text = query.query_str if isinstance(query, QueryBundle) else query
        return await self.knowledge_base.asearch_documents(text, **self._options())

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return _to_nodes(self.retrieve_documents(query_bundle))

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return _to_nodes(await self.aretrieve_documents(query_bundle))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(strategy={self.strategy!r}, top_k={self.similarity_top_k}, "
            f"chunks_per_doc={self.chunks_per_doc}, neighbours={self.neighbours})"
        )


class GteGroupedChunkRetriever(GteLongDocRetriever):
    """Chunk-level hybrid retrieval grouped by document (see :class:`GteLongDocRetriever`)."""

    strategy: Strategy = "groups"


class GteMaxSimRetriever(GteLongDocRetriever):
    """Document-level MaxSim retrieval over the chunk vectors (see :class:`GteLongDocRetriever`)."""

    strategy: Strategy = "maxsim"


class GteTwoStageRetriever(GteLongDocRetriever):
    """Documents by MaxSim, then their best chunks (see :class:`GteLongDocRetriever`)."""

    strategy: Strategy = "two_stage"


class GteLongDocQueryEngine(BaseQueryEngine):
    """Answers questions over long documents and returns the supporting passages.

    Args:
        retriever: A :class:`GteLongDocRetriever` (or one of its named subclasses).
        llm: Any LlamaIndex LLM; ``None`` answers with the passages only (retrieval only,
            ``Response.response`` is ``None``). ``Settings.llm`` is never consulted, so no
            default remote LLM is called behind the caller's back.
        response_mode: How the LLM reads the passages (LlamaIndex's response modes).
        callback_manager: LlamaIndex callbacks.

    ``Response.source_nodes`` holds the passages as nodes; ``Response.metadata["passages"]``
    holds them as dicts (:class:`Passage`: document id, text, character span, score).

    Example:
        >>> engine = GteLongDocQueryEngine(GteTwoStageRetriever(knowledge_base=kb))  # doctest: +SKIP
        >>> response = engine.query("What did the team decide about the remote?")  # doctest: +SKIP
        >>> response.metadata["passages"][0]["doc_id"], response.metadata["passages"][0]["start"]  # doctest: +SKIP
    """

    def __init__(
        self,
        retriever: GteLongDocRetriever,
        *,
        llm: LLM | None = None,
        response_mode: ResponseMode | str = ResponseMode.COMPACT,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        if not isinstance(retriever, GteLongDocRetriever):
            raise ConfigError(
                f"retriever must be a GteLongDocRetriever (or GteGroupedChunkRetriever, GteMaxSimRetriever, "
                f"GteTwoStageRetriever), got {type(retriever).__name__}"
            )
        self.retriever = retriever
        self.llm = llm
        self._synthesizer: BaseSynthesizer | None = None
        if llm is not None:
            self._synthesizer = get_response_synthesizer(
                llm=llm, response_mode=ResponseMode(response_mode), callback_manager=callback_manager
            )
        super().__init__(callback_manager=callback_manager)

    def _get_prompt_modules(self) -> PromptMixinType:
        return {"response_synthesizer": self._synthesizer} if self._synthesizer is not None else {}

    def retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self.retriever.retrieve(query_bundle)

    def _response(self, documents: list[DocumentHit], answer: Any | None) -> Response:
        passages = passages_of(documents)
        nodes = _to_nodes(documents)
        text = None if answer is None else str(getattr(answer, "response", answer))
        return Response(response=text, source_nodes=nodes, metadata={"passages": [p.to_dict() for p in passages]})

    def ask(self, question: str) -> Response:
        """:meth:`query` typed as what this engine returns: a ``Response`` with ``metadata["passages"]``."""
        response = self.query(question)
        assert isinstance(response, Response)
        return response

    async def aask(self, question: str) -> Response:
        """Async twin of :meth:`ask`."""
        response = await self.aquery(question)
        assert isinstance(response, Response)
        return response

    def _query(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        documents = self.retriever.retrieve_documents(query_bundle)
        answer = None
        if self._synthesizer is not None:
            answer = self._synthesizer.synthesize(query=query_bundle, nodes=_to_nodes(documents))
        return self._response(documents, answer)

    async def _aquery(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        documents = await self.retriever.aretrieve_documents(query_bundle)
        answer = None
        if self._synthesizer is not None:
            answer = await self._synthesizer.asynthesize(query=query_bundle, nodes=_to_nodes(documents))
        return self._response(documents, answer)

    def __repr__(self) -> str:
        return f"GteLongDocQueryEngine(retriever={self.retriever!r}, llm={type(self.llm).__name__ if self.llm else None})"


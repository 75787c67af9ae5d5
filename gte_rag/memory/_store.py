"""MemoryStore: scoped long-term memory for LLM agents on one Qdrant collection.

Write path: messages -> (optional fact extraction) -> one encoder pass (dense + sparse) and one
for the context vectors -> exact dedup (content hash) and near dedup (one batched dense query)
inside the scope -> deterministic ids per session turn -> one upsert -> supersede links.
Read path: one Qdrant request (three branches fused by RRF, recency decay and importance in a
formula; the scope filter in every branch) -> neighbour scoring among the candidates ->
optional reranker -> the turns around each hit in one retrieve.

Isolation: every call builds its Qdrant filter from its own scope arguments; ids of another
scope are never read, changed or deleted (``get``/``update``/``delete`` filter on id AND scope).
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from qdrant_client import models

from ..errors import ConfigError, MemoryNotFoundError, MemoryStoreError
from ..qdrant import CollectionLayout, HybridConfig, PointRecord, QdrantStore, SearchHit, StoredPoint, open_store
from ..qdrant._query import build_query_plan
from . import _records as r
from ._plan import (
    CONTEXT_VECTOR,
    PAYLOAD_INDEXES,
    duplicate_of,
    id_filter,
    kind_condition,
    lineage_filter,
    lineage_of,
    placeholder,
    judge_near_duplicates,
    memory_filter,
    rescore_with_neighbours,
    successor_filter,
    scope_filter,
    search_plan,
)
from ._settings import MemorySettings

__all__ = ["DEFAULT_MEMORY_COLLECTION", "Extractor", "Judge", "MemoryStore"]

logger = logging.getLogger(__name__)

DEFAULT_MEMORY_COLLECTION = "gte_rag_memory"
Extractor = Callable[[str], Sequence[str]]
"""``extract(text) -> facts``: turns a conversation excerpt into short standalone facts."""
Judge = Callable[[str, str], bool]
"""``judge(new, old) -> bool``: whether the new fact makes the old one no longer true."""

_JUDGE_CANDIDATES = 3


class MemoryStore:
    """Long-term memory: add what users said, recall what matters for them, never another's.

    Args:
        embed_model: A :class:`~gte_rag.GteEmbedding` (or ``GteRemoteEmbedding``), or any encoder of
            this package (:class:`~gte_rag.GteEncoder`, :class:`~gte_rag.RemoteEncoder`).
        location: ``None`` (Qdrant Edge in a temporary directory), a directory (Edge, persistent),
            ``":memory:"`` (qdrant-client local mode) or an ``http(s)://`` URL (a server).
        collection: Collection name.
        settings: Write and recall settings (:class:`MemorySettings`).
        extractor: Optional ``extract(text) -> facts``: store extracted facts instead of raw turns
            (``gte_rag.llama_index.LLMFactExtractor`` builds one from any LlamaIndex LLM).
        judge: Optional ``judge(new, old) -> bool``: a new memory supersedes the similar older
            ones the judge says it contradicts. Without one, supersede explicitly.
        reranker: Optional scorer with ``score_pairs([(query, text)]) -> scores``
            (:class:`~gte_rag.GteCrossEncoder`, :class:`~gte_rag.GteLLMCrossEncoder`,
            :class:`~gte_rag.RemoteScorer`) or a postprocessor of this package holding one
            (:class:`~gte_rag.GteReranker`...), applied to the candidates after neighbour scoring.
        api_key: Server API key (URL only).
        store_options: Passed to :func:`gte_rag.qdrant.open_store`.

    Raises:
        ConfigError: an invalid option.
        CollectionMismatchError: the collection exists and was built with another model or lexical analyzer.

    Example:
        >>> from gte_rag import GteEncoder, MemoryStore
        >>> memory = MemoryStore(embed_model=GteEncoder("sentence-transformers/all-MiniLM-L6-v2"))  # doctest: +SKIP
        >>> memory.add("I moved to Lisbon last spring.", user_id="ana", session_id="s1").ids  # doctest: +SKIP
        ['...']
        >>> memory.search("where does she live?", user_id="ana", top_k=1)[0].text  # doctest: +SKIP
        'I moved to Lisbon last spring.'
    """

    def __init__(
        self,
        *,
        embed_model: Any,
        location: str | Path | None = None,
        collection: str = DEFAULT_MEMORY_COLLECTION,
        settings: MemorySettings | None = None,
        extractor: Extractor | None = None,
        judge: Judge | None = None,
        reranker: Any | None = None,
        api_key: str | None = None,
        store_options: Mapping[str, Any] | None = None,
    ) -> None:
        from ..kb._kb import check_analyzer, encoder_record

        if settings is not None and not isinstance(settings, MemorySettings):
            raise ConfigError(f"settings must be a MemorySettings, got {type(settings).__name__}")
        for name, fn in (("extractor", extractor), ("judge", judge)):
            if fn is not None and not callable(fn):
                raise ConfigError(f"{name} must be a callable, got {type(fn).__name__}")
        if reranker is not None and not (hasattr(reranker, "score_pairs") or callable(getattr(reranker, "load", None))):
            raise ConfigError(
                f"reranker must be a scorer with score_pairs(pairs) (GteCrossEncoder, GteLLMCrossEncoder, RemoteScorer) "
                f"or a postprocessor of this package (GteReranker, GteLLMReranker, RemoteReranker), "
                f"got {type(reranker).__name__}"
            )
        self.encoder = r.resolve_encoder(embed_model)
        self.settings = settings or MemorySettings()
        self.extractor, self.judge, self.reranker = extractor, judge, reranker
        self.location = location
        record = encoder_record(self.encoder)
        self.layout = CollectionLayout(
            collection, dense_size=self.encoder.dimension,
            sparse_name="sparse" if self.encoder.has_sparse else None,
            sparse_idf=self.encoder.sparse_mode == "lexical", document_vector_name=CONTEXT_VECTOR,
            model_name=str(record["identity"]), payload_indexes=tuple(PAYLOAD_INDEXES.items()), encoder=record,
        )
        self._write_lock = threading.RLock()
        self.store: QdrantStore = open_store(location, self.layout, api_key=api_key, **dict(store_options or {}))
        try:
            check_analyzer(self.store.backend.read_layout(), record, collection=collection, location=location)
            self.store.ensure_collection()
        except BaseException:
            self.store.close()
            raise

    def __repr__(self) -> str:
        return f"MemoryStore(location={self.location!r}, collection={self.layout.collection!r})"

    # ------------------------------------------------------------------ helpers
    def _encode(self, texts: list[str], role: str, sparse: bool = True) -> Any:
        return self.encoder.encode(texts, role=role, return_sparse=sparse and self.encoder.has_sparse)

    def _scroll_all(self, flt: models.Filter) -> list[StoredPoint]:
        out: list[StoredPoint] = []
        offset: str | None = None
        while True:
            page, offset = self.store.scroll(filter=flt, limit=256, offset=offset)
            out.extend(page)
            if offset is None:
                return out

    def _find(self, scope: r.Scope, memory_id: str) -> StoredPoint:
        memory_id = r.canonical_id(memory_id)
        page, _ = self.store.scroll(filter=id_filter(scope, memory_id), limit=1)
        if not page:
            raise MemoryNotFoundError(
                f"no memory {memory_id!r} in scope {scope.fields()}; it never existed, was deleted, or belongs "
                "to another scope (ids are only visible with the scope they were written in)",
                memory_id=memory_id,
            )
        return page[0]

    def _next_turn(self, scope: r.Scope, session: str) -> int:
        """The session's counter (it only grows: ids are never reissued), else one past its highest turn."""
        got = self.store.retrieve([r.counter_id(scope, session)])
        if got:
            return int(got[0].payload.get(r.TURN, 0))
        held = self._scroll_all(scope_filter(replace(scope, session_id=session)))
        return max((t for p in held if isinstance(t := p.payload.get(r.TURN), int)), default=-1) + 1

    def _previous_texts(self, scope: r.Scope, session: str, first: int, n: int) -> list[str]:
        if n <= 0 or first <= 0:
            return []
        ids = [r.turn_id(scope, session, i) for i in range(max(0, first - n), first)]
        by_id = {p.id: p.payload for p in self.store.retrieve(ids)}
        return [r.indexed_from_payload(by_id[i]) for i in ids if i in by_id]

    # ------------------------------------------------------------------ write path
    def add(
        self,
        text_or_messages: str | Sequence[Any],
        *,
        user_id: str,
        session_id: str | None = None,
        agent_id: str | None = None,
        timestamp: Any = None,
        metadata: Mapping[str, Any] | None = None,
        importance: float | None = None,
        supersedes: str | None = None,
    ) -> r.AddResult:
        """Remember a text or a list of messages for a scope.

        Raw turns are stored (one memory per message), unless the store has an ``extractor``.
        A text already in the scope (same content hash, or dense cosine >= ``dedup_threshold``)
        is not stored again: its event says ``"duplicate"`` and names the memory it matched.
        The ``supersedes`` target never counts as a duplicate; with a ``judge``, a near duplicate
        the judge says the text contradicts is stored and superseded (exact matches skip the judge).

        Args:
            text_or_messages: A string, or messages (``{"role", "content", "name"?, "timestamp"?}``
                dicts, or LlamaIndex ``ChatMessage`` objects).
            user_id, session_id, agent_id: The scope.
            timestamp: When it happened (datetime, ISO string or epoch seconds); default now.
                A message's own ``timestamp`` wins.
            metadata: JSON-compatible metadata; scope and internal keys are refused.
            importance: In [0, 1]; default ``settings.default_importance``.
            supersedes: Id of a memory of this user (and agent, if given; any session) that the
                (single) new text replaces: it is hidden from search and kept in :meth:`history`.

        Returns:
            One event per stored or matched text, in order (``.ids``, ``.added``, ``.duplicates``).

        Raises:
            MemoryScopeError: no ``user_id``, or scope keys in ``metadata``.
            MemoryNotFoundError: ``supersedes`` names no memory of this user and agent.
            ConfigError: an empty text or another invalid argument.
        """
        scope = r.Scope(user_id, agent_id=agent_id, session_id=session_id)
        meta = r.check_metadata(metadata)
        weight = r.check_importance(importance)
        when = r.now_utc() if timestamp is None else r.as_datetime(timestamp)
        messages = r.as_messages(text_or_messages, when)
        if supersedes is not None and len(messages) != 1:
            raise ConfigError(f"supersedes= replaces one memory with one text; got {len(messages)} messages")
        with self._write_lock:
            # a correction may come in a later session: the target is looked for across the
            # sessions of the same user and agent (never outside them)
            owner = replace(scope, session_id=None)
            old = None if supersedes is None else self._find(owner, supersedes)
            if old is not None and old.payload.get(r.STATE) != r.ACTIVE:
                raise MemoryStoreError(
                    f"memory {old.id!r} is already superseded by {old.payload.get(r.SUPERSEDED_BY)!r}; supersede that one"
                )
            return self._add_locked(scope, messages, meta, weight, old)

    def _add_locked(
        self, scope: r.Scope, messages: list[r.Message], meta: dict[str, Any], weight: float | None,
        old: StoredPoint | None,
    ) -> r.AddResult:
        settings, stored_at = self.settings, r.now_utc()
        turns = self.extractor is None and scope.session_id is not None
        if self.extractor is not None:
            excerpt = "\n".join(r.indexed_text(m) for m in messages)
            facts = [f.strip() for f in self.extractor(excerpt) if isinstance(f, str) and f.strip()]
            last = messages[-1].timestamp
            messages = [r.Message(f, None, last) for f in facts]
            if not messages:
                return r.AddResult(())
        texts = [r.indexed_text(m) for m in messages]
        hashes = [r.content_hash(t) for t in texts]
        out = self._encode(texts, "document")
        dense = np.asarray(out.dense, dtype=np.float32)
        # exact duplicates already stored in the scope: one scroll over the hashes
        flt = memory_filter(scope)
        if old is not None:  # the memory a correction replaces is never its duplicate
            flt = models.Filter(must=[flt], must_not=[models.HasIdCondition(has_id=[old.id])])
        known = models.Filter(must=[flt, models.FieldCondition(key=r.HASH, match=models.MatchAny(any=sorted(set(hashes))))])
        existing = {p.payload.get(r.HASH): p.id for p in self.store.scroll(filter=known, limit=len(hashes) + 8)[0]}
        near = self._near_duplicates(dense, flt)
        # a near duplicate the judge says the new text contradicts is superseded, not matched
        contradicted = {} if self.judge is None or old is not None else judge_near_duplicates(
            self.judge, [m.content for m in messages], hashes, existing, near, settings.dedup_threshold)
        near = [None if i in contradicted else h for i, h in enumerate(near)]
        forced: dict[str, str] = {}  # added id -> the near duplicate it was judged to contradict
        session = str(scope.session_id)
        first = self._next_turn(scope, session) if turns else 0
        previous = self._previous_texts(scope, session, first, settings.context_turns) if turns else []
        events: list[r.MemoryEvent] = []
        points: list[PointRecord] = []
        kept: list[int] = []
        contexts: list[str] = []
        turn = first
        for i, (m, text, h) in enumerate(zip(messages, texts, hashes)):
            window = (previous + texts[:i])[-settings.context_turns:] if settings.context_turns else []
            match = duplicate_of(i, h, hashes, dense, kept, events, existing, near, settings.dedup_threshold)
            if match is not None:
                events.append(r.MemoryEvent(match[0], m.content, "duplicate", match[1]))
                continue
            mid = r.turn_id(scope, str(scope.session_id), turn) if turns else str(uuid.uuid4())
            payload = {
                **scope.fields(), r.TEXT: m.content, r.SPEAKER: m.speaker, r.TIMESTAMP: r.iso(m.timestamp or stored_at),
                r.CREATED_AT: r.iso(stored_at), r.IMPORTANCE: settings.default_importance if weight is None else weight,
                r.HASH: h, r.METADATA: meta, r.STATE: r.ACTIVE, r.KIND: r.MEMORY_KIND, r.VERSION: 0,
                r.LINEAGE: lineage_of(old.payload, old.id) if old is not None else mid,
            }
            if turns:
                payload[r.TURN] = turn
                turn += 1
            kept.append(i)
            contexts.append("\n".join([*window, text]))
            points.append(PointRecord(mid, dense[i], out.sparse[i] if out.sparse else None, payload=payload))
            events.append(r.MemoryEvent(mid, m.content, "added"))
            forced.update({mid: contradicted[i]} if i in contradicted else {})
        if points:
            ctx_vectors = self._context_vectors(contexts, [dense[i] for i in kept], [texts[i] for i in kept])
            points = [replace(p, document_vector=v) for p, v in zip(points, ctx_vectors)]
            if turns:  # the session's counter moves in the same upsert, under the write lock
                points.append(PointRecord(r.counter_id(scope, session), placeholder(self.layout.dense_size), None,
                                          payload={r.KIND: r.COUNTER_KIND, r.TURN: turn}))
            self.store.upsert(points)
        return r.AddResult(tuple(self._supersede(scope, events, old, stored_at, forced)))

    def _near_duplicates(self, dense: np.ndarray, flt: models.Filter) -> list[SearchHit | None]:
        if self.settings.dedup_threshold is None or len(dense) == 0:
            return [None] * len(dense)
        found = self.store.query_many(list(dense), None, top_k=1, hybrid=HybridConfig(mode="dense"), filter=flt)
        return [hits[0] if hits else None for hits in found]

    def _context_vectors(self, contexts: list[str], dense: list[np.ndarray], texts: list[str]) -> list[np.ndarray]:
        todo = [i for i, (c, t) in enumerate(zip(contexts, texts)) if c != t]
        vectors = list(dense)
        if todo:
            enc = self._encode([contexts[i] for i in todo], "document", sparse=False)
            for i, v in zip(todo, np.asarray(enc.dense, dtype=np.float32)):
                vectors[i] = v
        return vectors

    def _supersede(
        self, scope: r.Scope, events: list[r.MemoryEvent], old: StoredPoint | None, when: _dt.datetime,
        forced: Mapping[str, str],
    ) -> list[r.MemoryEvent]:
        owner = replace(scope, session_id=None)
        out = []
        for e in events:
            targets: list[str] = []
            if e.event == "added":
                if old is not None:
                    targets.append(old.id)
                elif self.judge is not None:
                    targets = list(dict.fromkeys([*filter(None, [forced.get(e.id)]), *self._judged(scope, e, forced.get(e.id))]))
            lineage: str | None = None
            for target in targets:
                self.store.set_payload({r.STATE: r.SUPERSEDED, r.SUPERSEDED_BY: e.id, r.SUPERSEDED_AT: r.iso(when)},
                                       id_filter(owner, target))
                if old is None:  # a judged supersede joins the old memories' lineages into one
                    found = self._find(owner, target)
                    theirs = lineage_of(found.payload, found.id)
                    if lineage is None:
                        lineage = theirs
                        self.store.set_payload({r.LINEAGE: lineage}, id_filter(scope, e.id))
                    elif theirs != lineage:
                        self.store.set_payload({r.LINEAGE: lineage}, lineage_filter(owner, theirs))
            out.append(replace(e, superseded=tuple(targets)) if targets else e)
        return out

    def _judged(self, scope: r.Scope, event: r.MemoryEvent, asked: str | None) -> list[str]:
        assert self.judge is not None
        vec = np.asarray(self._encode([event.text], "query", sparse=False).dense[0], dtype=np.float32)
        plan = build_query_plan(self.layout, dense=vec, sparse=None, top_k=_JUDGE_CANDIDATES + 1,
                                hybrid=HybridConfig(mode="dense"), filter=memory_filter(replace(scope, session_id=None)))
        found = self.store.backend.query(plan)
        return [h.id for h in found if h.id not in (event.id, asked)  # ``asked``: judged already, before dedup
                and self.judge(event.text, str(h.payload.get(r.TEXT, "")))]

    # ------------------------------------------------------------------ read path
    def search(
        self,
        query: str,
        *,
        user_id: str,
        session_id: str | None = None,
        agent_id: str | None = None,
        top_k: int = 10,
        since: Any = None,
        until: Any = None,
        now: Any = None,
        settings: MemorySettings | None = None,
    ) -> list[r.MemoryHit]:
        """The ``top_k`` memories of a scope that best answer ``query``, best first.

        Superseded memories and those whose event time is outside ``[since, until]`` never
        appear. ``now`` is the reference time of the recency decay (default: the current time).
        ``settings`` overrides the store's settings for this call.

        Raises:
            MemoryScopeError: no ``user_id``.
            ConfigError: an empty query, ``top_k`` not a positive int, or a bad time.
        """
        scope = r.Scope(user_id, agent_id=agent_id, session_id=session_id)
        cfg = settings or self.settings
        if not isinstance(cfg, MemorySettings):
            raise ConfigError(f"settings must be a MemorySettings, got {type(cfg).__name__}")
        if not isinstance(query, str) or not query.strip():
            raise ConfigError(f"query must be a non-empty string, got {query!r}")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0:
            raise ConfigError(f"top_k must be a positive int, got {top_k!r}")
        lo = None if since is None else r.as_datetime(since, "since")
        hi = None if until is None else r.as_datetime(until, "until")
        if lo is not None and hi is not None and lo > hi:
            raise ConfigError(f"since ({r.iso(lo)}) is after until ({r.iso(hi)}); swap them")
        ref = r.now_utc() if now is None else r.as_datetime(now, "now")
        out = self._encode([query], "query")
        wide = cfg.neighbour_weight > 0 or self.reranker is not None
        limit = max(cfg.candidates, 3 * top_k) if wide else top_k
        plan = search_plan(self.layout, cfg, dense=np.asarray(out.dense[0], dtype=np.float32).tolist(),
                           sparse=out.sparse[0] if out.sparse else None, flt=memory_filter(scope, since=lo, until=hi),
                           limit=limit, now=ref)
        hits = [h for h in self.store.backend.query(plan) if scope.sees(h.payload)]
        ranked = rescore_with_neighbours(hits, cfg.neighbour_weight)
        if self.reranker is not None:
            # a postprocessor of this package hands over its core scorer (loaded on first use)
            scorer = self.reranker if hasattr(self.reranker, "score_pairs") else self.reranker.load()
            scores = scorer.score_pairs([(query, str(h.payload.get(r.TEXT, ""))) for h in ranked])
            ranked = sorted((SearchHit(h.id, float(s), h.payload) for h, s in zip(ranked, scores)),
                            key=lambda h: (-h.score, h.id))
        return self._with_context(scope, ranked[:top_k], cfg.neighbours)

    def _with_context(self, scope: r.Scope, hits: list[SearchHit], window: int) -> list[r.MemoryHit]:
        wanted: dict[str, tuple[int, int]] = {}
        for k, h in enumerate(hits):
            turn, session = h.payload.get(r.TURN), h.payload.get("session_id")
            if window <= 0 or session is None or not isinstance(turn, int):
                continue
            owner = r.Scope(str(h.payload["user_id"]), agent_id=h.payload.get("agent_id"), session_id=None)
            for j in range(max(0, turn - window), turn + window + 1):
                if j != turn:
                    wanted.setdefault(r.turn_id(owner, str(session), j), (k, j))
        found = {p.id: p.payload for p in self.store.retrieve(list(wanted))} if wanted else {}
        results = []
        for k, h in enumerate(hits):
            hit = r.MemoryHit(**vars(r.MemoryRecord.from_payload(h.id, h.payload)), score=float(h.score))
            near = [(j, pid) for pid, (owner, j) in wanted.items() if owner == k and pid in found]
            hit.context = [
                r.MemoryRecord.from_payload(pid, found[pid]) for j, pid in sorted(near)
                if scope.sees(found[pid]) and found[pid].get(r.STATE) == r.ACTIVE and found[pid].get(r.KIND) == r.MEMORY_KIND
            ]
            results.append(hit)
        return results

    # ------------------------------------------------------------------ by id
    def get(self, memory_id: str, *, user_id: str, agent_id: str | None = None,
            session_id: str | None = None) -> r.MemoryRecord:
        """The memory ``memory_id`` of this scope (active or superseded).

        Raises:
            MemoryNotFoundError: no such memory in this scope (whether it exists elsewhere is not said).
        """
        scope = r.Scope(user_id, agent_id=agent_id, session_id=session_id)
        point = self._find(scope, memory_id)
        return r.MemoryRecord.from_payload(point.id, point.payload)

    def update(
        self,
        memory_id: str,
        text: str | None = None,
        *,
        user_id: str,
        agent_id: str | None = None,
        session_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        importance: float | None = None,
        timestamp: Any = None,
    ) -> r.MemoryRecord:
        """Change a memory in place (same id); the previous version is kept in :meth:`history`.

        Raises:
            MemoryNotFoundError: no such memory in this scope.
            MemoryStoreError: the memory is superseded (update the one that replaced it).
        """
        scope = r.Scope(user_id, agent_id=agent_id, session_id=session_id)
        meta = None if metadata is None else r.check_metadata(metadata)
        weight = r.check_importance(importance)
        when = None if timestamp is None else r.as_datetime(timestamp)
        if text is not None and (not isinstance(text, str) or not text.strip()):
            raise ConfigError(f"text must be a non-empty string or None, got {text!r}")
        with self._write_lock:
            point = self._find(scope, memory_id)
            if point.payload.get(r.STATE) != r.ACTIVE:
                raise MemoryStoreError(
                    f"memory {point.id!r} is superseded by {point.payload.get(r.SUPERSEDED_BY)!r}; update that one"
                )
            now = r.now_utc()
            old = dict(point.payload)
            version = int(old.get(r.VERSION, 0))
            copy = {**old, r.KIND: r.HISTORY_KIND, r.STATE: r.SUPERSEDED, r.MEMORY_ID: point.id, r.SUPERSEDED_AT: r.iso(now)}
            self.store.upsert([PointRecord(r.history_id(point.id, version), placeholder(self.layout.dense_size), None, payload=copy)])
            new = {**old, r.VERSION: version + 1, r.CREATED_AT: r.iso(now)}
            if meta is not None:
                new[r.METADATA] = meta
            if weight is not None:
                new[r.IMPORTANCE] = weight
            if when is not None:
                new[r.TIMESTAMP] = r.iso(when)
            if text is None:
                self.store.set_payload(new, id_filter(scope, point.id))
            else:
                new[r.TEXT] = text.strip()
                indexed = r.indexed_text(r.Message(text.strip(), old.get(r.SPEAKER)))
                new[r.HASH] = r.content_hash(indexed)
                out = self._encode([indexed], "document")
                turn, session = old.get(r.TURN), old.get("session_id")
                previous = (self._previous_texts(r.Scope(scope.user_id, agent_id=old.get("agent_id")), str(session),
                                                 turn, self.settings.context_turns)
                            if isinstance(turn, int) and session is not None else [])
                dense = np.asarray(out.dense[0], dtype=np.float32)
                ctx = self._context_vectors(["\n".join([*previous, indexed])], [dense], [indexed])[0]
                self.store.upsert([PointRecord(point.id, dense, out.sparse[0] if out.sparse else None, payload=new,
                                               document_vector=ctx)])
            return r.MemoryRecord.from_payload(point.id, new)

    def delete(self, memory_id: str, *, user_id: str, agent_id: str | None = None,
               session_id: str | None = None) -> None:
        """Delete a memory of this scope and its stored older versions.

        The memories it had superseded become active again (searchable, ``superseded_by`` cleared):
        deleting a correction restores what it corrected.

        Raises:
            MemoryNotFoundError: no such memory in this scope.
        """
        scope = r.Scope(user_id, agent_id=agent_id, session_id=session_id)
        with self._write_lock:
            point = self._find(scope, memory_id)
            self.store.delete(id_filter(scope, point.id, with_history=True))
            # what it had superseded is true again: active, searchable, no dangling link
            self.store.set_payload({r.STATE: r.ACTIVE, r.SUPERSEDED_BY: None, r.SUPERSEDED_AT: None},
                                   successor_filter(r.Scope(str(point.payload["user_id"])), point.id))

    def forget(self, *, user_id: str, agent_id: str | None = None, session_id: str | None = None) -> int:
        """Delete every memory of a scope (history included); returns how many points went."""
        scope = r.Scope(user_id, agent_id=agent_id, session_id=session_id)
        flt = scope_filter(scope)
        with self._write_lock:
            n = self.store.count(flt)
            if n:
                self.store.delete(flt)
        return n

    def history(self, memory_id: str, *, user_id: str, agent_id: str | None = None,
                session_id: str | None = None) -> list[r.MemoryRecord]:
        """Every version of a memory and the memories it superseded or was superseded by, oldest first.

        Raises:
            MemoryNotFoundError: no such memory in this scope.
        """
        scope = r.Scope(user_id, agent_id=agent_id, session_id=session_id)
        point = self._find(scope, memory_id)
        found = self._scroll_all(lineage_filter(scope, lineage_of(point.payload, point.id)))
        records = [r.MemoryRecord.from_payload(p.id, p.payload) for p in found]
        return sorted(records, key=lambda m: (m.created_at, m.version, m.id))

    def count(self, *, user_id: str, agent_id: str | None = None, session_id: str | None = None) -> int:
        """Active memories in a scope."""
        return self.store.count(memory_filter(r.Scope(user_id, agent_id=agent_id, session_id=session_id)))

    # ------------------------------------------------------------------ async twins
    async def aadd(self, text_or_messages: str | Sequence[Any], **kwargs: Any) -> r.AddResult:
        """Async twin of :meth:`add` (encoding and the engine calls run in a worker thread)."""
        return await asyncio.to_thread(lambda: self.add(text_or_messages, **kwargs))

    async def asearch(self, query: str, **kwargs: Any) -> list[r.MemoryHit]:
        """Async twin of :meth:`search`."""
        return await asyncio.to_thread(lambda: self.search(query, **kwargs))

    async def aget(self, memory_id: str, **kwargs: Any) -> r.MemoryRecord:
        """Async twin of :meth:`get`."""
        return await asyncio.to_thread(lambda: self.get(memory_id, **kwargs))

    async def aupdate(self, memory_id: str, text: str | None = None, **kwargs: Any) -> r.MemoryRecord:
        """Async twin of :meth:`update`."""
        return await asyncio.to_thread(lambda: self.update(memory_id, text, **kwargs))

    async def adelete(self, memory_id: str, **kwargs: Any) -> None:
        """Async twin of :meth:`delete`."""
        await asyncio.to_thread(lambda: self.delete(memory_id, **kwargs))

    async def aforget(self, **kwargs: Any) -> int:
        """Async twin of :meth:`forget`."""
        return await asyncio.to_thread(lambda: self.forget(**kwargs))

    async def ahistory(self, memory_id: str, **kwargs: Any) -> list[r.MemoryRecord]:
        """Async twin of :meth:`history`."""
        return await asyncio.to_thread(lambda: self.history(memory_id, **kwargs))

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Release the store (a temporary Edge directory is deleted). Idempotent."""
        self.store.close()

    async def aclose(self) -> None:
        """Async twin of :meth:`close`."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    async def __aenter__(self) -> MemoryStore:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

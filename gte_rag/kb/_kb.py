"""KnowledgeBase: encoder + Qdrant store + hybrid retrieval, configured by a directory or a URL.

The knowledge base is the core every entry point goes through: its :meth:`KnowledgeBase.write`
/ :meth:`KnowledgeBase.add_documents` are the one write path (:class:`Ingestor`), and
:meth:`KnowledgeBase.search` / :meth:`KnowledgeBase.asearch` the one query path (alpha,
filters, fusion and id restriction are resolved there, once per call). The LlamaIndex
adapters only convert their types to these calls.

The collection records the model that wrote it (its identity, not its path) and the encoder
settings; ``KnowledgeBase(DIR)`` without a model reopens it with the recorded model.

Long documents: a new collection has the long-document layout (chunk points with dense +
sparse vectors, and per long document one or more document points with a MAX_SIM
multivector of its chunk vectors and a document vector). A document longer than one window
of the :class:`~gte_rag.longdoc.LongDocEncoder` is late-chunked by it; shorter ones are
chunked as before. The resolved long-document settings are recorded with the collection.
A collection created before (no multivector) keeps working exactly as it did: every
document, long or not, is chunked by the token chunker; asking it for long documents
explicitly (``long_docs="late"``...) fails with both layouts named. Document-level search:
:meth:`KnowledgeBase.search_documents` (grouped chunks, MaxSim, two-stage) and
:meth:`KnowledgeBase.neighbours`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from qdrant_client import models

from .._runtime import warn_external
from .._types import TextEncoder, can_tokenize
from ..embed import DEFAULT_MODEL, Analyzer, GteEncoder, legacy_token_analyzer
from ..errors import CollectionMismatchError, ConfigError, ModelLoadError, StoreError
from ..models import checkpoint_identity, resolve_checkpoint
from ..qdrant import (
    DOCUMENT_KIND,
    KIND_FIELD,
    MAX_MULTIVECTOR_FLOATS,
    AsyncEdgeBackend,
    AsyncQdrantStore,
    CollectionLayout,
    DocumentHit,
    HybridConfig,
    QdrantStore,
    SearchHit,
    StorageConfig,
    StoredPoint,
    node_point_id,
    open_async_store,
    open_store,
    point_id,
)
from ..qdrant._layout import PayloadIndexType
from ._chunking import TokenChunker
from ._files import Source, read_source
from ._storage import akeep_indexed, keep_indexed, resolve_storage, warn_if_unindexed
from ._ingest import (
    CHUNK_COUNT_FIELD,
    DEFAULT_INGEST_BATCH,
    SOURCE_FIELD,
    ChunkRecord,
    IngestStats,
    Ingestor,
    as_source_documents,
)

if TYPE_CHECKING:
    from ..longdoc import LongDocSource

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_COLLECTION", "DocumentStrategy", "KnowledgeBase", "LongDocsSetting", "check_analyzer", "encoder_record",
    "recorded_analyzer",
]

DocumentStrategy = Literal["groups", "maxsim", "two_stage"]
"""How :meth:`KnowledgeBase.search_documents` finds documents (see there)."""
LongDocsSetting = Literal["truncate", "chunks", "late", "default", "off"]
"""``KnowledgeBase(long_docs=...)``: a :data:`~gte_rag.longdoc.LongDocMode`, or ``"off"``."""
_LONG_DOCS = get_args(LongDocsSetting)
MULTIVECTOR_FLOATS_OPTION = "max_multivector_floats"
"""Key of ``long_doc_options`` (and of the recorded settings) holding the multivector cap."""
LONG_DOCS_RECORD = "long_docs"
"""Key of the encoder record holding the resolved long-document settings."""

DEFAULT_COLLECTION = "gte_rag"
DEFAULT_CHUNK_TOKENS = 512
DEFAULT_PAYLOAD_INDEXES: tuple[tuple[str, PayloadIndexType], ...] = (
    ("doc_id", "keyword"), ("ref_doc_id", "keyword"), ("chunk_index", "integer"), (SOURCE_FIELD, "keyword"),
)


class _ThreadedBackend(AsyncEdgeBackend):
    """Async view of a sync backend (Edge, or qdrant-client local mode): calls run in a thread."""

    def __init__(self, sync: Any) -> None:
        super().__init__(sync)
        self.engine = getattr(sync, "engine", "edge")


def encoder_record(encoder: TextEncoder) -> dict[str, Any]:
    """What a collection records about the encoder that writes it (JSON values).

    ``model`` is how to load it again: the hub id for models asked for by name, the
    absolute directory otherwise; ``identity`` is what the collection is checked against.
    A remote encoder (:class:`gte_rag.remote.RemoteEncoder`) gives its own record
    (``remote:<protocol>:<model>``; never its URL's credentials or API key).
    """
    if not isinstance(encoder, GteEncoder):
        if not hasattr(encoder, "encoder_record"):
            raise ConfigError(f"encoder must be a gte_rag GteEncoder or RemoteEncoder, got {type(encoder).__name__}")
        remote: dict[str, Any] = encoder.encoder_record()
        return remote
    name = encoder.checkpoint.name
    analyzer: Analyzer | None = getattr(encoder, "analyzer", None)
    ref = str(Path(name).expanduser().resolve()) if Path(name).expanduser().is_dir() else name
    return {
        "model": ref,
        "identity": checkpoint_identity(encoder.checkpoint),
        "hf_id": encoder.spec.hf_id,
        "dimension": encoder.dimension,
        "pooling": encoder.spec.pooling.value,
        "max_length": encoder.max_length,
        "query_instruction": getattr(encoder, "query_instruction", None),
        "query_prefix": encoder.query_prefix,
        "document_prefix": encoder.document_prefix,
        "sparse": encoder.sparse_mode,
        "precision": encoder.precision.name,
        **({"analyzer": analyzer.record()} if analyzer is not None else {}),
    }


def recorded_analyzer(layout: CollectionLayout | None) -> dict[str, Any] | None:
    """The analyzer a stored collection's lexical vectors were made with (``None``: not lexical).

    A lexical collection recorded before analyzers existed (sparse vector with IDF, no
    ``analyzer`` in its record) was built with the model's word pieces: that is what it gets.
    """
    if layout is None or not layout.sparse_idf:
        return None
    found = layout.encoder_settings.get("analyzer")
    return dict(found) if isinstance(found, Mapping) else legacy_token_analyzer().record()


def check_analyzer(
    found: CollectionLayout | None, record: Mapping[str, Any], *, collection: str, location: Any
) -> None:
    """Refuse an encoder (its :func:`encoder_record`) whose lexical analyzer differs from the
    stored collection's (``found``, ``None`` for a new one): its queries would not match the stored terms.

    Shared by every component that writes a collection through an encoder (the knowledge base,
    the memory store).

    Raises:
        CollectionMismatchError: both analyzers and the fix are named.
    """
    expected = recorded_analyzer(found)
    if found is None or expected is None or record.get("sparse") != "lexical":
        return  # a new collection, or not lexical (a learned/none mismatch fails on the layout)
    stored_identity = found.encoder_settings.get("identity")
    if stored_identity and stored_identity != record.get("identity"):
        return  # another model: the collection check refuses it, naming both models
    given = record.get("analyzer")
    if given is not None and Analyzer.parse(given) == Analyzer.parse(expected):
        return
    want = Analyzer.parse(expected)
    raise CollectionMismatchError(
        f"collection {collection!r} at {location!r} stores lexical sparse vectors made "
        f"with analyzer {want.describe()!r} ({expected}), but the encoder analyses with "
        f"{Analyzer.parse(given).describe() if given else None!r} ({given}): its queries would not match the "
        "stored terms. Fix: leave the analyzer out (the recorded one is used), pass "
        f"encoder_options={{'analyzer': {want.describe()!r}}} (or, passing an encoder, create it with "
        f"GteEncoder(..., analyzer={want.describe()!r}); in LlamaIndex GteEmbedding(..., "
        f"analyzer={want.describe()!r})), or store the documents in a new collection "
        "(collection=...)",
        collection=collection, layout_expected=expected, layout_found=given,
    )


def _merge_recorded(recorded: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """Encoder options: the recorded ones, then the caller's on top.

    The recorded analyzer is dropped when the caller turns lexical sparse output off
    (``sparse="none"`` or ``"learned"``): it would be refused without lexical output.
    """
    merged = {**recorded, **options}
    if "analyzer" not in options and merged.get("sparse") in ("none", "learned"):
        merged.pop("analyzer", None)
    return merged


def _validate_int(name: str, value: Any, *, minimum: int, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}{' or None' if allow_none else ''}, got {value!r}")


@dataclass(frozen=True)
class _Prepared:
    """One query, ready for the store: vectors, config, filter, result count."""

    dense: Any
    sparse: Any
    top_k: int
    hybrid: HybridConfig
    filter: models.Filter | None


class KnowledgeBase:
    """A ready knowledge base: documents in, hybrid search results out.

    Args:
        location: ``None`` (Qdrant Edge in a temporary directory), a directory (Edge,
            persistent), ``":memory:"`` (qdrant-client local mode) or an ``http(s)://`` URL
            (a Qdrant server or cluster).
        model: Embedding model name or checkpoint directory. ``None``: the model the
            collection was built with (recorded in it), or the default model for a new one.
        collection: Collection name.
        encoder: A ready :class:`GteEncoder` to share (instead of ``model``), or any
            :class:`~gte_rag.embed.TextEncoder`, such as :class:`gte_rag.remote.RemoteEncoder`.
            A remote encoder that tokenizes (TEI ``/tokenize``, or ``tokenizer=`` given) chunks
            and stores long documents as a local one does; one that does not needs
            ``chunk_size=0``. Reopening a collection written through a service rebuilds its
            encoder from the record (URL, options, the API key's environment variable; never the
            key); ``encoder_options`` override the record (``{"url": ..., "api_key": ...}``).
        hybrid: Default query mode, fusion and weights.
        chunk_size: Tokens per chunk; ``None``: the model's window (after its special
            tokens and document prompt), at most 512. ``0`` stores each document as one point.
        chunk_overlap: Tokens shared by consecutive chunks; ``None``: one eighth of the chunk.
        api_key: Server API key.
        store_options: Passed to :func:`gte_rag.qdrant.open_store` (``prefer_grpc``, and for
            a URL only ``shard_number``, ``replication_factor``, ``write_consistency_factor``,
            ``quantization_config``...).
        encoder_options: Passed to :class:`GteEncoder` (``device``, ``dtype``, ``dimension``...).
        ingest_batch_size: Chunks encoded and upserted per step.
        long_docs: How documents longer than one window are stored. ``None`` (default):
            follow the collection: a new one gets the long-document layout and the mode
            recorded in it (``"default"`` for a new one, see
            :data:`~gte_rag.longdoc.DEFAULT_LONG_DOC`); an existing one without a
            multivector keeps chunking every document with the token chunker. A mode
            (``"default"``, ``"late"``, ``"chunks"``, ``"truncate"``) asks for long
            documents explicitly: a collection without the long-document vectors is then
            refused (:class:`CollectionMismatchError`). ``"off"``: no long-document path (a
            new collection is created without the long-document vectors).
        long_doc_options: Passed to :class:`~gte_rag.longdoc.LongDocEncoder`
            (``chunk_tokens``, ``window_tokens``, ``window_overlap``, ``span_pooling``,
            ``context_mix``), plus ``max_multivector_floats``: the most floats in one
            document point (Qdrant's cap, 1,048,576, by default; more chunk vectors make
            several parts). Recorded with a new collection and reused on reopening.
        storage: Memory, disk and index settings of the vectors
            (:class:`~gte_rag.qdrant.StorageConfig`: int8 quantization with rescoring,
            on-disk originals, float16, HNSW ``m`` / ``ef_construct`` / search ``ef``, the
            automatic index build), the same on Qdrant Edge and on servers. Recorded with a
            new collection; ``None`` reopens with the recorded settings. Server-only settings
            (``shard_number``, ``replication_factor``, ``write_consistency_factor``) go in
            ``store_options`` with a URL.

    Raises:
        ConfigError: an option is invalid (checked before anything is opened or created).
        CollectionMismatchError: the collection exists and was built with another model
            or geometry (its data is left untouched).
        ModelLoadError: ``model`` is not given and the recorded model is not on this machine.

    Example:
        >>> from gte_rag import KnowledgeBase
        >>> with KnowledgeBase() as kb:  # doctest: +SKIP
        ...     kb.add_texts(["Plants make oxygen.", "Rust is a systems language."])
        ...     print(kb.query("photosynthesis", top_k=1)[0].payload["text"])
        Plants make oxygen.
    """

    def __init__(
        self,
        location: str | Path | None = None,
        *,
        model: str | Path | None = None,
        collection: str = DEFAULT_COLLECTION,
        encoder: TextEncoder | None = None,
        hybrid: HybridConfig | None = None,
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
        api_key: str | None = None,
        store_options: Mapping[str, Any] | None = None,
        encoder_options: Mapping[str, Any] | None = None,
        ingest_batch_size: int = DEFAULT_INGEST_BATCH,
        long_docs: LongDocsSetting | None = None,
        long_doc_options: Mapping[str, Any] | None = None,
        storage: StorageConfig | None = None,
    ) -> None:
        # -- every option is checked before anything is opened, loaded or created
        if storage is not None and not isinstance(storage, StorageConfig):
            raise ConfigError(f"storage must be a gte_rag StorageConfig, got {type(storage).__name__}")
        if long_docs is not None and long_docs not in _LONG_DOCS:
            raise ConfigError(f"long_docs={long_docs!r} is not valid; choose None or one of {list(_LONG_DOCS)}")
        if long_doc_options is not None and not isinstance(long_doc_options, Mapping):
            raise ConfigError(f"long_doc_options must be a dict, got {type(long_doc_options).__name__}")
        if long_docs == "off" and long_doc_options:
            raise ConfigError("long_doc_options are given but long_docs='off'; drop one of them")
        cap = dict(long_doc_options or {}).get(MULTIVECTOR_FLOATS_OPTION)
        _validate_int(MULTIVECTOR_FLOATS_OPTION, cap, minimum=1)
        if encoder is not None and (encoder_options or model is not None):
            raise ConfigError("pass either encoder= or model=/encoder_options=, not both")
        if encoder is not None and not isinstance(encoder, GteEncoder) and not all(
            hasattr(encoder, a) for a in ("encode", "dimension", "has_sparse", "sparse_mode", "model_name")
        ):
            raise ConfigError(
                f"encoder must be a gte_rag GteEncoder or RemoteEncoder, got {type(encoder).__name__}"
            )
        if hybrid is not None and not isinstance(hybrid, HybridConfig):
            raise ConfigError(f"hybrid must be a gte_rag HybridConfig, got {type(hybrid).__name__}")
        _validate_int("chunk_size", chunk_size, minimum=0)
        _validate_int("chunk_overlap", chunk_overlap, minimum=0)
        _validate_int("ingest_batch_size", ingest_batch_size, minimum=1, allow_none=False)
        # validates the collection name; the store is opened with it until the encoder is known
        probe = CollectionLayout(collection, dense_size=1)
        self.hybrid = hybrid or HybridConfig()
        self.location = location
        options = dict(store_options or {})
        self._store_args = (location, api_key, options)
        self._lock = threading.Lock()
        self._precision_checked = False
        self._async_store: AsyncQdrantStore | None = None
        self._closed = False

        # -- the store (no I/O yet); its recorded layout decides the model when none is given
        self.store: QdrantStore = open_store(location, probe, api_key=api_key, **options)
        try:
            self._recorded: CollectionLayout | None = self.store.backend.read_layout()
            self.encoder = encoder or self._build_encoder(model, dict(encoder_options or {}))
            if not self.encoder.has_sparse and self.hybrid.mode != "dense":
                raise ConfigError(
                    f"the encoder has no sparse output, so mode={self.hybrid.mode!r} cannot work; "
                    "use HybridConfig(mode='dense')"
                )
            self.chunker = self._make_chunker(chunk_size, chunk_overlap)
            record = encoder_record(self.encoder)
            self._check_analyzer(record)
            layout = CollectionLayout(
                collection,
                dense_size=self.encoder.dimension,
                sparse_name="sparse" if self.encoder.has_sparse else None,
                sparse_idf=self.encoder.sparse_mode == "lexical",
                model_name=self._model_name_for(record),
                payload_indexes=DEFAULT_PAYLOAD_INDEXES,
            )
            layout = self._setup_long_docs(layout, long_docs, dict(long_doc_options or {}), str(record["identity"]))
            if self.long_doc is not None:
                record[LONG_DOCS_RECORD] = {**self.long_doc.settings(), MULTIVECTOR_FLOATS_OPTION: self.multivector_floats}
            from dataclasses import replace

            self.storage = resolve_storage(storage, self._recorded, location)
            self.layout = replace(layout, encoder=record, storage=self.storage)
            # the backend was opened for the probe layout: bind it to the real one
            self.store.backend.layout = self.layout
            self.store.ensure_collection()
            warn_if_unindexed(self.store, self.storage)
        except BaseException:
            self.store.close()  # release the shard (and any temporary directory)
            raise
        self.ingest_batch_size = ingest_batch_size

    # ------------------------------------------------------------------ construction
    _RECORDED_OPTIONS = ("dimension", "max_length", "query_instruction", "sparse", "analyzer")

    def _build_encoder(self, model: str | Path | None, options: dict[str, Any]) -> TextEncoder:
        found = self._recorded
        recorded = found.encoder_settings if found is not None else {}
        if model is None and str(recorded.get("model", "")).startswith("remote:"):
            from ..remote import RemoteEncoder  # a collection written through a service: connect again

            return RemoteEncoder.from_record(recorded, **options)
        # the recorded settings (dimension, prompts...) apply unless overridden
        recorded_options = {k: recorded[k] for k in self._RECORDED_OPTIONS if k in recorded}
        analyzer = recorded_analyzer(found)
        if analyzer is not None:
            # a query is analysed as the documents were (a collection from before analyzers: word pieces)
            recorded_options["analyzer"] = analyzer
        if model is not None:
            # the model the collection was built with, named again (maybe from another directory)
            local_only = bool(options.get("local_files_only", False))
            if recorded.get("identity") and checkpoint_identity(
                resolve_checkpoint(model, local_files_only=local_only)
            ) == recorded["identity"]:
                options = _merge_recorded(recorded_options, options)
            elif not recorded.get("identity") and analyzer is not None:
                options = _merge_recorded({"analyzer": analyzer}, options)  # recorded by name only
            return GteEncoder(model, **options)
        if recorded.get("model"):
            ref = str(recorded["model"])
            options = _merge_recorded(recorded_options, options)
        elif found is not None and found.model_name and not str(found.model_name).startswith("sha256:"):
            ref = str(found.model_name)  # a collection from before encoder settings were recorded
            if analyzer is not None:
                options = _merge_recorded({"analyzer": analyzer}, options)
        else:
            return GteEncoder(DEFAULT_MODEL, **options)
        try:
            return GteEncoder(ref, **options)
        except ModelLoadError as exc:
            raise ModelLoadError(
                f"collection {self.store.layout.collection!r} at {self.location!r} was built with model {ref!r} "
                f"(identity {recorded.get('identity', ref)!r}), which cannot be loaded on this machine: {exc} "
                "Fix: pass model= (--model on the command line; a copy of that checkpoint in another "
                "directory is recognised by its fingerprint), or fetch the model.",
                model_name=ref,
            ) from exc

    def _check_analyzer(self, record: Mapping[str, Any]) -> None:
        """Refuse an encoder whose lexical analyzer differs from the stored collection's."""
        check_analyzer(self._recorded, record, collection=self.store.layout.collection, location=self.location)

    def _model_name_for(self, record: Mapping[str, Any]) -> str:
        """The identity to check the collection against.

        A collection written before encoder settings were recorded names its model by hub
        id or by checkpoint path; it is accepted when this encoder was loaded from that name.
        """
        found = self._recorded
        if found is not None and not found.encoder and found.model_name:
            legacy = str(found.model_name)
            spec = getattr(self.encoder, "spec", None)
            loaded = {getattr(spec, "hf_id", None), self.encoder.model_name, str(record.get("model"))}
            if legacy in loaded:
                logger.info("Collection %r records its model by name (%s); accepted for %s",
                            found.collection, legacy, record["identity"])
                return legacy
        return str(record["identity"])

    def _setup_long_docs(
        self, layout: CollectionLayout, long_docs: LongDocsSetting | None, options: dict[str, Any], identity: str
    ) -> CollectionLayout:
        """Decide the long-document path and layout (sets ``long_doc`` and ``multivector_floats``)."""
        found = self._recorded
        recorded = found.encoder_settings.get(LONG_DOCS_RECORD) if found is not None else None
        recorded = dict(recorded) if isinstance(recorded, Mapping) else {}
        if found is not None and found.encoder_settings.get("identity") != identity:
            # another model: its window differs; the collection check refuses it anyway (model_name)
            recorded = {"mode": recorded["mode"]} if "mode" in recorded else {}
        self.long_doc: Any = None
        self.multivector_floats = MAX_MULTIVECTOR_FLOATS
        if not can_tokenize(self.encoder):
            # a remote encoder without a tokenizer: documents are stored whole
            if long_docs not in (None, "off"):
                raise ConfigError(
                    f"long_docs={long_docs!r} needs an encoder that tokenizes (a GteEncoder, or a RemoteEncoder "
                    f"over TEI or given tokenizer=); {type(self.encoder).__name__} has none. Use long_docs='off' or None"
                )
            long_docs = "off"
        if found is None:
            enabled = long_docs != "off"
        elif long_docs is None or long_docs == "off":
            enabled = long_docs is None and found.stores_long_documents
        elif not found.stores_long_documents:
            wanted = layout.long_documents()
            raise CollectionMismatchError(
                f"long_docs={long_docs!r} needs a collection with the long-document vectors (multivector "
                f"{wanted.multivector_name!r}, document vector {wanted.document_vector_name!r}), but collection "
                f"{layout.collection!r} at {self.location!r} was created without them (multivector "
                f"{found.multivector_name!r}, document vector {found.document_vector_name!r}). Fix: leave "
                "long_docs=None (every document is then chunked as before), or store long documents in a new "
                "collection (collection=...), or recreate this one and re-ingest.",
                collection=layout.collection, layout_expected=wanted, layout_found=found,
            )
        else:
            enabled = True
        if found is not None and found.stores_long_documents:
            assert found.multivector_name is not None and found.document_vector_name is not None
            layout = layout.long_documents(
                multivector_name=found.multivector_name, document_vector_name=found.document_vector_name
            )
        elif found is None and enabled:
            layout = layout.long_documents()
        if not enabled:
            return layout
        from ..longdoc import LongDocEncoder  # lazy: the long-document encoder loads on first use

        if long_docs is None and recorded:
            settings = {**recorded, **options}  # the collection's settings, unless overridden
        else:
            settings = {"mode": "default" if long_docs is None else long_docs, **options}
        cap = settings.pop(MULTIVECTOR_FLOATS_OPTION, None)
        self.multivector_floats = MAX_MULTIVECTOR_FLOATS if cap is None else int(cap)
        try:
            self.long_doc = LongDocEncoder(cast("LongDocSource", self.encoder), **settings)
        except TypeError as exc:
            raise ConfigError(
                f"long_doc_options {sorted(options)} are not all LongDocEncoder options: {exc}. Use chunk_tokens, "
                f"window_tokens, window_overlap, span_pooling, context_mix or {MULTIVECTOR_FLOATS_OPTION}"
            ) from exc
        stored = {k: v for k, v in recorded.items() if k != MULTIVECTOR_FLOATS_OPTION}
        if found is not None and found.encoder_settings.get("identity") == identity and len(stored) > 1:
            now = self.long_doc.settings()
            if now != stored:
                changed = sorted(k for k in set(now) | set(stored) if now.get(k) != stored.get(k))
                raise ConfigError(
                    f"collection {layout.collection!r} at {self.location!r} stores long documents with "
                    f"{ {k: stored.get(k) for k in changed} }, not {({k: now.get(k) for k in changed})}: its chunks "
                    "and document points would mix two encodings. Fix: leave long_docs and long_doc_options out "
                    "to use the recorded settings, or store the documents in a new collection (collection=...)"
                )
        return layout

    def _make_chunker(self, chunk_size: int | None, chunk_overlap: int | None) -> TokenChunker | None:
        if chunk_size == 0:
            return None
        if not can_tokenize(self.encoder):
            raise ConfigError(
                f"{type(self.encoder).__name__} {self.encoder.model_name!r} has no tokenizer here to chunk by tokens; "
                "pass chunk_size=0 (each document one point: split long texts before adding them), or give the "
                "RemoteEncoder tokenizer= (the served model's tokenizer directory or hub id)"
            )
        room = self.encoder.document_token_budget
        size = min(room, DEFAULT_CHUNK_TOKENS) if chunk_size is None else chunk_size
        if size > room:
            raise ConfigError(
                f"chunk_size={size} exceeds the {room} tokens {self.encoder.model_name} embeds per chunk "
                f"(max_length {self.encoder.max_length} less its special tokens and document prompt); "
                f"use a value <= {room}"
            )
        overlap = size // 8 if chunk_overlap is None else chunk_overlap
        return TokenChunker(self.encoder, chunk_size=size, chunk_overlap=overlap)

    @property
    def async_store(self) -> AsyncQdrantStore:
        """The async twin of :attr:`store` (same data), opened on first use; closed with the knowledge base."""
        with self._lock:
            if self._closed:
                raise StoreError(f"knowledge base {self.location!r} is closed", collection=self.layout.collection)
            if self._async_store is None:
                location, api_key, options = self._store_args
                if isinstance(location, str) and location.startswith(("http://", "https://")):
                    self._async_store = open_async_store(location, self.layout, api_key=api_key, **options)
                else:
                    # embedded engines: share the one open shard / local client through a thread
                    self._async_store = AsyncQdrantStore(backend=_ThreadedBackend(self.store.backend))
            return self._async_store

    def _check_precision(self) -> None:
        """Warn once when this encoder writes with another precision than the collection's."""
        if self._precision_checked:
            return
        self._precision_checked = True
        # a collection that did not exist at open was created with this encoder's precision
        recorded = self._recorded.encoder_settings.get("precision") if self._recorded is not None else None
        precision = getattr(getattr(self.encoder, "precision", None), "name", "remote")
        if recorded and recorded != precision:
            warn_external(
                f"collection {self.layout.collection!r} was written with precision {recorded!r}; this encoder "
                f"runs {precision!r}, so new vectors differ slightly from the stored ones. "
                f"Pass encoder_options={{'dtype': {recorded!r}}} to match"
            )

    def _ingestor(self, *, for_async: bool = False) -> Ingestor:
        chunker = self.chunker
        signature = "whole" if chunker is None else f"tokens:{chunker.chunk_size}:{chunker.chunk_overlap}"
        if self.long_doc is not None:
            settings = json.dumps(self.long_doc.settings(), sort_keys=True)
            signature += f"|long:{settings}|mv:{self.multivector_floats}"
        return Ingestor(
            self.encoder, self.store, async_store=self.async_store if for_async else None,
            chunker=chunker, batch_size=self.ingest_batch_size, chunk_signature=signature,
            on_write=self._check_precision, long_doc=self.long_doc, multivector_floats=self.multivector_floats,
        )

    # ------------------------------------------------------------------ ingest
    def add_texts(
        self,
        texts: Sequence[str],
        *,
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any]] | None = None,
        show_progress: bool = False,
    ) -> IngestStats:
        """Add texts; without ``ids`` each text's id is a hash of its content."""
        return self.add_documents(as_source_documents(texts, ids=ids, metadatas=metadatas), show_progress=show_progress)

    def add_documents(self, documents: Iterable[Any], *, show_progress: bool = False) -> IngestStats:
        """Add :class:`SourceDocument`s or LlamaIndex ``Document``s.

        Re-adding an id replaces the stored version; an unchanged document (same text,
        metadata and chunking) is not encoded again; an empty one removes the old version.
        """
        stats = self._ingestor().ingest(as_source_documents(documents), show_progress=show_progress)
        keep_indexed(self.store, self.storage)
        return stats

    async def aadd_documents(self, documents: Iterable[Any], *, show_progress: bool = False) -> IngestStats:
        """Async twin of :meth:`add_documents`."""
        stats = await self._ingestor(for_async=True).aingest(as_source_documents(documents), show_progress=show_progress)
        await akeep_indexed(self.async_store, self.storage)
        return stats

    def add_files(
        self, paths: Iterable[str | Path], *, source: str | None = None, show_progress: bool = False
    ) -> IngestStats:
        """Add text, markdown and PDF files; a directory is mirrored.

        A directory is a *source*: after the call the knowledge base holds exactly its
        supported files (deleted or emptied files lose their chunks, changed ones are
        re-encoded, unchanged ones are skipped), and other sources are untouched. Its
        documents are named ``<source>:<relative path>``; the default source name is the
        directory's absolute path (documents are then named by their absolute paths).

        Args:
            paths: Files or directories.
            source: Name of the source, for a single directory: a moved folder indexed
                again under the same name keeps its documents instead of duplicating them.
            show_progress: A progress bar over documents.

        Raises:
            ConfigError: a path does not exist, a named file has an unsupported suffix,
                ``source`` is given with several paths, or two directories overlap.
        """
        total = IngestStats()
        for src in _read_sources(paths, source):
            total = total + self._ingestor().ingest(src.documents, show_progress=show_progress, source=src.name)
        keep_indexed(self.store, self.storage)
        return total

    async def aadd_files(
        self, paths: Iterable[str | Path], *, source: str | None = None, show_progress: bool = False
    ) -> IngestStats:
        """Async twin of :meth:`add_files` (files are read in a worker thread)."""
        total = IngestStats()
        for src in await asyncio.to_thread(_read_sources, list(paths), source):
            total = total + await self._ingestor(for_async=True).aingest(
                src.documents, show_progress=show_progress, source=src.name
            )
        await akeep_indexed(self.async_store, self.storage)
        return total

    def write(self, records: Sequence[ChunkRecord]) -> list[str]:
        """Write prepared chunk records as they are (the LlamaIndex store's path); returns their ids."""
        ids = self._ingestor().write(records)
        keep_indexed(self.store, self.storage)
        return ids

    async def awrite(self, records: Sequence[ChunkRecord]) -> list[str]:
        """Async twin of :meth:`write`."""
        ids = await self._ingestor(for_async=True).awrite(records)
        await akeep_indexed(self.async_store, self.storage)
        return ids

    def delete_documents(self, doc_ids: Sequence[str]) -> None:
        """Delete every chunk of these documents (and their document points)."""
        self.store.delete_documents(doc_ids)

    async def adelete_documents(self, doc_ids: Sequence[str]) -> None:
        """Async twin of :meth:`delete_documents`."""
        await self.async_store.delete_documents(doc_ids)

    def delete(self, filter: models.Filter) -> None:
        """Delete the chunks matching a Qdrant filter."""
        self.store.delete(filter)

    async def adelete(self, filter: models.Filter) -> None:
        """Async twin of :meth:`delete`."""
        await self.async_store.delete(filter)

    def count(self, filter: models.Filter | None = None) -> int:
        """Number of stored chunks (matching ``filter``); document points are not counted."""
        return self.store.count(self.chunk_filter(filter))

    @staticmethod
    def chunk_filter(filter: models.Filter | None = None) -> models.Filter:
        """``filter`` restricted to chunks: a long document's document points left out.

        Every read that lists chunks (counts, scrolls, the LlamaIndex store's ``get_nodes``)
        goes through it; vector searches on the chunk vectors need not, since document
        points have no dense or sparse vector.
        """
        if filter is not None and not isinstance(filter, models.Filter):
            raise ConfigError(f"filter must be a qdrant_client.models.Filter, got {type(filter).__name__}")
        not_document = models.FieldCondition(key=KIND_FIELD, match=models.MatchValue(value=DOCUMENT_KIND))
        return models.Filter(must=[filter] if filter is not None else None, must_not=[not_document])

    def clear(self) -> None:
        """Delete every point; the collection and its recorded settings stay."""
        self.store.ensure_collection(recreate=True)

    async def aclear(self) -> None:
        """Async twin of :meth:`clear`."""
        await self.async_store.ensure_collection(recreate=True)

    # ------------------------------------------------------------------ query
    def _resolve(self, hybrid: HybridConfig | None, mode: str | None, fusion: str | None, alpha: float | None) -> HybridConfig:
        if hybrid is not None and (mode is not None or fusion is not None):
            raise ConfigError("pass either hybrid= or mode=/fusion=, not both")
        config = hybrid or self.hybrid.override(mode=mode, fusion=fusion)
        if config.mode != "dense" and not self.layout.has_sparse:
            raise ConfigError(
                f"mode={config.mode!r} needs sparse vectors, but collection {self.layout.collection!r} has none; "
                "use mode='dense'"
            )
        return config.with_alpha(alpha)

    @staticmethod
    def id_filter(
        filter: models.Filter | None = None,
        *,
        node_ids: Sequence[str] | None = None,
        doc_ids: Sequence[str] | None = None,
    ) -> models.Filter | None:
        """One filter: ``filter`` AND point id among ``node_ids`` AND document among ``doc_ids``.

        Node ids are mapped to point ids as they were at write time (UUIDs as is, other
        strings by uuid5), so callers pass the ids they gave.
        """
        for name, value in (("node_ids", node_ids), ("doc_ids", doc_ids)):
            if isinstance(value, str):
                raise ConfigError(f"{name} must be a list of ids, not a single string")
        if filter is not None and not isinstance(filter, models.Filter):
            raise ConfigError(f"filter must be a qdrant_client.models.Filter, got {type(filter).__name__}")
        must: list[Any] = []
        if node_ids is not None:
            must.append(models.HasIdCondition(has_id=[node_point_id(str(i)) for i in node_ids]))
        if doc_ids is not None:
            must.append(models.FieldCondition(key="doc_id", match=models.MatchAny(any=[str(d) for d in doc_ids])))
        if not must:
            return filter
        if filter is not None:
            must.append(filter)
        return models.Filter(must=must)

    def _prepare(
        self,
        texts: Sequence[str | None],
        dense: Sequence[Any] | None,
        *,
        top_k: int,
        config: HybridConfig,
        filter: models.Filter | None,
        show_progress: bool = False,
    ) -> list[_Prepared]:
        """Encode what the queries need (one batched pass) and fix their store arguments."""
        if isinstance(texts, str):
            raise ConfigError("texts must be a list of queries, not a single string; use query() for one")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ConfigError(f"top_k must be a positive int, got {top_k!r}")
        n = len(texts)
        if dense is not None and len(dense) != n:
            raise ConfigError(f"got {n} queries but {len(dense)} dense vectors")
        want_sparse = config.mode != "dense"
        need = [i for i in range(n) if want_sparse or dense is None or dense[i] is None]
        missing = [i for i in need if texts[i] is None or not str(texts[i]).strip()]
        if missing:
            raise ConfigError(
                f"query {missing[0]} has no text, and a {config.mode} query encodes its text "
                f"({'the sparse half needs it' if want_sparse else 'no dense vector was given'}); pass the query text"
            )
        vectors: dict[int, tuple[Any, Any]] = {}
        if need:
            out = self.encoder.encode(
                [str(texts[i]) for i in need], role="query", return_sparse=want_sparse, show_progress=show_progress
            )
            for row, i in enumerate(need):
                vectors[i] = (out.dense[row], out.sparse[row] if want_sparse and out.sparse else None)
        prepared = []
        for i in range(n):
            d, s = vectors.get(i, (None, None))
            if dense is not None and dense[i] is not None:
                d = dense[i]
            prepared.append(_Prepared(dense=d, sparse=s, top_k=top_k, hybrid=config, filter=filter))
        return prepared

    def search(
        self,
        texts: Sequence[str | None],
        *,
        dense: Sequence[Any] | None = None,
        top_k: int = 5,
        filter: models.Filter | None = None,
        mode: str | None = None,
        fusion: str | None = None,
        hybrid: HybridConfig | None = None,
        alpha: float | None = None,
        node_ids: Sequence[str] | None = None,
        doc_ids: Sequence[str] | None = None,
        show_progress: bool = False,
    ) -> list[list[SearchHit]]:
        """The query core: many queries, one encoder pass, batched Qdrant requests, best first.

        Args:
            texts: Query texts (an entry may be ``None`` when its dense vector is given
                and the mode is ``dense``).
            dense: Dense query vectors computed elsewhere, one per query (or ``None`` entries).
            top_k: Results per query.
            filter: A Qdrant filter, applied inside every prefetch.
            mode: ``dense``, ``sparse`` or ``hybrid`` (overrides the default).
            fusion: ``rrf``, ``dbsf`` or ``weighted`` (overrides the default).
            hybrid: A whole :class:`HybridConfig` instead of ``mode``/``fusion``.
            alpha: LlamaIndex's dense/sparse balance; ``0.5`` is the fusion unchanged (see
                :meth:`HybridConfig.with_alpha`).
            node_ids: Restrict to these node ids (as given at write time).
            doc_ids: Restrict to these documents.
            show_progress: A progress bar over query encoding.
        """
        config = self._resolve(hybrid, mode, fusion, alpha)
        flt = self.id_filter(filter, node_ids=node_ids, doc_ids=doc_ids)
        prepared = self._prepare(texts, dense, top_k=top_k, config=config, filter=flt, show_progress=show_progress)
        if len(prepared) == 1:
            p = prepared[0]
            return [self.store.query(p.dense, p.sparse, top_k=p.top_k, hybrid=p.hybrid, filter=p.filter)]
        return self.store.query_many(*_vectors_of(prepared, config), top_k=top_k, hybrid=config, filter=flt)

    async def asearch(
        self,
        texts: Sequence[str | None],
        *,
        dense: Sequence[Any] | None = None,
        top_k: int = 5,
        filter: models.Filter | None = None,
        mode: str | None = None,
        fusion: str | None = None,
        hybrid: HybridConfig | None = None,
        alpha: float | None = None,
        node_ids: Sequence[str] | None = None,
        doc_ids: Sequence[str] | None = None,
        show_progress: bool = False,
    ) -> list[list[SearchHit]]:
        """Async twin of :meth:`search`: encoding in a worker thread, async store calls."""
        config = self._resolve(hybrid, mode, fusion, alpha)
        flt = self.id_filter(filter, node_ids=node_ids, doc_ids=doc_ids)
        prepared = await asyncio.to_thread(
            self._prepare, texts, dense, top_k=top_k, config=config, filter=flt, show_progress=show_progress
        )
        store = self.async_store
        if len(prepared) == 1:
            p = prepared[0]
            return [await store.query(p.dense, p.sparse, top_k=p.top_k, hybrid=p.hybrid, filter=p.filter)]
        return await store.query_many(*_vectors_of(prepared, config), top_k=top_k, hybrid=config, filter=flt)

    def query(
        self,
        text: str,
        *,
        top_k: int = 5,
        filter: models.Filter | None = None,
        mode: str | None = None,
        fusion: str | None = None,
        hybrid: HybridConfig | None = None,
        alpha: float | None = None,
    ) -> list[SearchHit]:
        """Best chunks for a query, in one encoder pass and one Qdrant request.

        ``mode``/``fusion`` override the knowledge base's default; ``hybrid`` replaces it.
        """
        return self.search([text], top_k=top_k, filter=filter, mode=mode, fusion=fusion, hybrid=hybrid, alpha=alpha)[0]

    def query_many(
        self,
        texts: Sequence[str],
        *,
        top_k: int = 5,
        filter: models.Filter | None = None,
        mode: str | None = None,
        fusion: str | None = None,
        hybrid: HybridConfig | None = None,
        show_progress: bool = False,
    ) -> list[list[SearchHit]]:
        """:meth:`query` for many queries: encoded in batches, searched in batched Qdrant requests."""
        return self.search(texts, top_k=top_k, filter=filter, mode=mode, fusion=fusion, hybrid=hybrid, show_progress=show_progress)

    async def aquery(
        self,
        text: str,
        *,
        top_k: int = 5,
        filter: models.Filter | None = None,
        mode: str | None = None,
        fusion: str | None = None,
        hybrid: HybridConfig | None = None,
        alpha: float | None = None,
    ) -> list[SearchHit]:
        """Async twin of :meth:`query`: the encoder runs in a thread, the store call is async."""
        hits = await self.asearch([text], top_k=top_k, filter=filter, mode=mode, fusion=fusion, hybrid=hybrid, alpha=alpha)
        return hits[0]

    # ------------------------------------------------------------------ documents
    def _documents_args(
        self, query: str, *, top_k: int, strategy: str, chunks_per_doc: int, neighbours: int,
        hybrid: HybridConfig | None, mode: str | None, fusion: str | None, alpha: float | None,
    ) -> HybridConfig:
        if not isinstance(query, str) or not query.strip():
            raise ConfigError(f"query must be a non-empty str, got {query!r}")
        if strategy not in get_args(DocumentStrategy):
            raise ConfigError(f"strategy={strategy!r} is not valid; choose one of {list(get_args(DocumentStrategy))}")
        _validate_int("top_k", top_k, minimum=1, allow_none=False)
        _validate_int("chunks_per_doc", chunks_per_doc, minimum=1, allow_none=False)
        _validate_int("neighbours", neighbours, minimum=0, allow_none=False)
        if strategy != "groups" and not self.layout.stores_long_documents:
            raise ConfigError(
                f"strategy={strategy!r} searches the long-document multivector, but collection "
                f"{self.layout.collection!r} has none (it was created before long documents, or with "
                "long_docs='off'); use strategy='groups', or ingest into a new collection"
            )
        config = self._resolve(hybrid, mode, fusion, alpha)
        return config if strategy != "maxsim" else HybridConfig(mode="dense")

    def _documents_ops(
        self, prepared: _Prepared, strategy: str, chunks_per_doc: int, neighbours: int
    ) -> Generator[tuple[str, tuple[Any, ...], dict[str, Any]], Any, list[DocumentHit]]:
        """The store calls of one document search (the sync and async drivers share them)."""
        p = prepared
        docs: list[DocumentHit]
        if strategy == "groups":
            docs = yield ("query_groups", (p.dense, p.sparse), {
                "top_k": p.top_k, "group_size": chunks_per_doc, "hybrid": p.hybrid, "filter": p.filter})
        else:
            docs = yield ("query_documents", (p.dense,), {"top_k": p.top_k, "filter": p.filter})
            if strategy == "two_stage" and docs:
                chunks = yield ("query_in_documents", (p.dense, p.sparse, [d.doc_id for d in docs]), {
                    "per_document": chunks_per_doc, "hybrid": p.hybrid, "filter": p.filter})
                for d, hits in zip(docs, chunks):
                    d.chunks = hits
        if neighbours and docs:
            wanted = _neighbour_ids([h for d in docs for h in d.chunks], neighbours)
            found: list[StoredPoint] = yield ("retrieve", (wanted,), {}) if wanted else ("noop", (), {})
            by_id = {s.id: s for s in found or []}
            for d in docs:
                d.chunks = _with_neighbours(d.chunks, by_id, neighbours)
        return docs

    def search_documents(
        self,
        query: str,
        *,
        top_k: int = 10,
        strategy: DocumentStrategy = "groups",
        chunks_per_doc: int = 3,
        filter: models.Filter | None = None,
        mode: str | None = None,
        fusion: str | None = None,
        hybrid: HybridConfig | None = None,
        alpha: float | None = None,
        neighbours: int = 0,
    ) -> list[DocumentHit]:
        """The best documents for a query, each with its best chunks.

        Strategies:

        - ``"groups"``: chunk-level search (dense, sparse or hybrid, fused inside Qdrant)
          grouped by document: the ``top_k`` documents with the best chunks, each with its
          ``chunks_per_doc`` best chunks; a document scores its best chunk. One
          ``query_points_groups`` request on qdrant-client; on Qdrant Edge, which has no
          groups API, emulated by over-fetching and grouping (usually one request).
        - ``"maxsim"``: documents by MaxSim of the query's dense vector against their chunk
          vectors (the document points' multivector); a document stored in several parts
          counts once, with its best part. ``chunks`` stay empty. One request.
        - ``"two_stage"``: documents by MaxSim, then the ``chunks_per_doc`` best chunks
          (``mode``/``fusion``) inside each of them. Two requests: Qdrant's Query API
          cannot join a document point to its chunk points in one request (a prefetch
          passes on the points it found, and document points have no chunk vectors), so
          the second is one batch of per-document searches (Edge ``query_batch``,
          qdrant-client ``query_batch_points``).

        ``neighbours > 0`` adds, around every returned chunk, the chunks up to that many
        positions before and after it (one more request: a retrieve by id), the chunks of
        each document then listed in document order (see :meth:`neighbours`).

        ``filter`` applies to chunks and to document points (both carry the document's
        metadata and ``doc_id``). ``mode``, ``fusion``, ``hybrid`` and ``alpha`` are as in
        :meth:`search` (``"maxsim"`` uses the dense vector only).

        Raises:
            ConfigError: an invalid argument, or ``"maxsim"``/``"two_stage"`` on a collection
                without the long-document vectors.
        """
        config = self._documents_args(
            query, top_k=top_k, strategy=strategy, chunks_per_doc=chunks_per_doc, neighbours=neighbours,
            hybrid=hybrid, mode=mode, fusion=fusion, alpha=alpha,
        )
        prepared = self._prepare([query], None, top_k=top_k, config=config, filter=filter)[0]
        ops = self._documents_ops(prepared, strategy, chunks_per_doc, neighbours)
        result: Any = None
        while True:
            try:
                method, args, kwargs = ops.send(result)
            except StopIteration as stop:
                docs: list[DocumentHit] = stop.value
                return docs
            result = None if method == "noop" else getattr(self.store, method)(*args, **kwargs)

    async def asearch_documents(
        self,
        query: str,
        *,
        top_k: int = 10,
        strategy: DocumentStrategy = "groups",
        chunks_per_doc: int = 3,
        filter: models.Filter | None = None,
        mode: str | None = None,
        fusion: str | None = None,
        hybrid: HybridConfig | None = None,
        alpha: float | None = None,
        neighbours: int = 0,
    ) -> list[DocumentHit]:
        """Async twin of :meth:`search_documents` (encoding in a worker thread, async store calls)."""
        config = self._documents_args(
            query, top_k=top_k, strategy=strategy, chunks_per_doc=chunks_per_doc, neighbours=neighbours,
            hybrid=hybrid, mode=mode, fusion=fusion, alpha=alpha,
        )
        prepared = (await asyncio.to_thread(self._prepare, [query], None, top_k=top_k, config=config, filter=filter))[0]
        ops = self._documents_ops(prepared, strategy, chunks_per_doc, neighbours)
        store = self.async_store
        result: Any = None
        while True:
            try:
                method, args, kwargs = ops.send(result)
            except StopIteration as stop:
                docs: list[DocumentHit] = stop.value
                return docs
            result = None if method == "noop" else await getattr(store, method)(*args, **kwargs)

    def neighbours(self, hits: Sequence[SearchHit], *, window: int = 1) -> list[SearchHit]:
        """The hits with their neighbouring chunks, by chunk index, in one retrieve call.

        Each hit of a chunk the knowledge base cut (its payload has ``doc_id`` and
        ``chunk_index``) brings the chunks up to ``window`` positions before and after it
        (ids are deterministic, so they are fetched by id). The result lists documents in
        the order of their first hit, each document's chunks in document order, every chunk
        once (overlapping neighbourhoods merge). A hit keeps its score; a neighbour that was
        not a hit carries the best score of the hits that brought it. Hits without a chunk
        index (LlamaIndex nodes) are passed through in place.
        """
        _validate_int("window", window, minimum=0, allow_none=False)
        wanted = _neighbour_ids(hits, window)
        by_id = {p.id: p for p in self.store.retrieve(wanted)} if wanted else {}
        return _with_neighbours(list(hits), by_id, window)

    async def aneighbours(self, hits: Sequence[SearchHit], *, window: int = 1) -> list[SearchHit]:
        """Async twin of :meth:`neighbours`."""
        _validate_int("window", window, minimum=0, allow_none=False)
        wanted = _neighbour_ids(hits, window)
        by_id = {p.id: p for p in await self.async_store.retrieve(wanted)} if wanted else {}
        return _with_neighbours(list(hits), by_id, window)

    # ------------------------------------------------------------------ lifecycle
    def optimize(self) -> bool:
        """Build the search indexes now (Edge); returns whether anything was done."""
        return self.store.optimize()

    def close(self) -> None:
        """Release the store and its async twin (a temporary Edge directory is deleted). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            async_store, self._async_store = self._async_store, None
        if async_store is not None and not isinstance(async_store.backend, _ThreadedBackend):
            _close_async_elsewhere(async_store)
        self.store.close()

    async def aclose(self) -> None:
        """Async twin of :meth:`close`."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            async_store, self._async_store = self._async_store, None
        if async_store is not None and not isinstance(async_store.backend, _ThreadedBackend):
            await async_store.aclose()
        await asyncio.to_thread(self.store.close)

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> KnowledgeBase:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"KnowledgeBase(location={self.location!r}, collection={self.layout.collection!r}, encoder={self.encoder!r})"


def _vectors_of(prepared: Sequence[_Prepared], config: HybridConfig) -> tuple[list[Any] | None, list[Any] | None]:
    """The dense and the sparse query vectors of a batch (``None`` for a branch the mode skips)."""
    dense = None if config.mode == "sparse" else [p.dense for p in prepared]
    sparse = None if config.mode == "dense" else [p.sparse for p in prepared]
    return dense, sparse


def _position(hit: SearchHit) -> tuple[str, int, int | None] | None:
    """``(doc_id, chunk_index, chunk count)`` of a chunk the knowledge base cut, else ``None``."""
    doc, index = hit.payload.get("doc_id"), hit.payload.get("chunk_index")
    if doc is None or isinstance(index, bool) or not isinstance(index, int) or index < 0:
        return None
    count = hit.payload.get(CHUNK_COUNT_FIELD)
    return str(doc), index, count if isinstance(count, int) and not isinstance(count, bool) else None


def _neighbour_ids(hits: Sequence[SearchHit], window: int) -> list[str]:
    """Ids of the neighbours of ``hits`` that are not hits themselves (each once)."""
    have = {h.id for h in hits}
    wanted: dict[str, None] = {}
    for h in hits:
        pos = _position(h)
        if pos is None:
            continue
        doc, index, count = pos
        last = index + window if count is None else min(index + window, count - 1)
        for j in range(max(0, index - window), last + 1):
            pid = point_id(doc, j)
            if pid not in have:
                wanted[pid] = None
    return list(wanted)


def _with_neighbours(hits: list[SearchHit], found: Mapping[str, StoredPoint], window: int) -> list[SearchHit]:
    """Hits and their neighbours: documents in first-hit order, chunks in document order, once each."""
    hit_ids = {h.id for h in hits}
    order: list[str | SearchHit] = []  # a document id, or a hit without a position (kept in place)
    chunks: dict[str, dict[int, SearchHit]] = {}
    for h in hits:
        pos = _position(h)
        if pos is None:
            order.append(h)
            continue
        doc, index, count = pos
        if doc not in chunks:
            chunks[doc] = {}
            order.append(doc)
        mine = chunks[doc]
        known = mine.get(index)
        if known is None or known.id not in hit_ids or known.score < h.score:
            mine[index] = SearchHit(h.id, h.score, h.payload)
        last = index + window if count is None else min(index + window, count - 1)
        for j in range(max(0, index - window), last + 1):
            known = mine.get(j)
            if known is not None:
                if known.id not in hit_ids and known.score < h.score:
                    known.score = h.score  # a neighbour carries the best score of the hits that bring it
                continue
            stored = found.get(point_id(doc, j))
            if stored is not None:
                mine[j] = SearchHit(stored.id, h.score, stored.payload)
    out: list[SearchHit] = []
    for item in order:
        if isinstance(item, SearchHit):
            out.append(item)
        else:
            out.extend(hit for _, hit in sorted(chunks[item].items()))
    return out


def _read_sources(paths: Iterable[str | Path], source: str | None) -> list[Source]:
    """Read every path given to ``add_files``, and refuse ones that name or reach the same files."""
    paths = list(paths)
    if source is not None and len(paths) != 1:
        raise ConfigError(f"source={source!r} names one directory; got {len(paths)} paths. Index them one at a time")
    sources = [read_source(p, source=source) for p in paths]
    names = [s.name for s in sources if s.name is not None]
    if len(set(names)) != len(names):
        raise ConfigError(f"two paths give the same source name: {sorted(names)}; pass them in separate calls")
    ids = [d.id for s in sources for d in s.documents]
    if len(set(ids)) != len(ids):
        raise ConfigError("the paths overlap (a file is reached twice); index each folder once")
    return sources


def _close_async_elsewhere(store: AsyncQdrantStore) -> None:
    """Close an async client from sync code: on a private loop in a helper thread."""

    def run() -> None:
        try:
            asyncio.run(store.aclose())
        except Exception as exc:  # the sync store is closed regardless; report, do not raise
            logger.warning("Closing the async Qdrant client failed: %s", exc)

    worker = threading.Thread(target=run, name="gte-rag-aclose")
    worker.start()
    worker.join()


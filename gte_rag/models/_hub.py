"""Fetching checkpoints from the Hugging Face hub, and finding them in its cache.

Only the files a loader reads are fetched (config, tokenizer, sentence-transformers
pooling settings, weights: safetensors where the repository has them), never code.
Downloads go through ``huggingface_hub`` into its standard cache, with its progress bars.

The hub settings are read from the environment at call time (``HF_ENDPOINT``,
``HF_HUB_CACHE`` / ``HF_HOME``, ``HF_HUB_OFFLINE``, ``HF_HUB_ETAG_TIMEOUT``), so they may be
set after ``huggingface_hub`` was imported. Reaching the hub is bounded: the model-info
request that starts every download has a timeout and no retry loop, so an unreachable hub
fails in seconds; interrupted file transfers are resumed by ``huggingface_hub`` (a few
attempts, then the error is reported).
"""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import ModelLoadError

__all__ = ["HUB_TIMEOUT", "download_model", "find_in_cache", "hub_cache_dir", "hub_endpoint", "hub_offline",
           "select_checkpoint_files"]

logger = logging.getLogger(__name__)

HUB_TIMEOUT = 10.0
"""Seconds to wait for the hub to answer (``HF_HUB_ETAG_TIMEOUT`` overrides it)."""

_CONFIG_FILES = ("config.json",)
_TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.txt",
    "vocab.json", "merges.txt", "sentencepiece.bpe.model", "spiece.model", "tokenizer.model", "spm.model",
)
_ST_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json", "*_Pooling/config.json")
# by preference: safetensors first (no pickle); the torch pickle only where nothing else exists
_WEIGHT_CHOICES = (
    ("model.safetensors",),
    ("model.safetensors.index.json", "model-*-of-*.safetensors"),
    ("pytorch_model.bin",),
    ("pytorch_model.bin.index.json", "pytorch_model-*-of-*.bin"),
)
_TRUE = {"1", "ON", "YES", "TRUE"}


def hub_endpoint() -> str:
    """The hub URL: ``HF_ENDPOINT`` as set now, else huggingface_hub's default."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def hub_cache_dir() -> Path:
    """The Hugging Face cache: ``HF_HUB_CACHE`` (or ``HF_HOME/hub``) as set now, else huggingface_hub's default."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if env:
        return Path(env).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(constants.HF_HUB_CACHE)


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) switches the network off."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return env.upper() in _TRUE or bool(constants.HF_HUB_OFFLINE)


def _timeout() -> float:
    try:
        return float(os.environ.get("HF_HUB_ETAG_TIMEOUT") or HUB_TIMEOUT)
    except ValueError:
        return HUB_TIMEOUT


def _has_weights(path: Path) -> bool:
    return any((path / choice[0]).is_file() for choice in _WEIGHT_CHOICES)


def find_in_cache(repo_id: str, revision: str | None = None) -> Path | None:
    """The cached snapshot of ``repo_id`` at ``revision`` (a branch, tag or commit) holding weights, or ``None``.

    Reads the cache only (its ``refs/`` and ``snapshots/`` folders); never the network.
    """
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json", cache_dir=str(hub_cache_dir()), revision=revision)
    except ValueError:  # not a valid repo id
        return None
    if not isinstance(found, str):
        return None
    snapshot = Path(found).parent
    return snapshot if _has_weights(snapshot) else None


def select_checkpoint_files(names: Iterable[str]) -> list[str]:
    """The files of a repository that loading it needs, sorted.

    ``config.json``, the tokenizer files, sentence-transformers' pooling settings, and one set
    of weights: ``model.safetensors`` (or its shards), else ``pytorch_model.bin`` (or its
    shards). Everything else (other formats, ONNX exports, model cards, Python code) is left.

    Raises:
        ModelLoadError: the repository has no ``config.json`` or no loadable weights.
    """
    available = sorted(set(names))
    top = [n for n in available if "/" not in n]
    if "config.json" not in top:
        raise ModelLoadError(
            f"the repository has no config.json, so it is not a transformers checkpoint (files: {', '.join(available[:8])})",
            model_name="",
        )
    chosen = [n for n in top if n in _CONFIG_FILES or n in _TOKENIZER_FILES or n in _ST_FILES]
    chosen += [n for n in available if any(fnmatch.fnmatchcase(n, p) for p in _ST_FILES if "/" in p)]
    for choice in _WEIGHT_CHOICES:
        if choice[0] in top:
            chosen += [n for n in top if any(fnmatch.fnmatchcase(n, p) for p in choice)]
            break
    else:
        raise ModelLoadError(
            "the repository holds no weights a transformers model can load (model.safetensors, "
            f"pytorch_model.bin or their shards); files: {', '.join(available[:8])}",
            model_name="",
        )
    return sorted(set(chosen))


def _fetch_fix(repo_id: str) -> str:
    return (
        f"Fix: connect to the network (or set HF_ENDPOINT to a reachable mirror) and run again; or fetch it where "
        f"there is network access with `hf download {repo_id}` and copy the Hugging Face cache here; or pass a "
        "local checkpoint directory as the model. Set HF_HUB_OFFLINE=1 to never try the network."
    )


def download_model(repo_id: str, *, revision: str | None = None) -> Path:
    """Fetch the files of ``repo_id`` that loading it needs into the Hugging Face cache.

    Files already in the cache are not fetched again. Returns the snapshot directory.

    Args:
        repo_id: Hub id, ``owner/name``.
        revision: Branch, tag or commit; ``None`` is the default branch.

    Raises:
        ModelLoadError: the hub cannot be reached or times out, the repository or revision
            does not exist, or a transfer failed; the message says what to do.
    """
    import httpx2
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from .. import __version__

    endpoint = hub_endpoint()
    timeout = _timeout()
    rev = revision or "main"
    api = HfApi(endpoint=endpoint, library_name="gte-rag", library_version=__version__)
    try:
        info = api.model_info(repo_id, revision=rev, timeout=timeout)
    except GatedRepoError as exc:
        raise ModelLoadError(
            f"{repo_id!r} on the hub at {endpoint} is gated: accept its licence on its hub page, then log in "
            "(`hf auth login` or HF_TOKEN) and run again",
            model_name=repo_id,
        ) from exc
    except RevisionNotFoundError as exc:
        raise ModelLoadError(
            f"revision {rev!r} of {repo_id!r} does not exist on the hub at {endpoint}; pass an existing "
            "branch, tag or commit (or register the model with another revision)",
            model_name=repo_id,
        ) from exc
    except RepositoryNotFoundError as exc:
        raise ModelLoadError(
            f"no model {repo_id!r} on the hub at {endpoint} (or it is private): check the name (`gte-rag models` "
            "lists the registered ones), log in for a private model (`hf auth login` or HF_TOKEN), or pass a local "
            "checkpoint directory",
            model_name=repo_id,
        ) from exc
    except (httpx2.TransportError, OfflineModeIsEnabled, HfHubHTTPError) as exc:
        what = "timed out" if isinstance(exc, httpx2.TimeoutException) else f"{type(exc).__name__}: {_one_line(exc)}"
        raise ModelLoadError(
            f"model {repo_id!r} is not on this machine and gte-rag could not reach the hub at {endpoint} "
            f"({what}). {_fetch_fix(repo_id)}",
            model_name=repo_id,
        ) from exc
    if not info.sha:
        raise ModelLoadError(f"the hub at {endpoint} gave no commit for {repo_id!r}", model_name=repo_id)
    try:
        files = select_checkpoint_files(s.rfilename for s in info.siblings or [])
    except ModelLoadError as exc:
        raise ModelLoadError(f"{repo_id!r} at {endpoint}: {exc}", model_name=repo_id) from exc
    sizes = {s.rfilename: s.size or 0 for s in info.siblings or []}
    total = sum(sizes.get(f, 0) for f in files)
    logger.warning("gte-rag: fetching %s (%d files, %.1f MB) from %s into %s", repo_id, len(files), total / 1e6,
                   endpoint, hub_cache_dir())
    snapshot: Path | None = None
    for name in files:
        try:
            # the commit from the model info pins every file to one snapshot; `rev` names it in refs/
            local = hf_hub_download(
                repo_id, name, revision=info.sha, cache_dir=str(hub_cache_dir()), endpoint=endpoint,
                etag_timeout=timeout, library_name="gte-rag", library_version=__version__,
            )
        except (httpx2.TransportError, HfHubHTTPError, OSError) as exc:
            raise ModelLoadError(
                f"downloading {name} of {repo_id!r} failed from {endpoint} ({type(exc).__name__}: {_one_line(exc)}); "
                "the files fetched so far stay in the cache: run the command again to resume, or "
                f"{_fetch_fix(repo_id).removeprefix('Fix: ')}",
                model_name=repo_id,
            ) from exc
        snapshot = Path(local).parents[len(Path(name).parts) - 1]
    assert snapshot is not None
    _record_ref(repo_id, rev, info.sha)
    return snapshot


def _record_ref(repo_id: str, revision: str, commit: str) -> None:
    """Name the snapshot by its branch or tag in the cache's ``refs/``, as huggingface_hub does."""
    if revision == commit:
        return
    ref = hub_cache_dir() / ("models--" + repo_id.replace("/", "--")) / "refs" / revision
    try:
        if ref.is_file() and ref.read_text(encoding="utf-8") == commit:
            return
        ref.parent.mkdir(parents=True, exist_ok=True)
        tmp = ref.with_name(f".{ref.name}.{os.getpid()}.tmp")
        tmp.write_text(commit, encoding="utf-8")
        os.replace(tmp, ref)
    except OSError as exc:
        logger.warning("could not record %s -> %s in the cache: %s", revision, commit, exc)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:299] + "…"

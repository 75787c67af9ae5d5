"""A checkpoint's identity, independent of the directory it sits in.

A collection records which model wrote its vectors. A path is a poor record: the same
weights copied elsewhere are the same model, and a moved directory must still open its
collections. So the identity is

- the hub id, for a model asked for by name (registered id, or an id resolved from the
  Hugging Face cache);
- ``sha256:<hex>`` of the checkpoint's ``config.json``, its tokenizer files and its
  weights, for a model given as a directory.

Weight files up to :data:`FULL_HASH_LIMIT` bytes are hashed whole. Larger files are
hashed by their size, their first and last MiB and a MiB at each tenth of the file (a
safetensors file starts with its tensor table, so names, shapes and dtypes are always
covered); that keeps opening a 7B checkpoint under a second while two different
trainings of one architecture still differ.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path

from ._loading import Checkpoint

__all__ = ["FULL_HASH_LIMIT", "checkpoint_identity", "fingerprint_directory"]

logger = logging.getLogger(__name__)

FULL_HASH_LIMIT = 256 * 1024 * 1024
"""Weight files up to this size are hashed whole; larger ones are sampled."""

_SAMPLE = 1024 * 1024
_CONFIG_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "sentencepiece.bpe.model")
_WEIGHT_SUFFIXES = (".safetensors", ".bin")

_cache: dict[tuple[str, tuple[tuple[str, int, int], ...]], str] = {}
_cache_lock = threading.Lock()


def _hash_file(digest: hashlib._Hash, path: Path) -> None:
    size = path.stat().st_size
    digest.update(f"{path.name}:{size}\n".encode())
    with path.open("rb") as fh:
        if size <= FULL_HASH_LIMIT:
            for block in iter(lambda: fh.read(_SAMPLE), b""):
                digest.update(block)
            return
        offsets = sorted({0, size - _SAMPLE, *(size * k // 10 for k in range(1, 10))})
        for offset in offsets:
            fh.seek(offset)
            digest.update(fh.read(_SAMPLE))


def fingerprint_directory(path: Path) -> str:
    """``sha256:<hex>`` of a checkpoint directory's config, tokenizer and weight files.

    The file names count, the directory does not: a copy of the checkpoint elsewhere has
    the same fingerprint. Results are cached per process by path, size and mtime.
    """
    path = Path(path)
    files = [path / n for n in _CONFIG_FILES if (path / n).is_file()]
    files += sorted(p for p in path.iterdir() if p.is_file() and p.suffix in _WEIGHT_SUFFIXES)
    key = (str(path.resolve()), tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files))
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    digest = hashlib.sha256()
    for f in files:
        _hash_file(digest, f)
    value = "sha256:" + digest.hexdigest()
    with _cache_lock:
        _cache[key] = value
    logger.debug("Fingerprinted %s as %s", path, value)
    return value


def checkpoint_identity(checkpoint: Checkpoint) -> str:
    """What a collection records as the model: a hub id, or a directory fingerprint.

    Example:
        >>> from gte_rag.models import resolve_checkpoint
        >>> checkpoint_identity(resolve_checkpoint("sentence-transformers/all-MiniLM-L6-v2"))  # doctest: +SKIP
        'sentence-transformers/all-MiniLM-L6-v2'
    """
    name = checkpoint.name
    if Path(name).expanduser().is_dir():
        return fingerprint_directory(checkpoint.path)
    return checkpoint.spec.hf_id

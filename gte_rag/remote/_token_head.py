"""TokenHead: mGTE's token-weight head, loaded alone, applied to token states from a service.

mGTE's learned sparse weights are ``relu(token_head(h))`` per token, ``h`` the last-layer
state: the head is one ``hidden -> 1`` linear layer (``classifier.weight`` / ``.bias`` in the
checkpoint, a few kilobytes). A TEI server's ``/embed_all`` returns those states, so the
weights can be computed here with numpy, without the model: only the head's two tensors are
read from the checkpoint's safetensors, and the ids to drop (``[CLS]``/``<s>``, ``[SEP]``/``</s>``,
pad, unk, bos, eos) from its tokenizer files. The rule is the local encoder's: special ids and
weights <= 0 dropped, a repeated id keeps its largest weight.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .._types import SparseVector
from ..errors import ConfigError, ModelLoadError

logger = logging.getLogger(__name__)

__all__ = ["TokenHead"]

_WEIGHT, _BIAS = "classifier.weight", "classifier.bias"
_SPECIAL_KEYS = ("pad_token", "unk_token", "cls_token", "sep_token", "bos_token", "eos_token")


def _safetensors_files(path: Path) -> list[Path]:
    index = path / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        names = {weight_map[k] for k in (_WEIGHT, _BIAS) if k in weight_map}
        return [path / n for n in sorted(names)]
    return sorted(path.glob("*.safetensors"))


def _token_text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return str(value["content"])
    return None


def _special_ids(path: Path) -> frozenset[int]:
    """Ids of the pad/unk/cls/sep/bos/eos tokens named in the checkpoint's tokenizer files."""
    names: set[str] = set()
    for fname in ("special_tokens_map.json", "tokenizer_config.json"):
        f = path / fname
        if f.is_file():
            cfg = json.loads(f.read_text(encoding="utf-8"))
            names.update(t for k in _SPECIAL_KEYS if (t := _token_text(cfg.get(k))) is not None)
    tok_file = path / "tokenizer.json"
    if not tok_file.is_file():
        raise ConfigError(
            f"{path} has no tokenizer.json, so the special token ids the sparse rule drops are unknown; "
            "pass the checkpoint directory the server loaded (config, tokenizer and weights)"
        )
    tok = json.loads(tok_file.read_text(encoding="utf-8"))
    vocab = tok.get("model", {}).get("vocab", {})
    ids: set[int] = set()
    for added in tok.get("added_tokens", []):
        if added.get("content") in names:
            ids.add(int(added["id"]))
    if isinstance(vocab, dict):
        ids.update(int(vocab[n]) for n in names if n in vocab)
    elif isinstance(vocab, list):  # unigram: [[piece, score], ...]
        ids.update(i for i, entry in enumerate(vocab) if entry and entry[0] in names)
    return frozenset(ids)


class TokenHead:
    """The token-weight head of an mGTE checkpoint, without the model.

    Args:
        weight: ``(1, hidden)`` or ``(hidden,)`` float32.
        bias: ``(1,)`` float32 (or a float).
        drop_ids: Token ids never weighed (special tokens).
    """

    def __init__(self, weight: npt.ArrayLike, bias: npt.ArrayLike, drop_ids: Sequence[int] = ()) -> None:
        self.weight = np.asarray(weight, dtype=np.float32).reshape(-1)
        self.bias = float(np.asarray(bias, dtype=np.float32).reshape(-1)[0])
        self.drop_ids = frozenset(int(i) for i in drop_ids)

    @property
    def hidden_size(self) -> int:
        """The state width the head reads."""
        return int(self.weight.shape[0])

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> TokenHead:
        """Read the head from a local checkpoint directory (safetensors + tokenizer files).

        Raises:
            ConfigError: ``path`` is not a directory, or its weights hold no token head.
            ModelLoadError: the weights cannot be read.
        """
        root = Path(path).expanduser()
        if not root.is_dir():
            raise ConfigError(
                f"sparse_head={str(path)!r} is not a directory; pass the local checkpoint directory of the model "
                "the server runs (it must hold the token head, as gte-multilingual-base does)"
            )
        from safetensors import safe_open

        weight = bias = None
        files = _safetensors_files(root)
        for f in files:
            try:
                with safe_open(str(f), framework="numpy") as handle:
                    keys = set(handle.keys())
                    if _WEIGHT in keys:
                        weight = handle.get_tensor(_WEIGHT)
                    if _BIAS in keys:
                        bias = handle.get_tensor(_BIAS)
            except (OSError, ValueError) as exc:
                raise ModelLoadError(f"cannot read {f}: {exc}", model_name=str(root)) from exc
        if weight is None:
            raise ConfigError(
                f"{root} has no token head ({_WEIGHT!r} in {[f.name for f in files] or 'no safetensors file'}); "
                "learned sparse weights need an mGTE checkpoint with one (gte-multilingual-base), or use sparse=False"
            )
        if weight.size != weight.shape[-1] or weight.ndim > 2:
            raise ConfigError(f"{root}: {_WEIGHT} has shape {weight.shape}, not (1, hidden): not a token-weight head")
        head = cls(weight, bias if bias is not None else np.zeros(1, np.float32), sorted(_special_ids(root)))
        logger.info("loaded the token head of %s (hidden size %d)", root, head.hidden_size)
        return head

    def weights(self, states: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """``relu(states @ w + b)``: one weight per row of ``(n, hidden)`` states."""
        h = np.asarray(states, dtype=np.float32)
        if h.ndim != 2 or h.shape[1] != self.hidden_size:
            raise ConfigError(
                f"token states of shape {h.shape} do not fit a token head of hidden size {self.hidden_size}; "
                "is sparse_head the checkpoint the server runs?"
            )
        return np.maximum(h @ self.weight + np.float32(self.bias), 0.0).astype(np.float32, copy=False)

    def sparse(self, ids: Sequence[int], weights: npt.ArrayLike) -> SparseVector:
        """The sparse vector of a run of tokens: special ids and weights <= 0 dropped, max over repeats."""
        best: dict[int, float] = {}
        for tok, w in zip((int(i) for i in ids), np.asarray(weights, dtype=np.float32).tolist()):
            if w <= 0.0 or tok in self.drop_ids:
                continue
            if w > best.get(tok, 0.0):
                best[tok] = w
        return SparseVector.from_dict(best)

    def __repr__(self) -> str:
        return f"TokenHead(hidden_size={self.hidden_size}, drop_ids={sorted(self.drop_ids)})"

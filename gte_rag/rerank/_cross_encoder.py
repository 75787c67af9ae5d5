"""Cross-encoder relevance scoring for any sequence-classification checkpoint.

Pairs are tokenized once, sorted by token length and cut into batches under both a
pair cap and a padded-token budget; each batch is padded to its own longest pair, and
scores are put back in input order. The classifier reads only the first position, so
the last layer computes that position alone (:mod:`gte_rag.models._first_token`; same
scores, less work). mGTE rerankers (original ``model_type: "new"`` and
transformers-native), BERT and XLM-R cross-encoders all load through
:func:`gte_rag.models.load_model`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._batching import length_sorted_batches, progress
from .._runtime import DEFAULT_DTYPE, SharedTokenizer
from ..errors import ConfigError
from ..models import load_model, load_tokenizer
from ..models._first_token import install_first_token_last_layer
from ._common import (
    longest_first,
    RerankResult,
    check_pairs,
    ScorerSettings,
    configure_scorer,
    check_query_documents,
    rank_scores,
)

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_RERANKER", "GteCrossEncoder"]

DEFAULT_RERANKER = "Alibaba-NLP/gte-multilingual-reranker-base"


class GteCrossEncoder(ScorerSettings):
    """Score (query, document) pairs with a cross-encoder.

    Args:
        model: Registered name, hub id (cached, or fetched), or a checkpoint directory.
        max_length: Tokens per pair, special tokens included. ``None`` uses the model's own
            limit (8192 for mGTE); a larger value raises :class:`ConfigError`. Longer pairs lose
            tokens from the end of the document; the query is cut only when it alone fills
            the budget. Either way a warning is issued once per instance.
        batch_size: Most pairs per forward pass.
        max_batch_tokens: Most padded tokens per forward pass (``pairs x longest``); a pair
            longer than this runs alone. ``None``: 4096 on CPU, 65536 on accelerators.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``, or ``None`` for CUDA when available.
        dtype: ``"auto"``: bfloat16/float16 on CUDA, ``"bf16-mixed"`` on CPUs with native
            bfloat16 dot products, float32 on other CPUs; or ``"float32"`` (exact), ``"bfloat16"``,
            ``"float16"``, ``"bf16-mixed"``, a ``torch.dtype``.
        normalize: Apply a sigmoid, giving scores in (0, 1); off gives raw logits.
        attn_implementation: Passed to transformers (``"sdpa"``, ``"eager"``); ``None`` keeps its default.
        lazy_load: Defer reading the weights until the first call (or :meth:`load`).
        local_files_only: Never fetch the model from the hub (``HF_HUB_OFFLINE=1`` does the same).

    Raises:
        ModelLoadError: the checkpoint is not on this machine or cannot be read.
        ConfigError: an option is out of range.

    Example:
        >>> ce = GteCrossEncoder("/path/to/gte-multilingual-reranker-base")  # doctest: +SKIP
        >>> [r.index for r in ce.rerank("capital of France?", ["Berlin is...", "Paris is..."])]  # doctest: +SKIP
        [1, 0]
    """

    def __init__(
        self,
        model: str = DEFAULT_RERANKER,
        *,
        max_length: int | None = None,
        batch_size: int = 32,
        max_batch_tokens: int | None = None,
        device: str | None = None,
        dtype: str | torch.dtype = DEFAULT_DTYPE,
        normalize: bool = False,
        attn_implementation: str | None = None,
        lazy_load: bool = False,
        local_files_only: bool = False,
    ) -> None:
        configure_scorer(
            self, model, max_length=max_length, batch_size=batch_size,
            max_batch_tokens=max_batch_tokens, device=device, dtype=dtype, local_files_only=local_files_only,
        )
        self.normalize = bool(normalize)
        self.attn_implementation = attn_implementation
        self._model: PreTrainedModel | None = None
        self._tok: SharedTokenizer | None = None  # every use under its lock: see SharedTokenizer
        self._pad_id = 0
        self._left_pad = False
        self._load_lock = threading.Lock()
        self._first_token_only = False
        if not lazy_load:
            self.load()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(model={self.checkpoint.name!r}, max_length={self.max_length}, "
            f"device={str(self.device)!r}, dtype={self.precision.name!r}, normalize={self.normalize})"
        )

    def load(self) -> None:
        """Read tokenizer and weights now (idempotent, thread-safe)."""
        with self._load_lock:
            if self._model is not None:
                return
            tokenizer = load_tokenizer(self.checkpoint.path)
            special = tokenizer.num_special_tokens_to_add(pair=True)
            if self.max_length < special + 2:
                raise ConfigError(
                    f"max_length={self.max_length} leaves no room for text: a pair needs {special} special tokens "
                    f"plus at least one token each of query and document"
                )
            model = load_model(
                self.checkpoint,
                head="sequence",
                device=self.device,
                precision=self.precision,
                attn_implementation=self.attn_implementation,
            )
            num_labels = int(getattr(model.config, "num_labels", 1))
            if num_labels != 1:
                raise ConfigError(
                    f"{self.checkpoint.name!r} has a {num_labels}-label head; GteCrossEncoder needs a "
                    "cross-encoder with one relevance logit"
                )
            self._first_token_only = install_first_token_last_layer(model, device=self.device, precision=self.precision)
            self._pad_id = int(tokenizer.pad_token_id) if tokenizer.pad_token_id is not None else 0
            self._left_pad = tokenizer.padding_side == "left"
            self._tok = SharedTokenizer(tokenizer)
            self._model = model

    @property
    def first_token_only(self) -> bool:
        """Whether the last layer computes the first position alone (loads the model).

        The classifier reads only that position, so the scores are the same; the other
        positions' work in that layer is skipped (about 14% of a 6-layer model, 7% of a
        12-layer one). ``True`` for BERT, RoBERTa, XLM-R and GTE/mGTE cross-encoders under
        ``"sdpa"`` or ``"eager"`` attention, after a check against the full layer at load.
        """
        self.load()
        return self._first_token_only

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """A copy of the model's tokenizer, for callers (loads the model if needed).

        Scoring tokenizes with its own instance under a lock, so nothing done with this copy
        can disturb it; the copy itself is not thread-safe (:meth:`tokenize_pairs` is).
        """
        self.load()
        assert self._tok is not None
        tok: PreTrainedTokenizerBase = self._tok.public()
        return tok

    # -- tokenization -------------------------------------------------------------------

    def tokenize_pairs(self, queries: Sequence[str], documents: Sequence[str]) -> list[dict[str, list[int]]]:
        """Token ids (and type ids where the model uses them) of each pair, unpadded, truncated.

        Documents are cut first (``only_second``); a query that alone fills ``max_length``
        is cut too (``longest_first``) instead of failing. Thread-safe: the tokenizer is held
        for the whole call, since its truncation setting changes between the steps.
        """
        self.load()
        assert self._tok is not None
        with self._tok.hold() as tok:
            return self._tokenize_pairs(tok, queries, documents)

    def _tokenize_pairs(self, tok: Any, queries: Sequence[str], documents: Sequence[str]) -> list[dict[str, list[int]]]:
        special = tok.num_special_tokens_to_add(pair=True)
        unique = list(dict.fromkeys(queries))
        qlens = dict(zip(unique, (len(ids) for ids in tok(unique, add_special_tokens=False)["input_ids"])))
        long_query = [i for i, q in enumerate(queries) if qlens[q] + special >= self.max_length]
        normal = [i for i, q in enumerate(queries) if qlens[q] + special < self.max_length]
        keys = [k for k in tok.model_input_names if k in ("input_ids", "token_type_ids")]
        out: list[dict[str, list[int]]] = [{} for _ in queries]
        truncated_doc = truncated_query = False
        if normal:
            enc = tok(
                [queries[i] for i in normal],
                [documents[i] for i in normal],
                truncation="only_second",
                max_length=self.max_length,
                padding=False,
                return_attention_mask=False,
            )
            encodings = getattr(enc, "encodings", None)
            for j, i in enumerate(normal):
                out[i] = {k: enc[k][j] for k in keys if k in enc}
            if encodings is not None:
                truncated_doc = any(e.overflowing for e in encodings)
            else:  # no fast tokenizer: a pair that exactly fills the budget may have been cut
                truncated_doc = any(len(out[i]["input_ids"]) >= self.max_length for i in normal)
        if long_query:
            truncated_query = True
            for i, item in zip(long_query, self._encode_long_query_pairs(
                tok, [queries[i] for i in long_query], [documents[i] for i in long_query], special, keys
            )):
                out[i] = item
        if truncated_query:
            self._warn_truncation(
                f"a query is longer than max_length={self.max_length} tokens by itself; it was truncated "
                "together with its document (this warning is shown once per GteCrossEncoder)"
            )
        elif truncated_doc:
            self._warn_truncation(
                f"some (query, document) pairs exceed max_length={self.max_length} tokens; the documents were "
                "truncated from the end, queries kept whole (this warning is shown once per GteCrossEncoder)"
            )
        return out

    def _encode_long_query_pairs(
        self, tok: Any, queries: list[str], documents: list[str], special: int, keys: list[str]
    ) -> list[dict[str, list[int]]]:
        """Pairs whose query alone fills the budget: both sides cut, the longer first.

        transformers' ``longest_first`` does this, but the tokenizers library cuts one token
        at a time (seconds for a few thousand tokens), so the cut is computed here and the
        special tokens are added by the tokenizer's own post-processor.
        """
        budget = self.max_length - special
        q_enc = tok(queries, add_special_tokens=False)
        d_enc = tok(documents, add_special_tokens=False)
        template = self._pair_template(tok)
        if template is None:
            enc = tok(queries, documents, truncation="longest_first", max_length=self.max_length, return_attention_mask=False)
            return [{k: enc[k][j] for k in keys if k in enc} for j in range(len(queries))]
        (pre, mid, post), (t_pre, t_q, t_mid, t_d, t_post) = template
        out = []
        for q_ids, d_ids in zip(q_enc["input_ids"], d_enc["input_ids"]):
            nq, nd = longest_first(len(q_ids), len(d_ids), budget)
            item = {"input_ids": [*pre, *q_ids[:nq], *mid, *d_ids[:nd], *post]}
            if "token_type_ids" in keys:
                item["token_type_ids"] = [*t_pre, *[t_q] * nq, *t_mid, *[t_d] * nd, *t_post]
            out.append(item)
        return out

    def _pair_template(self, tok: Any) -> tuple[tuple[list[int], ...], tuple[Any, ...]] | None:
        """Special tokens (and type ids) around the two texts of a pair, read off the tokenizer.

        ``None`` where the layout cannot be read (then the caller uses transformers' truncation).
        """
        singles = []
        for probe in ("a", "b", "c", "d", "e", "x", "y", "z", "1", "2"):
            ids = tok(probe, add_special_tokens=False)["input_ids"]
            if len(ids) == 1 and ids[0] not in singles and ids[0] not in tok.all_special_ids:
                singles.append(ids[0])
            if len(singles) == 2:
                break
        if len(singles) < 2:
            return None
        x, y = singles
        sample = tok(tok.decode([x]), tok.decode([y]), return_token_type_ids=True)
        ids, types = sample["input_ids"], sample.get("token_type_ids") or [0] * len(sample["input_ids"])
        if ids.count(x) != 1 or ids.count(y) != 1 or ids.index(x) > ids.index(y):
            return None
        ix, iy = ids.index(x), ids.index(y)
        return (ids[:ix], ids[ix + 1 : iy], ids[iy + 1 :]), (types[:ix], types[ix], types[ix + 1 : iy], types[iy], types[iy + 1 :])

    # -- scoring --------------------------------------------------------------------------

    def _collate(self, items: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        import torch

        longest = max(len(it["input_ids"]) for it in items)
        pad_id, left = self._pad_id, self._left_pad
        ids = torch.full((len(items), longest), pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), longest), dtype=torch.long)
        types = torch.zeros((len(items), longest), dtype=torch.long) if "token_type_ids" in items[0] else None
        for row, it in enumerate(items):
            n = len(it["input_ids"])
            span = slice(longest - n, longest) if left else slice(0, n)
            ids[row, span] = torch.tensor(it["input_ids"], dtype=torch.long)
            mask[row, span] = 1
            if types is not None:
                types[row, span] = torch.tensor(it["token_type_ids"], dtype=torch.long)
        batch = {"input_ids": ids, "attention_mask": mask}
        if types is not None:
            batch["token_type_ids"] = types
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def score_pairs(self, pairs: Sequence[tuple[str, str]], *, show_progress: bool = False) -> np.ndarray:
        """Relevance of each (query, document) pair.

        Returns:
            float32 array of shape ``(n,)`` in input order: raw logits, or sigmoid
            probabilities when ``normalize`` is on.

        Raises:
            InputTypeError: a pair is not two strs (the message names its index).
        """
        queries, documents = check_pairs(pairs)
        if not queries:
            return np.zeros((0,), dtype=np.float32)
        import torch

        self.load()
        assert self._model is not None
        items = self.tokenize_pairs(queries, documents)
        batches = length_sorted_batches(
            [len(it["input_ids"]) for it in items], batch_size=self.batch_size, max_batch_tokens=self.max_batch_tokens
        )
        scores = np.empty((len(items),), dtype=np.float32)
        with torch.inference_mode(), self.precision.autocast(self.device):
            for batch_idx in progress(batches, enabled=show_progress, total=len(batches), desc="Rerank", unit="batch"):
                inputs = self._collate([items[i] for i in batch_idx])
                logits = self._model(**inputs).logits[:, 0].float()
                if self.normalize:
                    logits = torch.sigmoid(logits)
                scores[batch_idx] = logits.cpu().numpy()
                logger.debug("scored %d pairs of up to %d tokens", len(batch_idx), inputs["input_ids"].shape[1])
        return scores

    def rerank(self, query: str, documents: Sequence[str], *, top_k: int | None = None) -> list[RerankResult]:
        """Score ``documents`` against ``query`` and sort them, best first.

        Equal scores keep the input order. ``top_k`` keeps only the best ``top_k``.
        """
        check_query_documents(query, documents)
        scores = self.score_pairs([(query, d) for d in documents])
        return rank_scores(scores, documents, top_k)


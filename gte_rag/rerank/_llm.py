"""Relevance from a causal LM: P("yes") after a yes/no relevance question.

The prompt is a template with ``{query}`` and ``{document}`` (plain text, or the user
turn of the tokenizer's chat template). The model runs once per pair and the score is
the softmax of the next-token logits of the "yes" and "no" tokens, taken at the last
real position: ``sigmoid(logit_yes - logit_no)``, in (0, 1).

Pieces of the prompt are tokenized separately (template text, query, document) so that
the document can be cut to ``max_length`` without re-tokenizing, and so that each
template segment is tokenized once per call. Spaces that end a template segment are
moved to the start of the text that follows, as a BPE tokenizer would attach them.
"""

from __future__ import annotations

import inspect
import logging
import string
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from .._batching import length_sorted_batches, progress
from .._runtime import DEFAULT_DTYPE, SharedTokenizer
from ..errors import ConfigError
from ..models import load_model, load_tokenizer
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

__all__ = ["DEFAULT_LLM_RERANK_TEMPLATE", "GteLLMCrossEncoder"]

DEFAULT_LLM_RERANK_TEMPLATE = (
    'Judge whether the document is relevant to the query. Answer only "yes" or "no".\n'
    "Query: {query}\n"
    "Document: {document}\n"
    "Relevant:"
)
"""Default prompt; ends where the model is expected to say " yes" or " no"."""

_QUERY = "\x00gte-rag-query\x00"
_DOC = "\x00gte-rag-document\x00"


def _split_template(template: str) -> None:
    fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    if sorted(fields) != ["document", "query"]:
        raise ConfigError(
            "template must contain {query} and {document} exactly once each and no other fields "
            f"(double literal braces as {{{{ }}}}), got fields {fields}"
        )


class GteLLMCrossEncoder(ScorerSettings):
    """Score (query, document) pairs with a causal LM's yes/no next-token probabilities.

    Args:
        model: Registered name, hub id (cached, or fetched), or a checkpoint directory
            of any transformers causal LM (Qwen2 included).
        template: Prompt with ``{query}`` and ``{document}``, each exactly once.
        use_chat_template: Put the rendered template in a user turn of the tokenizer's chat
            template (with ``add_generation_prompt``). Raises :class:`ConfigError` at load
            when the tokenizer has none.
        system_prompt: System turn for the chat template (ignored without it).
        yes_token, no_token: Strings whose next-token logits are compared; each must be one
            token. ``None``: ``" yes"``/``" no"`` for plain prompts, ``"yes"``/``"no"`` in chat mode.
        max_length: Tokens per prompt; ``None`` uses the model's limit. Documents are cut
            first; a warning is issued once per instance.
        batch_size, max_batch_tokens: As for :class:`GteCrossEncoder`.
        padding_side: ``"left"`` (usual for causal LMs) or ``"right"``; both give the same
            scores (position ids follow the attention mask, the last real token is read).
        device, dtype, attn_implementation, lazy_load, local_files_only: As for :class:`GteCrossEncoder`.
    """

    def __init__(
        self,
        model: str,
        *,
        template: str = DEFAULT_LLM_RERANK_TEMPLATE,
        use_chat_template: bool = False,
        system_prompt: str | None = None,
        yes_token: str | None = None,
        no_token: str | None = None,
        max_length: int | None = None,
        batch_size: int = 8,
        max_batch_tokens: int | None = None,
        padding_side: Literal["left", "right"] = "left",
        device: str | None = None,
        dtype: str | torch.dtype = DEFAULT_DTYPE,
        attn_implementation: str | None = None,
        lazy_load: bool = False,
        local_files_only: bool = False,
    ) -> None:
        if not isinstance(template, str):
            raise ConfigError(f"template must be a str, got {type(template).__name__}")
        _split_template(template)
        if padding_side not in ("left", "right"):
            raise ConfigError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        self.template = template
        self.use_chat_template = bool(use_chat_template)
        self.system_prompt = system_prompt
        default_yes, default_no = ("yes", "no") if self.use_chat_template else (" yes", " no")
        self.yes_token = default_yes if yes_token is None else yes_token
        self.no_token = default_no if no_token is None else no_token
        if self.yes_token == self.no_token:
            raise ConfigError(f"yes_token and no_token must differ, both are {self.yes_token!r}")
        configure_scorer(
            self, model, max_length=max_length, batch_size=batch_size,
            max_batch_tokens=max_batch_tokens, device=device, dtype=dtype, local_files_only=local_files_only,
        )
        self.padding_side = padding_side
        self.attn_implementation = attn_implementation
        self._model: PreTrainedModel | None = None
        self._tok: SharedTokenizer | None = None  # every use under its lock: see SharedTokenizer
        self._pad_id = 0
        self._label_ids: tuple[int, int] = (0, 0)
        self._lead: list[int] = []
        self._keeps_logits = False
        self._load_lock = threading.Lock()
        if not lazy_load:
            self.load()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(model={self.checkpoint.name!r}, max_length={self.max_length}, "
            f"device={str(self.device)!r}, dtype={self.precision.name!r}, "
            f"use_chat_template={self.use_chat_template})"
        )

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """A copy of the model's tokenizer, for callers (loads the model if needed).

        Scoring tokenizes with its own instance under a lock, so nothing done with this copy
        can disturb it; the copy itself is not thread-safe (:meth:`build_inputs` is).
        """
        self.load()
        assert self._tok is not None
        tok: PreTrainedTokenizerBase = self._tok.public()
        return tok

    def load(self) -> None:
        """Read tokenizer and weights now (idempotent, thread-safe)."""
        with self._load_lock:
            if self._model is not None:
                return
            tok = load_tokenizer(self.checkpoint.path)
            if self.use_chat_template and not getattr(tok, "chat_template", None):
                raise ConfigError(
                    f"use_chat_template=True but the tokenizer of {self.checkpoint.name!r} has no chat template; "
                    "use the plain-text prompt (use_chat_template=False)"
                )
            label_ids = []
            for name, text in (("yes_token", self.yes_token), ("no_token", self.no_token)):
                ids = tok(text, add_special_tokens=False)["input_ids"]
                if len(ids) != 1:
                    raise ConfigError(
                        f"{name}={text!r} is {len(ids)} tokens for this tokenizer ({ids}); it must be exactly one "
                        "(try it with or without a leading space)"
                    )
                label_ids.append(int(ids[0]))
            if self.use_chat_template:
                lead: list[int] = []  # chat templates spell their special tokens in the text
            else:
                # leading specials the tokenizer adds (a BOS); trailing ones (an EOS) would end the prompt
                probe = tok("a", add_special_tokens=False)["input_ids"]
                full = tok("a")["input_ids"]
                lead = next((full[:i] for i in range(len(full)) if full[i : i + len(probe)] == probe), [])
            model = load_model(
                self.checkpoint,
                head="causal",
                device=self.device,
                precision=self.precision,
                attn_implementation=self.attn_implementation,
            )
            self._keeps_logits = "logits_to_keep" in inspect.signature(model.forward).parameters
            pad_id = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
            self._pad_id = int(pad_id)
            self._tok, self._label_ids, self._lead = SharedTokenizer(tok), (label_ids[0], label_ids[1]), lead
            self._model = model

    # -- prompts --------------------------------------------------------------------------

    def _render(self, tok: PreTrainedTokenizerBase, query_marker: str, doc_marker: str) -> str:
        text = self.template.format(query=query_marker, document=doc_marker)
        if not self.use_chat_template:
            return text
        messages = [{"role": "user", "content": text}]
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return str(rendered)

    def _segments(self, tok: PreTrainedTokenizerBase) -> tuple[list[list[int]], list[str], list[str]]:
        """Template token ids around the two slots, the slot order, and the spaces moved into each slot."""
        text = self._render(tok, _QUERY, _DOC)
        first, second = (_QUERY, _DOC) if text.index(_QUERY) < text.index(_DOC) else (_DOC, _QUERY)
        a, rest = text.split(first, 1)
        b, c = rest.split(second, 1)
        segs, moved = [], []
        for seg in (a, b):
            stripped = seg.rstrip(" ")
            moved.append(seg[len(stripped) :])
            segs.append(stripped)
        segs.append(c)
        ids = [tok(s, add_special_tokens=False)["input_ids"] if s else [] for s in segs]
        ids[0] = self._lead + ids[0]
        order = ["query" if first == _QUERY else "document", "document" if first == _QUERY else "query"]
        return ids, order, moved

    def build_inputs(self, queries: Sequence[str], documents: Sequence[str]) -> list[list[int]]:
        """Prompt token ids of each pair, truncated to ``max_length`` (documents first); thread-safe."""
        self.load()
        assert self._tok is not None
        with self._tok.hold() as tok:
            return self._build_inputs(tok, queries, documents)

    def _build_inputs(
        self, tok: PreTrainedTokenizerBase, queries: Sequence[str], documents: Sequence[str]
    ) -> list[list[int]]:
        seg_ids, order, moved = self._segments(tok)
        fixed = sum(len(s) for s in seg_ids)
        budget = self.max_length - fixed
        if budget < 2:
            raise ConfigError(
                f"the prompt template alone is {fixed} tokens, which leaves no room under max_length={self.max_length}"
            )
        q_space = moved[order.index("query")]
        d_space = moved[order.index("document")]
        unique = list(dict.fromkeys(queries))
        q_tok = dict(zip(unique, tok([q_space + q for q in unique], add_special_tokens=False)["input_ids"]))
        d_tok = tok([d_space + d for d in documents], add_special_tokens=False)["input_ids"] if documents else []
        out: list[list[int]] = []
        cut_doc = cut_query = False
        for q, d_ids in zip(queries, d_tok):
            q_ids = q_tok[q]
            if len(q_ids) + len(d_ids) > budget:
                if len(q_ids) < budget:
                    d_ids = d_ids[: budget - len(q_ids)]
                    cut_doc = True
                else:
                    nq, nd = longest_first(len(q_ids), len(d_ids), budget)
                    q_ids, d_ids = q_ids[:nq], d_ids[:nd]
                    cut_query = True
            slots = {"query": q_ids, "document": d_ids}
            out.append(seg_ids[0] + slots[order[0]] + seg_ids[1] + slots[order[1]] + seg_ids[2])
        if cut_query:
            self._warn_truncation(
                f"a query is longer than the prompt budget under max_length={self.max_length} tokens; it was "
                "truncated together with its document (this warning is shown once per GteLLMCrossEncoder)"
            )
        elif cut_doc:
            self._warn_truncation(
                f"some prompts exceed max_length={self.max_length} tokens; the documents were truncated from "
                "the end (this warning is shown once per GteLLMCrossEncoder)"
            )
        return out

    # -- scoring --------------------------------------------------------------------------

    def _forward(self, rows: list[list[int]]) -> torch.Tensor:
        """Yes-vs-no logit difference at the last real token of each row (float32)."""
        import torch

        assert self._model is not None
        pad_id = self._pad_id
        longest = max(len(r) for r in rows)
        left = self.padding_side == "left"
        ids = torch.full((len(rows), longest), int(pad_id), dtype=torch.long)
        mask = torch.zeros((len(rows), longest), dtype=torch.long)
        for i, r in enumerate(rows):
            span = slice(longest - len(r), longest) if left else slice(0, len(r))
            ids[i, span] = torch.tensor(r, dtype=torch.long)
            mask[i, span] = 1
        # positions follow the mask, so padding on either side leaves every real token where it was
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        ids, mask, position_ids = ids.to(self.device), mask.to(self.device), position_ids.to(self.device)
        lengths = mask.sum(-1)
        kwargs = {}
        if left:
            if self._keeps_logits:
                kwargs["logits_to_keep"] = 1
            logits = self._model(input_ids=ids, attention_mask=mask, position_ids=position_ids, use_cache=False, **kwargs).logits
            last = logits[:, -1, :]
        else:
            last_pos = lengths - 1
            if self._keeps_logits:
                keep = torch.unique(last_pos)
                logits = self._model(
                    input_ids=ids, attention_mask=mask, position_ids=position_ids, use_cache=False, logits_to_keep=keep
                ).logits
                last = logits[torch.arange(len(rows), device=ids.device), torch.searchsorted(keep, last_pos)]
            else:
                logits = self._model(input_ids=ids, attention_mask=mask, position_ids=position_ids, use_cache=False).logits
                last = logits[torch.arange(len(rows), device=ids.device), last_pos]
        yes, no = self._label_ids
        return (last[:, yes].float() - last[:, no].float())

    def score_pairs(self, pairs: Sequence[tuple[str, str]], *, show_progress: bool = False) -> np.ndarray:
        """P(yes) normalised over {yes, no} for each pair.

        Returns:
            float32 array of shape ``(n,)`` in input order, values in (0, 1).

        Raises:
            InputTypeError: a pair is not two strs (the message names its index).
        """
        queries, documents = check_pairs(pairs)
        if not queries:
            return np.zeros((0,), dtype=np.float32)
        import torch

        self.load()
        rows = self.build_inputs(queries, documents)
        batches = length_sorted_batches(
            [len(r) for r in rows], batch_size=self.batch_size, max_batch_tokens=self.max_batch_tokens
        )
        scores = np.empty((len(rows),), dtype=np.float32)
        with torch.inference_mode(), self.precision.autocast(self.device):
            for idx in progress(batches, enabled=show_progress, total=len(batches), desc="LLM rerank", unit="batch"):
                diff = self._forward([rows[i] for i in idx])
                scores[idx] = torch.sigmoid(diff).cpu().numpy()
        return scores

    def rerank(self, query: str, documents: Sequence[str], *, top_k: int | None = None) -> list[RerankResult]:
        """Score ``documents`` against ``query`` and sort them, best first (ties keep input order)."""
        check_query_documents(query, documents)
        scores = self.score_pairs([(query, d) for d in documents])
        return rank_scores(scores, documents, top_k)

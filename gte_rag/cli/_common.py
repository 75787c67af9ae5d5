"""Helpers every ``gte-rag`` sub-command shares: tables, model and knowledge-base options."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

__all__ = ["DEFAULT_KB_MODEL", "add_kb_args", "add_model_args", "model_options", "open_kb", "snippet", "table"]

DEFAULT_KB_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain-text table: a header, a rule, one line per row."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def snippet(text: str, width: int = 70) -> str:
    """``text`` on one line, cut to ``width`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def model_options(args: argparse.Namespace, *, encoder: bool = False) -> dict[str, Any]:
    """``device`` / ``dtype`` / ``local_files_only`` for every model the command loads.

    With ``encoder=True`` (the embedding model), also ``max_length`` when ``--max-length`` is given
    and ``analyzer`` when ``--analyzer`` is.
    """
    options = {"device": args.device, "dtype": args.dtype, "local_files_only": bool(getattr(args, "offline", False))}
    if encoder and getattr(args, "max_length", None) is not None:
        options["max_length"] = args.max_length
    if encoder and getattr(args, "analyzer", None) is not None:
        options["analyzer"] = args.analyzer
    return options


def open_kb(args: argparse.Namespace, **kw: Any) -> Any:
    """The knowledge base named by ``--kb`` / ``--collection`` / ``--model`` / ``--api-key``."""
    from ..kb import KnowledgeBase
    from ..qdrant import HybridConfig

    hybrid = HybridConfig(mode=getattr(args, "mode", "hybrid") or "hybrid", fusion=getattr(args, "fusion", None) or HybridConfig().fusion)
    return KnowledgeBase(
        args.kb, model=args.model, collection=args.collection, hybrid=hybrid,
        api_key=getattr(args, "api_key", None), encoder_options=model_options(args, encoder=True), **kw,
    )


def add_store_args(p: argparse.ArgumentParser, *, required: bool) -> None:
    """``--kb``, ``--collection``, ``--api-key``."""
    p.add_argument("--kb", required=required, help="knowledge base: a directory (Qdrant Edge) or an http(s):// URL")
    p.add_argument("--collection", default="gte_rag", help="collection name (default: gte_rag)")
    p.add_argument("--api-key", default=None, help="Qdrant server API key")


def add_kb_args(p: argparse.ArgumentParser, *, required: bool) -> None:
    """The store options, ``--model`` and the model options."""
    add_store_args(p, required=required)
    p.add_argument(
        "--model", default=None,
        help=f"embedding model (default: the one the collection was built with; {DEFAULT_KB_MODEL} for a new one)",
    )
    add_model_args(p)


def add_model_args(p: argparse.ArgumentParser) -> None:
    """``--device``, ``--dtype``, ``--offline``."""
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when available)")
    p.add_argument(
        "--dtype", default="auto",
        help="auto (default: bf16-mixed on CPUs with native bfloat16, float32 on other CPUs, half on CUDA), "
        "float32, bfloat16, float16, bf16-mixed",
    )
    p.add_argument(
        "--max-length", type=int, default=None,
        help="tokens the embedding model reads at once (its window; default: the model's own limit)",
    )
    p.add_argument(
        "--analyzer", default=None,
        help="lexical sparse terms: word, word:<language> (Snowball), word:none, tokens (the model's word pieces); "
        "default: the collection's recorded one, or the model's (word:english for MiniLM / GTE v1, v1.5)",
    )
    p.add_argument(
        "--offline", action="store_true",
        help="never fetch a model from the Hugging Face hub (like HF_HUB_OFFLINE=1): one not on this machine fails at once",
    )

"""``gte-rag ask``: the supporting passages of a question over long documents, and an answer with an LLM."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import time
from typing import Any

from ._common import add_kb_args, open_kb, snippet, table
from ._query import parse_filters

__all__ = ["LLM_ENV", "cmd_ask", "load_llm", "register"]

LLM_ENV = "GTE_RAG_LLM"
"""Environment variable naming the LLM factory when ``--llm`` is not given."""


def load_llm(spec: str | None) -> Any:
    """The LlamaIndex LLM a ``module:callable`` spec names (called with no arguments), or ``None``.

    Raises:
        ConfigError: the spec is not ``module:callable``, the module or the callable is missing,
            or it does not return a LlamaIndex LLM.
    """
    if not spec:
        return None
    from ..errors import ConfigError

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(
            f"--llm {spec!r} is not module:callable; write e.g. --llm mypackage.llms:make_llm "
            "(a function returning a LlamaIndex LLM)"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"--llm {spec!r}: cannot import {module_name!r} ({exc}); install it or fix the name") from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError(f"--llm {spec!r}: {module_name} has no callable {attr!r}")
    from llama_index.core.llms import LLM

    llm = factory()
    if not isinstance(llm, LLM):
        raise ConfigError(f"--llm {spec!r} returned a {type(llm).__name__}, not a LlamaIndex LLM")
    return llm


def cmd_ask(args: argparse.Namespace) -> int:
    from ..llama_index import GteLongDocQueryEngine, GteLongDocRetriever

    llm = load_llm(args.llm or os.environ.get(LLM_ENV))
    start = time.perf_counter()
    with open_kb(args) as kb:
        retriever = GteLongDocRetriever(
            knowledge_base=kb, strategy=args.strategy, similarity_top_k=args.top_k,
            chunks_per_doc=args.chunks, neighbours=args.neighbours, qdrant_filter=parse_filters(args.filter),
        )
        engine = GteLongDocQueryEngine(retriever, llm=llm)
        response = engine.ask(args.question)
    passages: list[dict[str, Any]] = (response.metadata or {}).get("passages", [])
    seconds = time.perf_counter() - start
    if args.json:
        print(json.dumps({"question": args.question, "answer": response.response, "passages": passages}, indent=2))
        return 0
    print(f"Question: {args.question}\n")
    if response.response is not None:
        print(f"Answer: {response.response}\n")
    rows = [
        (i + 1, snippet(p["doc_id"], 28), f"{p['start']}-{p['end']}", f"{p['score']:.4f}", snippet(p["text"]))
        for i, p in enumerate(passages)
    ]
    print(table(rows, ["#", "document", "chars", "score", "passage"]))
    docs = len({p["doc_id"] for p in passages})
    how = "answered with the LLM" if llm is not None else "no LLM configured (--llm or GTE_RAG_LLM): passages only"
    print(f"\n{len(passages)} passages from {docs} documents in {seconds:.1f}s; {how}")
    return 0


def register(sub: Any) -> None:
    """Add ``ask`` to the sub-command parsers."""
    p = sub.add_parser(
        "ask", help="the passages that answer a question over long documents (and an answer when an LLM is set)"
    )
    p.add_argument("question")
    add_kb_args(p, required=True)
    p.add_argument("--strategy", default="groups", choices=["groups", "maxsim", "two_stage"],
                   help="groups (default, the knowledge base's own): hybrid chunk search grouped by document; "
                   "two_stage: documents by MaxSim, then their best chunks; maxsim: documents by MaxSim with the "
                   "chunks that match best")
    p.add_argument("--top-k", type=int, default=3, help="documents (default 3)")
    p.add_argument("--chunks", type=int, default=3, help="passages per document (default 3)")
    p.add_argument("--neighbours", type=int, default=0, help="chunks on each side brought as context (default 0)")
    p.add_argument("--filter", action="append", default=None, metavar="KEY=VALUE", help="payload filter (repeatable)")
    p.add_argument("--llm", default=None, metavar="MODULE:CALLABLE",
                   help=f"a function returning a LlamaIndex LLM to answer with (default: ${LLM_ENV}; none: passages only)")
    p.add_argument("--json", action="store_true", help="print the answer and passages as JSON")
    p.set_defaults(func=cmd_ask)

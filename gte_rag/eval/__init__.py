"""Offline retrieval evaluation: BEIR-layout datasets, ir_measures metrics, reports.

Framework-free: nothing here imports torch or llama_index.

Example:
    >>> from gte_rag.eval import evaluate_run
    >>> evaluate_run({"q1": [("d1", 0.9)]}, {"q1": {"d1": 1}})
    {'ndcg@10': 1.0, 'recall@100': 1.0, 'mrr@10': 1.0}
"""

from __future__ import annotations

from gte_rag.eval._beir import BeirDataset, BeirDocument, load_beir
from gte_rag.eval._metrics import (
    DEFAULT_METRICS,
    Qrels,
    Run,
    evaluate_run,
    evaluate_run_per_query,
    supported_metrics,
)
from gte_rag.eval._report import REPORTED_PACKAGES, format_comparison, run_metadata

__all__ = [
    "BeirDataset",
    "BeirDocument",
    "DEFAULT_METRICS",
    "Qrels",
    "REPORTED_PACKAGES",
    "Run",
    "evaluate_run",
    "evaluate_run_per_query",
    "format_comparison",
    "load_beir",
    "run_metadata",
    "supported_metrics",
]

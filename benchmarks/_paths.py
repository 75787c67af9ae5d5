"""Where the benchmarks find the shared evaluation data: ``../shared/data`` next to the repository.

``GTE_RAG_DATA_DIR`` points elsewhere (the same variable the tests read).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("GTE_RAG_DATA_DIR", ROOT.parent / "shared" / "data"))

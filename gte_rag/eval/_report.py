"""Comparison tables and run metadata for evaluation and benchmark reports."""

from __future__ import annotations

import datetime
import importlib.metadata
import logging
import os
import platform
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from gte_rag.errors import ConfigError

__all__ = ["REPORTED_PACKAGES", "format_comparison", "run_metadata"]

logger = logging.getLogger(__name__)

REPORTED_PACKAGES: tuple[str, ...] = (
    "gte-rag",
    "torch",
    "transformers",
    "qdrant-client",
    "qdrant-edge-py",
    "llama-index-core",
    "numpy",
    "ir-measures",
    "PyStemmer",  # the word analyzer's stemmers, stopword lists and word classes: they decide its terms
    "stopwords",
    "regex",
)
"""Distributions whose installed version :func:`run_metadata` records."""

_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def format_comparison(
    results: Mapping[str, Mapping[str, float]],
    *,
    metrics: Sequence[str] | None = None,
    digits: int = 4,
    style: Literal["text", "markdown"] = "text",
) -> str:
    """Lay out several systems' metrics as an aligned table, one row per system.

    Args:
        results: System name -> metric name -> value (as :func:`evaluate_run` returns).
        metrics: The columns, in order. Defaults to every metric seen, in first-seen order.
        digits: Decimal places shown.
        style: ``"text"`` for a plain table, ``"markdown"`` for a pipe table that also reads
            aligned as plain text.

    Returns:
        The table without a trailing newline. A metric a system lacks shows as ``-``.

    Raises:
        ConfigError: ``results`` is empty, ``digits`` is negative or ``style`` is unknown.

    Example:
        >>> print(format_comparison({"bm25": {"ndcg@10": 0.665}, "dense": {"ndcg@10": 0.7}}))
        system  ndcg@10
        ------  -------
        bm25     0.6650
        dense    0.7000
    """
    if not results:
        raise ConfigError("results is empty; pass system name -> {metric -> value}")
    if digits < 0:
        raise ConfigError(f"digits={digits} is negative; pass 0 or more decimal places")
    if style not in ("text", "markdown"):
        raise ConfigError(f"style={style!r} is unknown; use 'text' or 'markdown'")
    if metrics is None:
        columns: list[str] = []
        for values in results.values():
            columns.extend(m for m in values if m not in columns)
    else:
        columns = list(metrics)

    header = ["system", *columns]
    rows = [
        [str(system), *(_cell(values.get(m), digits) for m in columns)]
        for system, values in results.items()
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        # System names align left, numbers right.
        parts = [cells[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)
        ]
        if style == "markdown":
            return "| " + " | ".join(parts) + " |"
        return "  ".join(parts).rstrip()

    if style == "markdown":
        rule = (
            "| " + " | ".join(["-" * widths[0]] + ["-" * (w - 1) + ":" for w in widths[1:]]) + " |"
        )
    else:
        rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def _cell(value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}"


def run_metadata() -> dict[str, Any]:
    """Describe the machine and software an evaluation ran on.

    Nothing heavy is imported: versions come from the installed distributions' metadata.

    Returns:
        A JSON-serialisable dict: ``git_commit`` (the checkout holding ``gte_rag``, or None
        when it is installed from a wheel or git is unavailable), ``git_dirty`` (tracked
        files modified, or None), ``timestamp`` (UTC, ISO 8601), ``hostname``,
        ``platform``, ``cpu_count``, ``python`` and ``packages`` (distribution name ->
        version, None when not installed; see :data:`REPORTED_PACKAGES`).
    """
    commit, dirty = _git_state(_PACKAGE_DIR)
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in REPORTED_PACKAGES},
    }


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(directory: Path, *args: str) -> str | None:
    try:
        completed = subprocess.run(
            ["git", "-C", str(directory), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        logger.debug("git %s failed: %s", " ".join(args), exc)
        return None
    if completed.returncode != 0:
        return None
    return completed.stdout.strip()


def _git_state(package_dir: Path) -> tuple[str | None, bool | None]:
    toplevel = _git(package_dir, "rev-parse", "--show-toplevel")
    if not toplevel:
        return None, None
    # An installed copy under site-packages can sit inside some unrelated repository
    # (a venv inside a checkout); that repository's commit says nothing about this code.
    root = Path(toplevel).resolve()
    if (
        not package_dir.is_relative_to(root)
        or "site-packages" in package_dir.relative_to(root).parts
    ):
        return None, None
    commit = _git(package_dir, "rev-parse", "HEAD")
    if not commit:
        return None, None
    status = _git(package_dir, "status", "--porcelain", "--untracked-files=no")
    return commit, (None if status is None else bool(status))

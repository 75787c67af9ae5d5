"""Read text, markdown and PDF files into :class:`SourceDocument`s."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from ..errors import ConfigError, MissingDependencyError
from ._ingest import SourceDocument

logger = logging.getLogger(__name__)

__all__ = ["SUPPORTED_SUFFIXES", "read_files"]

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".rst", ".pdf")


def _read_pdf(path: Path) -> str:
    try:
        from pypdf import PdfReader
    except ImportError as exc:
        raise MissingDependencyError(f"reading {path} needs pypdf: pip install 'gte-rag[pdf]'") from exc
    return "\n\n".join(page.extract_text() or "" for page in PdfReader(str(path)).pages)


def read_files(paths: Iterable[str | Path]) -> list[SourceDocument]:
    """Documents for the given files; directories are walked for supported suffixes.

    Raises:
        ConfigError: a path does not exist, or a named file has an unsupported suffix.
    """
    files: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUPPORTED_SUFFIXES))
        elif p.is_file():
            if p.suffix.lower() not in SUPPORTED_SUFFIXES:
                raise ConfigError(f"{p}: unsupported file type {p.suffix!r}; supported: {', '.join(SUPPORTED_SUFFIXES)}")
            files.append(p)
        else:
            raise ConfigError(f"{p} does not exist")
    docs = []
    for f in files:
        text = _read_pdf(f) if f.suffix.lower() == ".pdf" else f.read_text(encoding="utf-8", errors="replace")
        if not text.strip():
            logger.warning("%s has no text; skipped", f)
            continue
        docs.append(SourceDocument(str(f.resolve()), text, {"file_path": str(f.resolve()), "file_name": f.name}))
    return docs

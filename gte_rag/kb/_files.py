"""Read text, markdown and PDF files into :class:`SourceDocument`s.

A directory is read as a :class:`Source`: a name and the documents of all its supported
files, named ``<source>:<relative path>`` (or by their absolute paths when the source
keeps its default name, the directory's absolute path). Empty files are kept as empty
documents, so that ingesting a source removes what an emptied file used to hold.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, MissingDependencyError
from ._ingest import SourceDocument

logger = logging.getLogger(__name__)

__all__ = ["SUPPORTED_SUFFIXES", "Source", "read_files", "read_source"]

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".rst", ".pdf")


def _read_pdf(path: Path) -> str:
    try:
        from pypdf import PdfReader
    except ImportError as exc:
        raise MissingDependencyError(f"reading {path} needs pypdf: pip install 'gte-rag[pdf]'") from exc
    return "\n\n".join(page.extract_text() or "" for page in PdfReader(str(path)).pages)


@dataclass(frozen=True)
class Source:
    """What one path given to ``add_files`` holds.

    Attributes:
        name: The source name of a directory (mirrored on ingest), ``None`` for a file.
        documents: One document per supported file, empty files included.
    """

    name: str | None
    documents: list[SourceDocument]


def _supported_files(root: Path) -> list[Path]:
    """Every file below ``root`` with a supported suffix, sorted."""
    return sorted(f for f in root.rglob("*") if f.is_file() and f.suffix.lower() in SUPPORTED_SUFFIXES)


def _read_text(f: Path) -> str:
    return _read_pdf(f) if f.suffix.lower() == ".pdf" else f.read_text(encoding="utf-8", errors="replace")


def read_source(path: str | Path, *, source: str | None = None) -> Source:
    """Read one file, or every supported file below one directory.

    Args:
        path: A file or a directory.
        source: The source name of a directory; ``None`` uses its absolute path.

    Raises:
        ConfigError: the path does not exist, a named file has an unsupported suffix, or
            ``source`` is empty or given for a single file.
    """
    p = Path(path).expanduser()
    if source is not None and (not isinstance(source, str) or not source.strip()):
        raise ConfigError(f"source must be a non-empty name, got {source!r}")
    if p.is_file():
        if source is not None:
            raise ConfigError(f"source={source!r} names a directory; {p} is a file (pass its folder)")
        return Source(None, read_files([p], keep_empty=True))
    if not p.is_dir():
        raise ConfigError(f"{p} does not exist")
    root = p.resolve()
    name = source if source is not None else str(root)
    docs = []
    for f in _supported_files(root):
        rel = f.relative_to(root).as_posix()
        doc_id = str(f) if source is None else f"{source}:{rel}"
        meta = {"file_path": str(f), "file_name": f.name, "relative_path": rel}
        docs.append(SourceDocument(doc_id, _read_text(f), meta))
    return Source(name, docs)


def read_files(paths: Iterable[str | Path], *, keep_empty: bool = False) -> list[SourceDocument]:
    """Documents for the given files; directories are walked for supported suffixes.

    Raises:
        ConfigError: a path does not exist, or a named file has an unsupported suffix.
    """
    files: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            files.extend(_supported_files(p))
        elif p.is_file():
            if p.suffix.lower() not in SUPPORTED_SUFFIXES:
                raise ConfigError(f"{p}: unsupported file type {p.suffix!r}; supported: {', '.join(SUPPORTED_SUFFIXES)}")
            files.append(p)
        else:
            raise ConfigError(f"{p} does not exist")
    docs = []
    for f in files:
        text = _read_text(f)
        if not text.strip() and not keep_empty:
            logger.warning("%s has no text; skipped", f)
            continue
        docs.append(SourceDocument(str(f.resolve()), text, {"file_path": str(f.resolve()), "file_name": f.name}))
    return docs

"""Load retrieval test collections stored in the BEIR layout.

A BEIR folder holds three files::

    corpus.jsonl    {"_id", "title", "text", "metadata"?} per line
    queries.jsonl   {"_id", "text", "metadata"?} per line
    qrels.tsv       header "query-id<TAB>corpus-id<TAB>score", one judgment per line;
                    other splits live in qrels_<split>.tsv

As in BEIR, only the queries judged in the chosen qrels file are kept: ``queries.jsonl``
may hold the queries of every split. A judgment with score <= 0 marks a document as
non-relevant, but its query still counts as judged.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gte_rag.errors import ConfigError

__all__ = ["BeirDataset", "BeirDocument", "load_beir"]

logger = logging.getLogger(__name__)

CORPUS_FILE = "corpus.jsonl"
QUERIES_FILE = "queries.jsonl"
DEFAULT_QRELS_FILE = "qrels.tsv"
QRELS_HEADER = ("query-id", "corpus-id", "score")

_SPLIT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True, slots=True)
class BeirDocument:
    """One corpus document.

    Attributes:
        id: The ``_id`` of the document, always a string.
        title: The title, possibly empty.
        text: The body text, possibly empty.
        metadata: Extra fields of the source line (``metadata`` object), possibly empty.
    """

    id: str
    title: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def full_text(self) -> str:
        """The text to index: ``title + "\\n" + text`` when there is a title, as BEIR does.

        Returns only the title when the body is empty, and only the body when the title is.
        """
        if not self.title:
            return self.text
        if not self.text:
            return self.title
        return f"{self.title}\n{self.text}"


@dataclass(frozen=True)
class BeirDataset:
    """A corpus, its judged queries and their relevance judgments.

    Attributes:
        name: The folder name of the collection (``"scifact"``).
        corpus: Document id -> document, in file order.
        queries: Query id -> query text, only the queries the qrels judge, in
            ``queries.jsonl`` order.
        qrels: Query id -> {document id -> graded score}; score > 0 is relevant.
        query_metadata: Query id -> the ``metadata`` object of that query line (empty dict
            when the line has none), for the kept queries. LoCoMo, for example, stores the
            conversation a question belongs to there.
    """

    name: str
    corpus: dict[str, BeirDocument]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    query_metadata: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __repr__(self) -> str:
        # The default repr would print the whole corpus.
        return (
            f"BeirDataset(name={self.name!r}, docs={len(self.corpus)}, "
            f"queries={len(self.queries)}, judgments={sum(len(v) for v in self.qrels.values())})"
        )


def load_beir(
    path: str | Path,
    *,
    qrels: str | Path | None = None,
    split: str | None = None,
) -> BeirDataset:
    """Read a BEIR-layout folder.

    Args:
        path: The folder holding ``corpus.jsonl``, ``queries.jsonl`` and the qrels files.
        qrels: An explicit qrels file (a path as given, relative to the working directory
            when not absolute). Cannot be combined with ``split``.
        split: Read ``qrels_<split>.tsv`` instead of ``qrels.tsv``.

    Returns:
        The dataset, keeping only the queries judged in the chosen qrels file.

    Raises:
        ConfigError: The folder or one of its files is missing, a line is malformed (the
            message names file and line number), an id repeats, a judged query has no
            text in ``queries.jsonl``, or ``qrels`` and ``split`` are both given.

    Example:
        >>> ds = load_beir("../shared/data/scifact", split="train")  # doctest: +SKIP
        >>> len(ds.queries)  # doctest: +SKIP
        809
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError(
            f"BEIR dataset folder {str(folder)!r} does not exist or is not a directory; "
            f"expected a folder holding {CORPUS_FILE}, {QUERIES_FILE} and {DEFAULT_QRELS_FILE}"
        )
    qrels_path = _choose_qrels_file(folder, qrels=qrels, split=split)
    corpus_path = _require_file(folder, CORPUS_FILE)
    queries_path = _require_file(folder, QUERIES_FILE)

    judgments = _read_qrels(qrels_path)
    if not judgments:
        raise ConfigError(f"qrels file {str(qrels_path)!r} holds no judgments; nothing to evaluate")

    corpus: dict[str, BeirDocument] = {}
    for line_no, record in _iter_jsonl(corpus_path):
        doc_id = _field_str(record, "_id", corpus_path, line_no)
        if doc_id in corpus:
            raise ConfigError(f"{corpus_path}:{line_no}: duplicate document _id {doc_id!r}")
        corpus[doc_id] = BeirDocument(
            id=doc_id,
            title=_field_str(record, "title", corpus_path, line_no, default=""),
            text=_field_str(record, "text", corpus_path, line_no, default=""),
            metadata=_field_metadata(record, corpus_path, line_no),
        )

    queries: dict[str, str] = {}
    query_metadata: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for line_no, record in _iter_jsonl(queries_path):
        query_id = _field_str(record, "_id", queries_path, line_no)
        if query_id in seen:
            raise ConfigError(f"{queries_path}:{line_no}: duplicate query _id {query_id!r}")
        seen.add(query_id)
        if query_id not in judgments:
            continue
        queries[query_id] = _field_str(record, "text", queries_path, line_no)
        query_metadata[query_id] = _field_metadata(record, queries_path, line_no)

    missing_queries = [q for q in judgments if q not in queries]
    if missing_queries:
        raise ConfigError(
            f"{len(missing_queries)} query ids judged in {str(qrels_path)!r} have no line in "
            f"{str(queries_path)!r} (first: {missing_queries[:5]!r}); fix the qrels file or "
            "add the queries"
        )

    dangling = sum(1 for docs in judgments.values() for d in docs if d not in corpus)
    if dangling:
        # Kept, as BEIR does: such a document can never be retrieved, so recall drops.
        logger.warning(
            "%d of %d judgments in %s name documents that are not in %s; they are kept "
            "and count as relevant documents no system can retrieve",
            dangling,
            sum(len(v) for v in judgments.values()),
            qrels_path,
            corpus_path,
        )

    # Keep the qrels in queries.jsonl order, like the queries.
    ordered_qrels = {q: judgments[q] for q in queries}
    dataset = BeirDataset(
        name=folder.resolve().name,
        corpus=corpus,
        queries=queries,
        qrels=ordered_qrels,
        query_metadata=query_metadata,
    )
    logger.info(
        "Loaded BEIR dataset %s: %d documents, %d judged queries from %s",
        dataset.name,
        len(corpus),
        len(queries),
        qrels_path.name,
    )
    return dataset


def _choose_qrels_file(folder: Path, *, qrels: str | Path | None, split: str | None) -> Path:
    if qrels is not None and split is not None:
        raise ConfigError(
            f"pass either qrels={str(qrels)!r} or split={split!r}, not both: the split only "
            "chooses which qrels_<split>.tsv file to read"
        )
    if qrels is not None:
        qrels_path = Path(qrels)
        if not qrels_path.is_file():
            raise ConfigError(
                f"qrels file {str(qrels_path)!r} does not exist; qrels files in "
                f"{str(folder)!r}: {_available_qrels(folder)}"
            )
        return qrels_path
    if split is None:
        name = DEFAULT_QRELS_FILE
    else:
        if not _SPLIT_RE.match(split):
            raise ConfigError(
                f"split {split!r} is not a plain name; pass a name such as 'train' that "
                "selects qrels_<split>.tsv, or pass qrels=<path> for another file"
            )
        name = f"qrels_{split}.tsv"
    qrels_path = folder / name
    if not qrels_path.is_file():
        raise ConfigError(
            f"{str(qrels_path)!r} does not exist (split={split!r}); qrels files in "
            f"{str(folder)!r}: {_available_qrels(folder)}"
        )
    return qrels_path


def _available_qrels(folder: Path) -> str:
    names = sorted(p.name for p in folder.glob("qrels*.tsv")) if folder.is_dir() else []
    return ", ".join(names) if names else "none"


def _require_file(folder: Path, name: str) -> Path:
    file = folder / name
    if not file.is_file():
        raise ConfigError(
            f"{str(file)!r} is missing; a BEIR folder holds {CORPUS_FILE}, {QUERIES_FILE} "
            f"and {DEFAULT_QRELS_FILE} (or qrels_<split>.tsv)"
        )
    return file


def _iter_jsonl(file: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` per non-blank line, one line in memory at a time."""
    with file.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{file}:{line_no}: not valid JSON ({exc.msg})") from exc
            if not isinstance(record, dict):
                raise ConfigError(
                    f"{file}:{line_no}: expected a JSON object, got {type(record).__name__}"
                )
            yield line_no, record


def _field_str(
    record: dict[str, Any], key: str, file: Path, line_no: int, *, default: str | None = None
) -> str:
    value = record.get(key)
    if value is None:
        if default is not None:
            return default
        raise ConfigError(f"{file}:{line_no}: missing required field {key!r}")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ConfigError(
            f"{file}:{line_no}: field {key!r} must be a string, got {type(value).__name__}"
        )
    # Some exports write numeric ids; ids are compared as strings everywhere.
    return str(value)


def _field_metadata(record: dict[str, Any], file: Path, line_no: int) -> dict[str, Any]:
    value = record.get("metadata")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(
            f"{file}:{line_no}: field 'metadata' must be a JSON object, got {type(value).__name__}"
        )
    return value


def _read_qrels(file: Path) -> dict[str, dict[str, int]]:
    """Read a TREC-style TSV with an optional ``query-id corpus-id score`` header."""
    judgments: dict[str, dict[str, int]] = {}
    with file.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split("\t")
            if line_no == 1 and tuple(p.strip().lower() for p in parts) == QRELS_HEADER:
                continue
            if len(parts) != 3:
                raise ConfigError(
                    f"{file}:{line_no}: expected 3 tab-separated columns "
                    f"(query-id, corpus-id, score), got {len(parts)}: {line[:80]!r}"
                )
            query_id, doc_id, raw_score = (p.strip() for p in parts)
            if not query_id or not doc_id:
                raise ConfigError(f"{file}:{line_no}: empty query-id or corpus-id: {line[:80]!r}")
            try:
                score = int(raw_score)
            except ValueError:
                raise ConfigError(
                    f"{file}:{line_no}: score {raw_score!r} is not an integer; qrels scores are "
                    "integer grades (score > 0 is relevant)"
                ) from None
            docs = judgments.setdefault(query_id, {})
            if doc_id in docs and docs[doc_id] != score:
                raise ConfigError(
                    f"{file}:{line_no}: query {query_id!r} judges document {doc_id!r} twice "
                    f"with different scores ({docs[doc_id]} and {score})"
                )
            docs[doc_id] = score
    return judgments

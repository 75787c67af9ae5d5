"""``gte-rag models`` (the registry, and what is on this machine) and ``gte-rag info`` (a collection)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ._common import add_store_args, table

__all__ = ["cmd_info", "cmd_models", "register"]


def cmd_models(args: argparse.Namespace) -> int:
    from ..models import list_models

    listed = list_models()
    if args.json:
        print(json.dumps([m.to_dict() for m in listed], indent=2))
        return 0
    rows = [
        (
            m.name, m.family, m.task, m.dimension or "-", ",".join(map(str, m.elastic_dimensions)) or "-",
            m.max_tokens, m.pooling, m.sparse, _instruction(m.query_instruction), m.license,
            "yes" if m.on_machine else "no",
        )
        for m in listed
    ]
    print(table(rows, ["model", "family", "task", "dim", "elastic dims", "max tokens", "pooling", "sparse",
                       "query instruction", "licence", "on this machine"]))
    here = sum(m.on_machine for m in listed)
    print(f"\n{len(listed)} registered models, {here} on this machine; any other hub id or a checkpoint "
          "directory works too (a model not on this machine is fetched at first use unless --offline)")
    return 0


def _instruction(text: str) -> str:
    return json.dumps(text)[1:-1][:40] + ("…" if len(text) > 40 else "") if text else "-"


def _disk_bytes(path: Path) -> int:
    """Bytes the files take on disk (allocated blocks: Qdrant preallocates sparse segment files)."""
    total = 0
    for p in path.rglob("*"):
        if p.is_file():
            st = p.stat()
            blocks = getattr(st, "st_blocks", None)
            total += min(st.st_size, blocks * 512) if blocks is not None else st.st_size
    return total


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def collection_info(location: str, collection: str, *, api_key: str | None = None, show_progress: bool = False) -> dict[str, Any]:
    """What ``gte-rag info`` reports about a collection, without loading its model.

    Raises:
        CollectionNotFoundError: there is no such collection at ``location``.
    """
    from ..errors import CollectionNotFoundError
    from ..qdrant import CollectionLayout, open_store

    remote = location.startswith(("http://", "https://"))
    missing = CollectionNotFoundError(
        f"no collection {collection!r} at {location}: build one with `gte-rag index DOCS --kb {location}` "
        "(or name another with --collection)",
        collection=collection,
    )
    if not remote and not (Path(location) / collection).is_dir():
        raise missing
    with open_store(location, CollectionLayout(collection, dense_size=1), api_key=api_key) as store:
        layout = store.backend.read_layout()
        if layout is None:
            raise missing
        points = store.backend.count(None)
        from qdrant_client import models

        from ..qdrant import DOCUMENT_KIND, KIND_FIELD

        not_document = models.Filter(must_not=[
            models.FieldCondition(key=KIND_FIELD, match=models.MatchValue(value=DOCUMENT_KIND))
        ])
        chunks = store.backend.count(not_document) if layout.stores_long_documents else points
        indexes = store.backend.indexed_fields()
        documents: set[str] = set()
        bar = None
        if show_progress and points:
            from tqdm.auto import tqdm

            bar = tqdm(total=points, desc="counting documents", unit="point", leave=False)
        offset: str | None = None
        try:
            while True:
                page, offset = store.scroll(limit=1000, offset=offset)
                documents.update(str(p.payload.get("ref_doc_id") or p.payload.get("doc_id")) for p in page)
                if bar is not None:
                    bar.update(len(page))
                if offset is None or not page:
                    break
        finally:
            if bar is not None:
                bar.close()
    encoder = layout.encoder_settings
    return {
        "location": location,
        "collection": collection,
        "model": encoder.get("model") or layout.model_name,
        "identity": encoder.get("identity") or layout.model_name,
        "encoder": encoder,
        "dense_size": layout.dense_size,
        "distance": layout.distance,
        "sparse": layout.sparse_name is not None,
        "sparse_idf": layout.sparse_idf,
        "long_documents": layout.stores_long_documents,
        "points": points,
        "chunks": chunks,
        "document_points": points - chunks,
        "documents": len(documents),
        "indexes": indexes,
        "disk_bytes": None if remote else _disk_bytes(Path(location) / collection),
    }


def cmd_info(args: argparse.Namespace) -> int:
    info = collection_info(args.kb, args.collection, api_key=args.api_key, show_progress=not args.json)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    enc = info["encoder"]
    rows: list[tuple[str, Any]] = [
        ("model", info["model"]),
        ("identity", info["identity"]),
        ("dense", f"{info['dense_size']} dims, {info['distance']}, pooling {enc.get('pooling', '?')}"),
        ("sparse", "none" if not info["sparse"] else f"{enc.get('sparse', '?')}{' with IDF' if info['sparse_idf'] else ''}"),
        ("analyzer", _analyzer_row(enc) if info["sparse_idf"] else "-"),
        ("max length", enc.get("max_length", "?")),
        ("precision", enc.get("precision", "?")),
        ("query prefix", json.dumps(enc.get("query_prefix", ""))),
        ("document prefix", json.dumps(enc.get("document_prefix", ""))),
        ("long documents", "yes (document vectors + chunk multivector)" if info["long_documents"] else "no"),
        ("points", info["points"]),
        ("documents", info["documents"]),
        ("indexes", ", ".join(f"{k} ({v})" for k, v in sorted(info["indexes"].items())) or "none"),
        ("disk size", "on the server" if info["disk_bytes"] is None else _human(info["disk_bytes"])),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"{info['location']} / {info['collection']}")
    for key, value in rows:
        print(f"  {key.ljust(width)}  {value}")
    size = "" if info["disk_bytes"] is None else f", {_human(info['disk_bytes'])} on disk"
    split = f" ({info['chunks']} chunks, {info['document_points']} document points)" if info["document_points"] else ""
    print(f"\ncollection {info['collection']!r}: {info['points']} points{split} from {info['documents']} documents{size}")
    return 0


def register(sub: Any) -> None:
    """Add ``models`` and ``info`` to the sub-command parsers."""
    p = sub.add_parser("models", help="list the registered models: family, sizes, pooling, sparse head, licence, on this machine")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("info", help="describe a knowledge base: recorded model and settings, counts, indexes, disk size")
    add_store_args(p, required=True)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)


def _analyzer_row(enc: dict[str, Any]) -> str:
    """The lexical analyzer a collection records (word pieces when it records none: built before analyzers)."""
    from ..embed import Analyzer, legacy_token_analyzer

    found = enc.get("analyzer")
    a = Analyzer.parse(found) if isinstance(found, dict) else legacy_token_analyzer()
    return f"{a.describe()} (BM25 k1={a.k1:g}, b={a.b:g}, avgdl={a.resolved_avgdl:g})"

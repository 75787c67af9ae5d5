"""``gte-rag migrate``: copy a knowledge base to a Qdrant server or cluster (or another
directory, or engine) without re-encoding: idempotent, resumable, with a progress bar."""

from __future__ import annotations

import argparse
import os
from typing import Any

__all__ = ["cmd_migrate", "register"]

_ENGINES = ["auto", "edge", "client"]


def _storage(args: argparse.Namespace) -> Any:
    """The settings the storage flags give, else ``None`` (the source's).

    Only the flags given are set (:attr:`StorageConfig.explicit`): ``migrate_collection``
    applies them on top of the source's recorded settings, so ``--on-disk`` alone keeps the
    source's quantization, float16 and HNSW settings.
    """
    from ..qdrant import StorageConfig

    given = {
        "quantization": args.quantization, "on_disk": True if args.on_disk else None,
        "datatype": "float16" if args.float16 else None, "hnsw_m": args.hnsw_m,
        "hnsw_ef_construct": args.hnsw_ef_construct, "hnsw_ef": args.hnsw_ef,
    }
    chosen = {k: v for k, v in given.items() if v is not None}
    return StorageConfig(**chosen) if chosen else None


def cmd_migrate(args: argparse.Namespace) -> int:
    """Run ``gte-rag migrate``."""
    from ..qdrant import migrate_collection

    stats = migrate_collection(
        args.source, args.target, collection=args.collection, target_collection=args.to_collection,
        source_engine=args.from_engine, target_engine=args.to_engine, source_api_key=args.from_api_key,
        api_key=args.api_key, storage=_storage(args), shard_number=args.shards,
        replication_factor=args.replication, write_consistency_factor=args.write_consistency,
        prefer_grpc=args.grpc, batch_size=args.batch_size, show_progress=not args.no_progress,
    )
    print(f"{args.source} -> {args.target} (collection {args.to_collection or args.collection!r}): {stats.summary()}")
    return 0


def register(sub: Any) -> None:
    """Add the ``migrate`` sub-command."""
    p = sub.add_parser(
        "migrate",
        help="copy a knowledge base to a Qdrant server/cluster or another directory, without re-encoding "
        "(idempotent: run it again to resume)",
    )
    p.add_argument("--from", dest="source", required=True, help="source: a directory (Qdrant Edge) or an http(s):// URL")
    p.add_argument("--to", dest="target", required=True, help="target: an http(s):// URL (server/cluster) or a directory")
    p.add_argument("--collection", default="gte_rag", help="source collection (default: gte_rag)")
    p.add_argument("--to-collection", default=None, help="target collection (default: the source's name)")
    p.add_argument("--from-engine", default="auto", choices=_ENGINES,
                   help="'client' reads a directory as qdrant-client local mode (default: by location)")
    p.add_argument("--to-engine", default="auto", choices=_ENGINES,
                   help="'client' writes a directory as qdrant-client local mode (default: by location)")
    p.add_argument("--api-key", default=os.environ.get("QDRANT_API_KEY"),
                   help="API key of the target server (default: $QDRANT_API_KEY)")
    p.add_argument("--from-api-key", default=None, help="API key of a source server")
    p.add_argument("--shards", type=int, default=None, help="server target: shards of the new collection")
    p.add_argument("--replication", type=int, default=None, help="server target: replication factor")
    p.add_argument("--write-consistency", type=int, default=None,
                   help="server target: replicas that must confirm each write")
    p.add_argument("--grpc", action="store_true", help="talk gRPC to servers")
    p.add_argument("--quantization", default=None, choices=["none", "int8"],
                   help="target storage: int8 scalar quantization with rescoring (default: as the source)")
    p.add_argument("--on-disk", action="store_true", help="target storage: original vectors on disk")
    p.add_argument("--float16", action="store_true", help="target storage: original vectors as float16")
    p.add_argument("--hnsw-m", type=int, default=None, help="target storage: HNSW edges per node")
    p.add_argument("--hnsw-ef-construct", type=int, default=None, help="target storage: HNSW build candidates")
    p.add_argument("--hnsw-ef", type=int, default=None, help="target storage: HNSW search candidates")
    p.add_argument("--batch-size", type=int, default=256, help="points per page (default: 256)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_migrate)

"""A loopback HTTP server that speaks the parts of the Hugging Face hub API a download uses.

It serves repositories held in memory (``{path in repo: bytes}``), on 127.0.0.1 only:

- ``GET /api/models/{repo}`` and ``GET /api/models/{repo}/revision/{rev}``: the model info
  (``id``, ``sha``, ``siblings`` with ``rfilename`` and ``size``); an unknown repository is a
  404 with ``X-Error-Code: RepoNotFound``, an unknown revision a 404 with ``RevisionNotFound``.
- ``HEAD`` and ``GET /{repo}/resolve/{rev}/{path}``: the file, with the headers
  huggingface_hub checks (``ETag``, ``X-Repo-Commit``, ``Content-Length``) and byte ranges
  (``Range: bytes=N-`` gives a 206) so an interrupted download can resume; an unknown file is
  a 404 with ``X-Error-Code: EntryNotFound``.

Faults for the tests: ``drop[path] = n`` makes the next ``n`` GETs of that file send their
headers and ``drop_bytes`` bytes of the body, then close the connection. Every request is
recorded in ``requests`` as ``(method, path, range header)``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

TINY_REPO = "test-org/tiny-gte"

# files a published repository carries that a loader does not need (or must never run)
UNNEEDED_FILES = {
    "pytorch_model.bin": b"not needed: model.safetensors is there",
    "onnx/model.onnx": b"onnx export",
    "README.md": b"# tiny gte\n",
    "modeling_new.py": b"raise SystemExit('remote code must never run')\n",
    ".gitattributes": b"*.safetensors filter=lfs\n",
}

_INFO = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")


@dataclass
class HubRepo:
    """One repository: its files and the commit they belong to."""

    files: dict[str, bytes]
    sha: str = ""

    def __post_init__(self) -> None:
        if not self.sha:
            digest = hashlib.sha1()
            for name in sorted(self.files):
                digest.update(name.encode() + b"\0" + self.files[name])
            self.sha = digest.hexdigest()

    @classmethod
    def from_directory(cls, path: Path, *, extra: dict[str, bytes] | None = None) -> HubRepo:
        files = {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
        files.update(extra or {})
        return cls(files)


@dataclass
class HubState:
    repos: dict[str, HubRepo] = field(default_factory=dict)
    drop: dict[str, int] = field(default_factory=dict)
    drop_bytes: int = 0
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def downloads(self, name: str) -> int:
        """How many GETs of a file named ``name`` were served or attempted."""
        return sum(1 for m, p, _ in self.requests if m == "GET" and "/resolve/" in p and p.endswith("/" + name))


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, *, head: bool = False) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, status: int, code: str, extra: dict[str, str] | None = None, *, head: bool = False) -> None:
        body = json.dumps({"error": code}).encode()
        self._send(status, body, {"Content-Type": "application/json", "X-Error-Code": code, **(extra or {})}, head=head)

    def _lookup(self, repo_id: str, rev: str | None, *, head: bool = False) -> HubRepo | None:
        repo = self.server.state.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", head=head)
            return None
        if rev not in (None, "main", repo.sha):
            self._error(404, "RevisionNotFound", head=head)
            return None
        return repo

    def _handle(self, head: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        state = self.server.state
        with state.lock:
            state.requests.append((self.command, path, self.headers.get("Range")))
        m = _INFO.match(path)
        if m and not head:
            repo = self._lookup(m["repo"], m["rev"])
            if repo is not None:
                info = {
                    "id": m["repo"], "modelId": m["repo"], "sha": repo.sha, "private": False,
                    "siblings": [{"rfilename": n, "size": len(b)} for n, b in sorted(repo.files.items())],
                }
                self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"})
            return
        m = _RESOLVE.match(path)
        if not m:
            self._error(404, "NotFound", head=head)
            return
        repo = self._lookup(m["repo"], m["rev"], head=head)
        if repo is None:
            return
        name = m["path"]
        if name not in repo.files:
            self._error(404, "EntryNotFound", {"X-Repo-Commit": repo.sha}, head=head)
            return
        data = repo.files[name]
        headers = {
            "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
            "X-Repo-Commit": repo.sha,
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if head:
            self.send_response(200)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            return
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng.strip())[1])  # type: ignore[index]
        with state.lock:
            dropping = state.drop.get(name, 0) > 0
            if dropping:
                state.drop[name] -= 1
        body = data[start:]
        if start:
            self.send_response(206)
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        else:
            self.send_response(200)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if dropping:
            self.wfile.write(body[: state.drop_bytes])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)  # the peer sees the body end early
            return
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._handle(head=False)

    def do_HEAD(self) -> None:
        self._handle(head=True)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: HubState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


class LoopbackHub:
    """Start with ``with LoopbackHub() as hub:``; ``hub.url`` is the endpoint for ``HF_ENDPOINT``."""

    def __init__(self) -> None:
        self.state = HubState()
        self._server = _Server(self.state)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, repo_id: str, repo: HubRepo) -> HubRepo:
        self.state.repos[repo_id] = repo
        return repo

    def __enter__(self) -> LoopbackHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

"""A local server on 127.0.0.1 that speaks the parts of the Hugging Face Hub's HTTP API that huggingface_hub (and so
transformers and albert-lite) use to download models, so hub loading is tested over real HTTP with no network.

What it implements, as the Hub answers them:
- ``HEAD`` / ``GET /{repo}/resolve/{revision}/{path}``: the file with ``X-Repo-Commit``, ``ETag`` and
  ``Content-Length`` (``Range`` honoured on GET); revisions are branches, tags or full commit hashes.
- ``GET /api/models/{repo}`` and ``/api/models/{repo}/revision/{revision}``: repository metadata (``sha``,
  ``siblings``, ``private``, ``gated``); ``/api/models/{repo}/tree/{revision}``: the file list (transformers asks
  for it before fetching shards).
- Errors with the Hub's ``X-Error-Code``: 404 ``RepoNotFound`` / ``RevisionNotFound`` / ``EntryNotFound``; 401
  ``GatedRepo`` for a gated repository without an allowed token; 401 ``RepoNotFound`` for a private one.
- Renamed repositories answer 307 with a relative ``Location``, as the Hub does for ``albert-base-v2``.
Every request is recorded in ``hub.requests`` as (method, path) so tests can check what was fetched.
``hub.on_file(method, repo_id, filename)``, when set, runs as a file is served, after its commit was chosen and before
its bytes are sent, so whatever it changes is in place for the client's next request: a test pushes a commit there to
play a push that lands between two downloads.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote


@dataclass
class Repo:
    branches: dict[str, str] = field(default_factory=dict)  # branch or tag → commit
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit → {path: bytes}
    gated: bool = False
    private: bool = False
    tokens: set[str] = field(default_factory=set)  # tokens allowed to read a gated/private repository


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.redirects: dict[str, str] = {}
        self.requests: list[tuple[str, str]] = []
        self.on_file: Callable[[str, str, str], None] | None = None
        self._server: ThreadingHTTPServer | None = None

    # -- content ---------------------------------------------------------------------------------------------------
    def add(self, repo_id: str, files: dict[str, bytes] | str | Path, revision: str = "main", **flags) -> str:
        """Commit ``files`` (a mapping or a directory) to ``revision`` of ``repo_id``; returns the commit hash."""
        if not isinstance(files, dict):
            root = Path(files)
            files = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
        repo = self.repos.setdefault(repo_id, Repo())
        for key, value in flags.items():
            setattr(repo, key, value)
        digest = hashlib.sha1(repo_id.encode() + revision.encode())
        for name in sorted(files):
            digest.update(name.encode() + hashlib.sha1(files[name]).digest())
        commit = digest.hexdigest()
        repo.commits[commit] = dict(files)
        repo.branches[revision] = commit
        return commit

    def tag(self, repo_id: str, tag: str, commit: str) -> None:
        self.repos[repo_id].branches[tag] = commit

    # -- server ----------------------------------------------------------------------------------------------------
    def start(self) -> str:
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def fetched(self, method: str = "GET") -> list[str]:
        """Paths of the files requested with ``method`` (resolve URLs only)."""
        resolved = [path.split("/resolve/", 1)[1] for m, path in self.requests if m == method and "/resolve/" in path]
        return [unquote(rest.split("/", 1)[1]) for rest in resolved]


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(head=False)

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, head: bool = False) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, status: int, code: str | None, head: bool) -> None:
        headers = {"Content-Type": "application/json"}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, json.dumps({"error": code or "error"}).encode(), headers, head)

    def _authorised(self, repo: Repo) -> bool:
        if not (repo.gated or repo.private):
            return True
        auth = self.headers.get("Authorization", "")
        return auth.startswith("Bearer ") and auth[len("Bearer ") :] in repo.tokens

    def _answer(self, head: bool) -> None:
        path = self.path.split("?", 1)[0]
        self.hub.requests.append(("HEAD" if head else "GET", path))
        if path.startswith("/api/models/"):
            return self._api(path[len("/api/models/") :], head)
        if "/resolve/" not in path:
            return self._error(404, None, head)
        repo_id, rest = path[1:].split("/resolve/", 1)
        repo_id = unquote(repo_id)
        if repo_id in self.hub.redirects:
            target = f"/{self.hub.redirects[repo_id]}/resolve/{rest}"
            return self._send(307, b"", {"Location": target}, head)
        revision, _, filename = rest.partition("/")
        revision, filename = unquote(revision), unquote(filename)
        found = self._commit(repo_id, revision, head)
        if found is None:
            return
        commit, files = found
        if filename not in files:
            return self._error(404, "EntryNotFound", head)
        body = files[filename]
        headers = {
            "X-Repo-Commit": commit,
            "ETag": f'"{hashlib.sha1(body).hexdigest()}"',
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
        }
        status = 200
        ranged = self.headers.get("Range", "")
        if ranged.startswith("bytes=") and not head:
            start_text, _, end_text = ranged[len("bytes=") :].partition("-")
            start = int(start_text or 0)
            end = int(end_text) if end_text else len(body) - 1
            headers["Content-Range"] = f"bytes {start}-{end}/{len(body)}"
            body, status = body[start : end + 1], 206
        if self.hub.on_file is not None:
            self.hub.on_file("HEAD" if head else "GET", repo_id, filename)
        self._send(status, body, headers, head)

    def _tree(self, repo_id: str, rest: str, head: bool) -> None:
        """``/api/models/{repo}/tree/{revision}[/{folder}]`` (``?recursive=true``): the entries under a folder."""
        revision, _, folder = rest.partition("/")
        found = self._commit(repo_id, revision, head)
        if found is None:
            return
        recursive = "recursive=true" in self.path.lower() or "recursive=1" in self.path
        prefix = folder.strip("/") + "/" if folder.strip("/") else ""
        entries, folders = [], set()
        for name, body in sorted(found[1].items()):
            if not name.startswith(prefix):
                continue
            below = name[len(prefix) :]
            if "/" in below and not recursive:
                folders.add(prefix + below.split("/", 1)[0])
                continue
            oid = hashlib.sha1(body).hexdigest()
            entries.append({"type": "file", "oid": oid, "size": len(body), "path": name})
        entries += [{"type": "directory", "oid": "0" * 40, "size": 0, "path": f} for f in sorted(folders)]
        self._send(200, json.dumps(entries).encode(), {"Content-Type": "application/json"}, head)

    def _commit(self, repo_id: str, revision: str, head: bool) -> tuple[str, dict[str, bytes]] | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", head)
            return None
        if not self._authorised(repo):
            self._error(401, "GatedRepo" if repo.gated else "RepoNotFound", head)
            return None
        commit = repo.branches.get(revision) or (revision if revision in repo.commits else None)
        if commit is None:
            self._error(404, "RevisionNotFound", head)
            return None
        return commit, repo.commits[commit]

    def _api(self, rest: str, head: bool) -> None:
        rest = unquote(rest)
        if "/tree/" in rest:
            return self._tree(*rest.split("/tree/", 1), head)
        repo_id, _, revision = rest.partition("/revision/")
        found = self._commit(repo_id, revision or "main", head)
        if found is None:
            return
        commit, files = found
        repo = self.hub.repos[repo_id]
        info = {
            "id": repo_id,
            "modelId": repo_id,
            "sha": commit,
            "private": repo.private,
            "gated": "auto" if repo.gated else False,
            "disabled": False,
            "tags": [],
            "siblings": [{"rfilename": name} for name in sorted(files)],
        }
        self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"}, head)

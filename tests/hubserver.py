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
Every request is recorded in ``hub.requests`` as (method, path) so tests can check what was fetched, and its
``Authorization`` header in ``hub.authorizations`` as (method, path, header or None) so they can check which token
was sent.

The upload side, as huggingface_hub (2.4) calls it for ``create_repo``, ``create_branch`` and ``create_commit`` /
``upload_folder`` over the LFS protocol (the Xet protocol is not spoken: clients run with ``HF_HUB_DISABLE_XET=1``,
since huggingface_hub takes the Xet path whenever ``hf_xet`` is installed, without asking the server):
- ``POST /api/repos/create`` (``name``, ``organization``, ``visibility``): 409 with the ``url`` if it exists; a new
  repository gets a first commit holding ``.gitattributes``, as on the Hub.
- ``POST /api/models/{repo}/branch/{branch}`` (``startingPoint``, default main): 409 if the branch exists.
- ``POST /api/validate-yaml`` (a README.md about to be committed): 400 unless its metadata is a YAML mapping.
- ``POST /api/models/{repo}/preupload/{revision}``: ``uploadMode`` "lfs" for what the Hub stores in LFS (the LFS
  suffixes of its default ``.gitattributes``, a file over 10 MB, a binary sample), "regular" otherwise.
- ``POST /{repo}.git/info/lfs/objects/batch``: upload and verify actions pointing back here (none for an object
  already stored); ``PUT /_lfs/{oid}`` checks the bytes' sha256; ``POST /{repo}.git/info/lfs/objects/verify``.
- ``POST /api/models/{repo}/commit/{revision}`` (NDJSON: a header, then ``file`` (base64), ``lfsFile`` (by oid),
  ``deletedFile`` / ``deletedFolder``): one new commit on the branch (412 if ``parentCommit`` is not its head);
  earlier commits stay readable by hash. Each is recorded in ``hub.pushes`` with how every file travelled.
Writes need a token (401 without, or with one missing from ``hub.users`` when that is set); a token's user
(``hub.users``, default "user") may write in its own namespace and read its private repositories.
``hub.on_file(method, repo_id, filename)``, when set, runs as a file is served, after its commit was chosen and before
its bytes are sent, so whatever it changes is in place for the client's next request: a test pushes a commit there to
play a push that lands between two downloads.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class Repo:
    branches: dict[str, str] = field(default_factory=dict)  # branch or tag → commit
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit → {path: bytes}
    gated: bool = False
    private: bool = False
    tokens: set[str] = field(default_factory=set)  # tokens allowed to read a gated/private repository


@dataclass
class Push:
    """One commit made through the API: what a test checks after a push."""

    repo_id: str
    branch: str
    commit: str
    summary: str
    description: str
    modes: dict[str, str]  # path → "regular" or "lfs": how each added file travelled
    deleted: list[str]
    authorization: str | None


# What the Hub answers "lfs" for in a preupload: the suffixes its default .gitattributes sends to LFS (a few of them),
# any file over 10 MB, and binary content.
LFS_SUFFIXES = (".safetensors", ".bin", ".onnx", ".model", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".npy", ".zip")
LFS_SIZE = 10 * 1024 * 1024
GITATTRIBUTES = "".join(f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in LFS_SUFFIXES).encode()


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.redirects: dict[str, str] = {}
        self.requests: list[tuple[str, str]] = []
        self.authorizations: list[tuple[str, str, str | None]] = []
        self.users: dict[str, str] = {}  # token → user name; empty: any token is user "user"
        self.lfs: dict[str, bytes] = {}  # sha256 → bytes uploaded by the LFS protocol
        self.pushes: list[Push] = []
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

    def commit(self, repo_id: str, branch: str, files: dict[str, bytes]) -> str:
        """A new commit on ``branch`` holding ``files`` (its parent is the branch's head: never the same hash twice)."""
        repo = self.repos[repo_id]
        digest = hashlib.sha1(f"{repo_id}\0{branch}\0{repo.branches.get(branch)}\0{len(repo.commits)}".encode())
        for name in sorted(files):
            digest.update(name.encode() + hashlib.sha1(files[name]).digest())
        commit = digest.hexdigest()
        repo.commits[commit] = dict(files)
        repo.branches[branch] = commit
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

    def _error(self, status: int, code: str | None, head: bool = False, message: str | None = None) -> None:
        headers = {"Content-Type": "application/json"}
        if code:
            headers["X-Error-Code"] = code
        if message:
            headers["X-Error-Message"] = message
        self._send(status, json.dumps({"error": message or code or "error"}).encode(), headers, head)

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return auth[len("Bearer ") :] if auth.startswith("Bearer ") else None

    def _user(self) -> str | None:
        token = self._token()
        return None if token is None else self.hub.users.get(token, "user" if not self.hub.users else None)

    def _authorised(self, repo: Repo, repo_id: str) -> bool:
        if not (repo.gated or repo.private):
            return True
        user = self._user()
        return self._token() in repo.tokens or (repo.private and user is not None and repo_id.split("/")[0] == user)

    def _record(self, method: str, path: str) -> None:
        self.hub.requests.append((method, path))
        self.hub.authorizations.append((method, path, self.headers.get("Authorization")))

    def _answer(self, head: bool) -> None:
        path = self.path.split("?", 1)[0]
        self._record("HEAD" if head else "GET", path)
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
        if not self._authorised(repo, repo_id):
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

    # -- the upload side -------------------------------------------------------------------------------------------
    WRITES = (  # (method, path pattern on the raw path, handler); repository ids and revisions are unquoted after
        ("POST", re.compile(r"/api/repos/create"), "_create_repo"),
        ("POST", re.compile(r"/api/validate-yaml"), "_validate_yaml"),
        ("POST", re.compile(r"/api/models/(?P<repo>.+)/branch/(?P<rev>[^/]+)"), "_create_branch"),
        ("POST", re.compile(r"/api/models/(?P<repo>.+)/preupload/(?P<rev>[^/]+)"), "_preupload"),
        ("POST", re.compile(r"/api/models/(?P<repo>.+)/commit/(?P<rev>[^/]+)"), "_commit_files"),
        ("POST", re.compile(r"/(?P<repo>.+)\.git/info/lfs/objects/batch"), "_lfs_batch"),
        ("POST", re.compile(r"/(?P<repo>.+)\.git/info/lfs/objects/verify"), "_lfs_verify"),
        ("PUT", re.compile(r"/_lfs/(?P<oid>[0-9a-f]{64})"), "_lfs_put"),
    )

    def do_POST(self) -> None:  # noqa: N802
        self._write("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._write("PUT")

    def _write(self, method: str) -> None:
        url = urlsplit(self.path)
        self._record(method, url.path)
        body = self._body()
        for verb, pattern, name in self.WRITES:
            found = pattern.fullmatch(url.path)
            if verb == method and found:
                args = {key: unquote(value) for key, value in found.groupdict().items()}
                return getattr(self, name)(body=body, query=parse_qs(url.query), **args)
        self._error(404, None, message=f"no such endpoint: {method} {url.path}")

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":  # httpx streams file uploads so
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _json(self, status: int, data: object, content_type: str = "application/json") -> None:
        self._send(status, json.dumps(data).encode(), {"Content-Type": content_type})

    def _writer(self, repo_id: str | None = None) -> str | None:
        """The token's user if it may write to ``repo_id`` (which must exist); otherwise answers the error."""
        user = self._user()
        if user is None:
            self._error(401, None, message="Invalid credentials in Authorization header")
            return None
        if repo_id is None:
            return user
        repo = self.hub.repos.get(repo_id)
        if repo is None or not self._authorised(repo, repo_id):
            self._error(404, "RepoNotFound")
            return None
        if repo_id.split("/")[0] != user and self._token() not in repo.tokens:
            self._error(403, None, message=f"You don't have the rights to write to {repo_id}")
            return None
        return user

    def _create_repo(self, body: bytes, query: dict, **_) -> None:
        user = self._writer()
        if user is None:
            return
        payload = json.loads(body)
        namespace = payload.get("organization") or user
        repo_id = f"{namespace}/{payload['name']}"
        if payload.get("type", "model") != "model":
            return self._error(400, None, message="this server holds model repositories only")
        if namespace != user:
            return self._error(403, None, message=f"You don't have the rights to create a model under {namespace}")
        url = f"{self.hub.url}/{repo_id}"
        if repo_id in self.hub.repos:
            return self._json(409, {"error": "You already created this model repo", "url": url})
        self.hub.add(repo_id, {".gitattributes": GITATTRIBUTES}, private=payload.get("visibility") == "private")
        self._json(200, {"url": url, "name": repo_id, "id": repo_id})

    def _validate_yaml(self, body: bytes, query: dict) -> None:
        """A README.md's metadata (the YAML between its first two ``---`` lines) must be a mapping; 400 with the
        Hub's ``errors`` list otherwise."""
        import yaml

        content = json.loads(body)["content"]
        parts = content.split("---", 2) if content.startswith("---") else []
        try:
            metadata = yaml.safe_load(parts[1]) if len(parts) == 3 else {}
            problem = None if isinstance(metadata, dict) or metadata is None else "metadata must be a mapping"
        except yaml.YAMLError as err:
            problem = f"invalid YAML: {err}"
        if problem:
            return self._json(400, {"errors": [{"message": problem}], "warnings": []})
        self._json(200, {"errors": [], "warnings": []})

    def _create_branch(self, body: bytes, query: dict, repo: str, rev: str) -> None:
        if self._writer(repo) is None:
            return
        target = self.hub.repos[repo]
        start = json.loads(body or b"{}").get("startingPoint") or "main"
        commit = target.branches.get(start) or (start if start in target.commits else None)
        if commit is None:
            return self._error(404, "RevisionNotFound")
        if rev in target.branches:
            return self._error(409, None, message=f"Reference {rev} already exists")
        target.branches[rev] = commit
        self._json(200, {})

    def _preupload(self, body: bytes, query: dict, repo: str, rev: str) -> None:
        if self._writer(repo) is None:
            return
        if rev not in self.hub.repos[repo].branches:
            return self._error(404, "RevisionNotFound")
        files = []
        for item in json.loads(body)["files"]:
            binary = b"\0" in base64.b64decode(item["sample"])
            lfs = item["path"].lower().endswith(LFS_SUFFIXES) or item["size"] > LFS_SIZE or binary
            files.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False})
        self._json(200, {"files": files, "commitOid": self.hub.repos[repo].branches[rev]})

    def _lfs_batch(self, body: bytes, query: dict, repo: str) -> None:
        if self._writer(repo) is None:
            return
        payload = json.loads(body)
        objects = []
        for item in payload["objects"]:
            answer = {"oid": item["oid"], "size": item["size"], "authenticated": True}
            if item["oid"] not in self.hub.lfs:  # stored already: no actions, the client skips the upload
                answer["actions"] = {
                    "upload": {"href": f"{self.hub.url}/_lfs/{item['oid']}", "header": {}},
                    "verify": {"href": f"{self.hub.url}/{repo}.git/info/lfs/objects/verify", "header": {}},
                }
            objects.append(answer)
        self._json(200, {"transfer": "basic", "objects": objects}, "application/vnd.git-lfs+json")

    def _lfs_put(self, body: bytes, query: dict, oid: str) -> None:
        if hashlib.sha256(body).hexdigest() != oid:
            return self._error(400, None, message="the content does not match its oid")
        self.hub.lfs[oid] = body
        self._send(200, b"", {"ETag": f'"{hashlib.md5(body).hexdigest()}"'})

    def _lfs_verify(self, body: bytes, query: dict, repo: str) -> None:
        item = json.loads(body)
        stored = self.hub.lfs.get(item["oid"])
        if stored is None or len(stored) != item["size"]:
            return self._error(404, None, message=f"object {item['oid']} was not uploaded")
        self._json(200, {})

    def _commit_files(self, body: bytes, query: dict, repo: str, rev: str) -> None:
        if self._writer(repo) is None:
            return
        target = self.hub.repos[repo]
        if query.get("create_pr"):
            return self._error(400, None, message="this server does not open pull requests")
        if rev not in target.branches:
            return self._error(404, "RevisionNotFound", message=f"Invalid rev id: {rev}")
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line["key"] == "header"), {})
        parent = target.branches[rev]
        if header.get("parentCommit") not in (None, parent):
            return self._error(412, None, message=f"A commit has happened since {header['parentCommit']}")
        files, modes, deleted = dict(target.commits[parent]), {}, []
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
                modes[value["path"]] = "regular"
            elif key == "lfsFile":
                if value["oid"] not in self.hub.lfs:
                    return self._error(422, None, message=f"LFS object {value['oid']} of {value['path']} not found")
                files[value["path"]] = self.hub.lfs[value["oid"]]
                modes[value["path"]] = "lfs"
            elif key in ("deletedFile", "deletedFolder"):
                path = value["path"].rstrip("/")
                gone = [name for name in files if name == path or name.startswith(path + "/")]
                if not gone:
                    return self._error(404, "EntryNotFound", message=f"A file with this name doesn't exist: {path}")
                for name in gone:
                    del files[name]
                deleted += gone
        commit = self.hub.commit(repo, rev, files)
        summary, description = header.get("summary", ""), header.get("description", "")
        auth = self.headers.get("Authorization")
        self.hub.pushes.append(Push(repo, rev, commit, summary, description, modes, deleted, auth))
        self._json(200, {"success": True, "commitOid": commit, "commitUrl": f"{self.hub.url}/{repo}/commit/{commit}"})

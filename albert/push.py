"""Pushing a model directory to the Hugging Face Hub: ``albert push DIR REPO_ID``, ``model.push_to_hub(repo_id)`` and
``tokenizer.push_to_hub(repo_id)``.

A push is one commit, through huggingface_hub (the client transformers uses): the repository is created if missing
(``private`` asks for a private one), the branch ``revision`` is created from main if missing, and every file of the
folder goes in one ``create_commit``. huggingface_hub asks the Hub how each file travels (the preupload answer): large
and binary files (weights, ``spiece.model``) by LFS, or by Xet where ``hf_xet`` is installed; the rest as regular
files. The token is ``token`` (``--token``), else ``HF_TOKEN``, else the one ``hf auth login`` stored; none at all is
refused before anything is sent.

Only a complete model is pushed, checked before any request: not a run still writing it (its ``INCOMPLETE`` marker),
not a pretraining run directory (its model is ``RUN/model``), and with ``config.json``, weights (every shard an index
names) and a tokenizer, the files a loader by hub id fetches (albert/hub.py). A push replaces what it pushes: the
repository's top-level model, tokenizer and training files that the folder lacks are deleted in the same commit, so
that a loader never pairs the new config with an earlier push's weights (a single ``model.safetensors`` left beside a
new sharded index), tokenizer or tuned threshold; anything else there is kept (a README.md on the repository stays
unless the folder has its own: every model directory albert-lite writes carries a model card, which replaces it).
The commit is made on the head the deletions were read from (``parent_commit``): a push that lands in between
fails instead of mixing. Checkpoints of a run (``checkpoints/``: optimizer state) and hidden files are not pushed.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tempfile
from pathlib import Path
from typing import Any

from albert.errors import AlbertError, CheckpointError
from albert.extras import installed_version
from albert.hub import TOKENIZER, WEIGHTS
from albert.outputs import INCOMPLETE

# The top-level files each kind of push replaces on the repository (transformers' names included: a stale
# tokenizer.json would be what transformers loads).
REPLACES = {
    "model": ("config.json", "model*.safetensors", "pytorch_model*.bin", "*.index.json"),
    "tokenizer": ("*.model", "vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"),
    "training": ("finetune_config.json", "decoding.json"),
}
KINDS = {"model": ("model",), "tokenizer": ("tokenizer",), "all": ("model", "tokenizer", "training")}
_WHAT = {"all": "model and tokenizer", "model": "model", "tokenizer": "tokenizer"}  # in the default commit message
NOT_PUSHED = ("checkpoints",)  # a run's resumable checkpoints: optimizer state, 3× the model, no use to a reader
_COMMIT_HASH = re.compile(r"[0-9a-f]{40}")


def push_folder(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    token: str | None = None,
    kind: str = "all",
) -> dict[str, Any]:
    """Push ``folder`` to ``repo_id`` in one commit (see the module docstring); ``kind`` is what it must hold:
    ``all`` (a model with its tokenizer), ``model`` or ``tokenizer``. Returns the repository, branch, commit hash and
    URL, the files pushed and those deleted."""
    folder = Path(folder).expanduser()
    files = check_folder(folder, kind)
    branch = revision or "main"
    if _COMMIT_HASH.fullmatch(branch):
        raise AlbertError(f"revision {branch}: a push goes to a branch (created from main if missing), not a commit")
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, constants, get_token

    endpoint = constants.ENDPOINT
    if not (token or get_token()):
        raise AlbertError(
            f"pushing to {endpoint} needs a token with write access: pass --token, set HF_TOKEN or run `hf auth login`"
        )
    api = HfApi(token=token)
    try:
        repo_id = api.create_repo(repo_id, private=private or None, exist_ok=True).repo_id  # "name" → "user/name"
        if private and not api.repo_info(repo_id).private:  # before anything is created on it (a branch)
            raise AlbertError(
                f"{repo_id} exists and is public: a private push does not change an existing repository's visibility "
                f"(change it in the repository's settings on {endpoint}, or push to a new id)"
            )
        if branch != "main":
            api.create_branch(repo_id, branch=branch, exist_ok=True)
        info = api.repo_info(repo_id, revision=branch)
        present = [sibling.rfilename for sibling in info.siblings or []]
        stale = sorted(name for name in present if replaced(name, kind) and name not in files)
        operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(folder / name)) for name in files]
        operations += [CommitOperationDelete(path_in_repo=name) for name in stale]
        message = commit_message or f"Upload {_WHAT[kind]} with albert-lite {installed_version()}"
        commit = api.create_commit(repo_id, operations, commit_message=message, revision=branch, parent_commit=info.sha)
    except AlbertError:
        raise
    except Exception as err:
        raise _explain(err, repo_id, branch, endpoint) from None
    return {
        "repo_id": repo_id,
        "revision": branch,
        "commit": commit.oid,
        "commit_url": commit.commit_url,
        "url": f"{endpoint}/{repo_id}",
        "files": files,
        "deleted": stale,
    }


def push_saved(obj: Any, repo_id: str, kind: str, **options: Any) -> dict[str, Any]:
    """``obj.save_pretrained`` into a temporary directory, then push that in one commit (the push_to_hub methods)."""
    with tempfile.TemporaryDirectory(prefix="albert-push-") as tmp:
        obj.save_pretrained(tmp)
        return push_folder(tmp, repo_id, kind=kind, **options)


def replaced(path: str, kind: str) -> bool:
    """Whether a push of ``kind`` replaces the repository's file ``path`` (top-level files only)."""
    patterns = [p for part in KINDS[kind] for p in REPLACES[part]]
    return "/" not in path and any(fnmatch.fnmatchcase(path, p) for p in patterns)


def check_folder(folder: Path, kind: str = "all") -> list[str]:
    """The files of ``folder`` to push (relative POSIX paths, sorted), or CheckpointError naming the folder and what
    it lacks. Nothing is sent before this passes."""
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: {'not a directory' if folder.exists() else 'no such directory'}")
    if (folder / "run_config.json").is_file():
        model = folder / "model"
        if model.is_dir():
            raise CheckpointError(f"{folder} is a pretraining run, not a model: push {model} (its latest weights)")
        raise CheckpointError(f"{folder} is a pretraining run that has saved no model yet (it appears in {model})")
    if (folder / INCOMPLETE).exists():
        raise CheckpointError(
            f"{folder} holds an {INCOMPLETE} marker: the run writing it has not finished (or was interrupted); "
            "let it finish, or resume it, before pushing"
        )
    missing = []
    if "model" in KINDS[kind]:
        if not (folder / "config.json").is_file():
            missing.append("config.json")
        weights = [name for name in WEIGHTS if (folder / name).is_file()]
        if not weights:
            missing.append("weights (model.safetensors, pytorch_model.bin or a sharded index with its shards)")
        for index in (name for name in weights if name.endswith(".index.json")):
            absent = [shard for shard in _shards(folder / index) if not (folder / shard).is_file()]
            missing += [f"{shard} (named in {index})" for shard in absent]
    if "tokenizer" in KINDS[kind] and not any((folder / name).is_file() for name in TOKENIZER):
        missing.append("tokenizer (spiece.model or vocab.txt)")
    if missing:
        raise CheckpointError(f"{folder} is not a complete model: it has no {', no '.join(missing)}")
    return sorted(
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        and path.relative_to(folder).parts[0] not in NOT_PUSHED
    )


def _shards(index: Path) -> list[str]:
    try:
        return sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
    except (json.JSONDecodeError, KeyError, UnicodeDecodeError, AttributeError, TypeError) as err:
        raise CheckpointError(f"{index}: not a valid shard index ({err})") from None


def _explain(err: Exception, repo_id: str, branch: str, endpoint: str) -> AlbertError:
    """huggingface_hub's exceptions as one line naming the repository and what to do."""
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, RepositoryNotFoundError

    if isinstance(err, HFValidationError):
        return AlbertError(f"{repo_id}: not a valid hub id ({err})")
    status = getattr(getattr(err, "response", None), "status_code", None)
    server = getattr(err, "server_message", None) or ""
    said = f": {server.strip().splitlines()[0]}" if server.strip() else ""
    if status == 401 and not isinstance(err, RepositoryNotFoundError):
        return AlbertError(f"{endpoint} refused the token (HTTP 401{said}): pass a valid one (--token, HF_TOKEN)")
    if status == 403 or isinstance(err, RepositoryNotFoundError):
        return AlbertError(
            f"{repo_id}: the token may not write there (HTTP {status}{said}); a token with write access to the "
            "repository or its namespace is needed"
        )
    if status == 412:
        return AlbertError(f"{repo_id}: {branch} moved while pushing (another push landed first); push again")
    if isinstance(err, HfHubHTTPError):
        return AlbertError(f"{repo_id}: {endpoint} answered HTTP {status}{said}")
    said = " ".join(str(err).split())  # one line: huggingface_hub's messages span several
    if "xet" in said.lower():  # huggingface_hub uploads by Xet whenever hf_xet is installed, without asking the hub
        return AlbertError(
            f"{repo_id}: the Xet upload to {endpoint} failed ({said}); for a hub without Xet storage set "
            "HF_HUB_DISABLE_XET=1 to upload by LFS"
        )
    if isinstance(err, OSError) or any(c.__name__ == "TransportError" for c in type(err).__mro__):  # requests, httpx
        return AlbertError(f"cannot reach {endpoint} ({said}): check the network, or HF_ENDPOINT for another hub")
    return AlbertError(f"{repo_id}: push to {endpoint} failed ({type(err).__name__}: {said})")

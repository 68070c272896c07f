"""Hub ids wherever a checkpoint or tokenizer is named: ``albert/albert-base-v2`` → a local snapshot directory.

Everything goes through ``huggingface_hub`` (what transformers uses), so the cache is the standard one
(``HF_HOME`` / ``HF_HUB_CACHE``, shared with transformers: a model it downloaded loads here offline), ``HF_ENDPOINT``
mirrors, ``HF_HUB_OFFLINE=1`` and ``HF_TOKEN`` work as users know them. Only the files a loader needs are fetched:
``config.json``, one weight format (safetensors first, then ``pytorch_model.bin``, sharded or not) and the tokenizer
files; every file lands in one snapshot directory, which the directory loaders then read as they read any other.

A name that exists on disk is a local path (``~`` expanded). A missing name that can only be a path never goes to the
Hub, so a typo answers "no such directory" instead of a network error, and can never load someone else's repository
of that name: it starts with ``.``, ``/`` or ``~``, ends with a file suffix, is not a valid hub id (``runs/a/b``), or
sits in a folder that exists here (``runs/spamm`` beside ``runs/``; the released ``albert/…`` ids are exempt, since a
checkout of this project has an ``albert/`` folder). Any other missing name (``foo``, ``org/model``) is looked up on
the Hub, and its error says both: no such local directory, and what the Hub answered. The legacy short names of the
released checkpoints (``albert-base-v2``) are mapped to their ``albert/`` repositories here too, so a mirror or a
cache without the Hub's redirect still finds them. Every hub failure becomes one ``CheckpointError`` line naming the
repository and what to do.

A load reads every file at one commit: the first file fetched resolves ``revision`` (default ``main``) to a commit
(online from the Hub's answer, offline from the cache's refs, both inside huggingface_hub) and every later file is
fetched at that commit, so a push between two downloads cannot pair one commit's config with another's weights.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from albert.errors import CheckpointError

# The released checkpoints were first published under these names; the Hub now keeps them under "albert/".
LEGACY_NAMES = {
    f"albert-{size}-{version}": f"albert/albert-{size}-{version}"
    for size in ("base", "large", "xlarge", "xxlarge")
    for version in ("v1", "v2")
}

CONFIG = ("config.json",)
# Weight layouts in order of preference; an index file names its shards, which are fetched after it.
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER = ("spiece.model", "vocab.txt")  # SentencePiece (English ALBERT) or WordPiece (Chinese, BERT)
TOKENIZER_EXTRAS = ("tokenizer_config.json",)  # do_lower_case, keep_accents
# How an albert-lite fine-tuned model was trained and tuned: prediction uses its windows and its null threshold.
TRAINING_EXTRAS = ("finetune_config.json", "decoding.json")
MODEL_TYPES = ("albert", "bert")

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*(/[A-Za-z0-9][A-Za-z0-9_.\-]*)?$")
# What users hand a loader as a file (configs, weights, tokenizers, archives, data): no model repository is named so.
FILE_SUFFIXES = (".json", ".jsonl", ".model", ".vocab", ".txt", ".bin", ".safetensors", ".pt", ".pth", ".ckpt")
FILE_SUFFIXES += (".onnx", ".index", ".h5", ".zip", ".gz", ".tgz", ".tar", ".csv", ".tsv", ".yaml", ".yml")


@dataclass(frozen=True)
class HubOptions:
    """The hub arguments of transformers' from_pretrained: a branch, tag or commit; another cache folder; a token
    (default: ``HF_TOKEN`` or the one ``hf auth login`` stored); the cache only, no network."""

    revision: str | None = None
    cache_dir: str | None = None
    token: str | bool | None = None
    local_files_only: bool = False


def looks_like_repo_id(name: str) -> bool:
    return bool(_REPO_ID.match(name)) and ".." not in name and not name.lower().endswith(FILE_SUFFIXES)


def is_local_path(name: str | Path) -> bool:
    """True when ``name`` can only mean a path on disk (see the module docstring), whether or not it exists."""
    text = str(name)
    if not looks_like_repo_id(text):  # ./x, /x, ~/x, x.json, runs/a/b, C:\x
        return True
    # "runs/spamm" where runs/ exists is a typo of a local run; the released ids stay hub ids beside an albert/ folder
    return "/" in text and Path(text).parent.is_dir() and text not in LEGACY_NAMES.values()


def repo_id_of(name: str) -> str:
    return LEGACY_NAMES.get(name, name)


def expanded(name: str | Path) -> Path:
    """``name`` with ``~`` expanded (os.path's: ``~user`` of no such user stays as typed, where pathlib would raise)."""
    return Path(os.path.expanduser(name))


def is_remote(name: str | Path) -> bool:
    """True when ``name`` is not on disk and may be a hub id (it is not clearly a local path)."""
    return not expanded(name).exists() and not is_local_path(name)


def local_or_hub(name: str | Path, want: str, options: HubOptions | None = None, flag: str | None = None) -> Path:
    """A local path as it is (``~`` expanded), or a hub id resolved to a snapshot directory holding what ``want`` asks
    for: ``model`` (config + weights), ``tokenizer``, ``config``, or ``all`` (model + tokenizer). ``flag`` (e.g.
    ``--model``) is the caller's name for the argument, shown in the error."""
    local = expanded(name)
    if local.exists():
        return local
    if is_local_path(name):
        kind = "file" if str(name).lower().endswith(FILE_SUFFIXES) else "directory"
        raise CheckpointError(f"{f'{flag} ' if flag else ''}{name}: no such {kind}")
    return download(str(name), want, options or HubOptions(), flag)


def download(name: str, want: str, options: HubOptions, flag: str | None = None) -> Path:
    repo = repo_id_of(name)
    fetch = _Fetcher(repo, name, options, flag)
    directory = fetch.first(CONFIG, required=want != "tokenizer")
    if directory is not None:
        _check_model_type(directory / "config.json", repo)
    if want in ("model", "all"):
        found = fetch.first(WEIGHTS, required=True)
        directory = found
        for candidate in WEIGHTS:
            if candidate.endswith(".index.json") and (found / candidate).is_file():
                for shard in _shards(found / candidate):
                    fetch.one(shard)
    if want in ("tokenizer", "all"):
        directory = fetch.first(TOKENIZER, required=want == "tokenizer") or directory
        for extra in TOKENIZER_EXTRAS:
            fetch.first((extra,), required=False)
    if want == "all":
        for extra in TRAINING_EXTRAS:
            fetch.first((extra,), required=False)
    if want == "all" and fetch.first(("modules.json",), required=False) is not None:
        from albert import sbert  # a sentence-transformers repository: its pooling config says how to embed

        for path in sbert.pooling_config_files(directory):
            fetch.first((path,), required=False)
    assert directory is not None
    return directory


def _shards(index_path: Path) -> list[str]:
    try:
        return sorted(set(json.loads(index_path.read_text(encoding="utf-8"))["weight_map"].values()))
    except (json.JSONDecodeError, KeyError, UnicodeDecodeError, AttributeError) as err:
        raise CheckpointError(f"{index_path}: not a valid shard index ({err})") from None


def _check_model_type(path: Path, repo: str) -> None:
    try:
        model_type = json.loads(path.read_text(encoding="utf-8")).get("model_type")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        raise CheckpointError(f"{repo}: config.json is not a JSON object") from None
    if model_type is not None and model_type not in MODEL_TYPES:
        raise CheckpointError(
            f"{repo} is a {model_type!r} model, not ALBERT or BERT: albert-lite loads model_type 'albert' "
            "(and converts 'bert' with `albert convert --from bert`)"
        )


def _reachable(endpoint: str) -> bool:
    """Whether a TCP connection to the endpoint's host opens. True when a proxy is configured (the proxy decides
    what is reachable, not a direct connection) or the host cannot be read from the URL."""
    import socket
    from urllib.parse import urlsplit

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")):
        return True
    url = urlsplit(endpoint)
    if not url.hostname:
        return True
    port = url.port or (443 if url.scheme == "https" else 80)
    timeout = float(os.environ.get("HF_HUB_ETAG_TIMEOUT") or 10)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError:  # refused, unreachable, no DNS, timed out
        return False
    return True


class _Fetcher:
    """hf_hub_download per file, all at the commit the first one resolved, with huggingface_hub's exceptions turned
    into one line each."""

    def __init__(self, repo: str, name: str, options: HubOptions, flag: str | None = None):
        from huggingface_hub import constants

        self.repo, self.name, self.options, self.flag = repo, name, options, flag
        self.commit: str | None = None  # pinned by the first file fetched
        self.endpoint = constants.ENDPOINT
        self.offline = options.local_files_only or constants.HF_HUB_OFFLINE
        self.cache = options.cache_dir or constants.HF_HUB_CACHE
        # Nothing listening at the endpoint (no network, a wrong HF_ENDPOINT): huggingface_hub would retry each file
        # five times with backoff (seconds each) before falling back to the cache; one probe decides it at once.
        self.unreachable = not self.offline and not _reachable(self.endpoint)

    def one(self, filename: str) -> Path:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(
            self.repo,
            filename,
            revision=self.commit or self.options.revision,
            cache_dir=self.options.cache_dir,
            token=self.options.token,
            local_files_only=self.options.local_files_only or self.unreachable,
        )
        snapshot = Path(path).parent
        for _ in range(filename.count("/")):  # a file in a subfolder: its snapshot is further up
            snapshot = snapshot.parent
        # huggingface_hub keeps each commit's files in snapshots/<commit>/: the folder's name is the commit the
        # revision resolved to (the Hub's X-Repo-Commit online, refs/<revision> offline); later files come from it
        self.commit = self.commit or snapshot.name
        return snapshot

    def first(self, candidates: tuple[str, ...], required: bool) -> Path | None:
        """The snapshot directory after fetching the first candidate the repository has."""
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

        not_cached = False
        for filename in candidates:
            try:
                return self.one(filename)
            except LocalEntryNotFoundError:  # offline or unreachable, and this file is not in the cache
                not_cached = True
            except EntryNotFoundError:  # the repository does not have this file: try the next one
                continue
            except Exception as err:
                raise self.explain(err) from None
        if not required:
            return None
        wanted = " or ".join(candidates)
        if not_cached and self.offline:
            raise CheckpointError(
                f"{self._lead()}{wanted} is not in the cache ({self.cache}) and downloads are off "
                f"({'local_files_only' if self.options.local_files_only else 'HF_HUB_OFFLINE=1'}): run once with "
                "network access, or point HF_HOME / --cache-dir at a cache that has it"
            )
        if not_cached:
            raise CheckpointError(
                f"{self._lead()}cannot reach {self.endpoint} and {wanted} is not in the cache ({self.cache}): check "
                "the network (or HF_ENDPOINT for a mirror), or set HF_HUB_OFFLINE=1 to use the cache only"
            )
        raise CheckpointError(
            f"{self.repo}{self._at()} has no {wanted}: it is not a model repository albert-lite reads"
        )

    def _at(self) -> str:
        return f" (revision {self.options.revision})" if self.options.revision else ""

    def _shown(self) -> str:
        shown = self.repo if self.repo == self.name else f"{self.name} ({self.repo})"
        return f"{self.flag} {shown}" if self.flag else shown

    def _lead(self) -> str:
        """Until a first file came, the name may have meant a local directory as well as a repository: say both."""
        if self.commit is None:
            return f"{self._shown()}: no such local directory, and "
        return f"{self.repo}: "

    def explain(self, err: Exception) -> CheckpointError:
        from huggingface_hub.errors import (
            GatedRepoError,
            HfHubHTTPError,
            HFValidationError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        shown = self._shown()
        if isinstance(err, GatedRepoError):
            return CheckpointError(
                f"{shown} is gated: accept its conditions on {self.endpoint}/{self.repo} and pass a token "
                "(--token, HF_TOKEN or `hf auth login`) of an account that has access"
            )
        if isinstance(err, RepositoryNotFoundError):
            return CheckpointError(
                f"{shown}: no such local directory, and no repository of that name on {self.endpoint} (or it is "
                "private: pass a token with --token / HF_TOKEN)"
            )
        if isinstance(err, RevisionNotFoundError):
            return CheckpointError(
                f"{shown}: no revision {self.options.revision!r} (expected a branch, tag or commit of the repository)"
            )
        if isinstance(err, HFValidationError):
            return CheckpointError(f"{self._shown()}: neither a local path nor a valid hub id ({err})")
        if isinstance(err, HfHubHTTPError):
            status = getattr(getattr(err, "response", None), "status_code", "?")
            return CheckpointError(f"{self._lead()}{self.endpoint} answered HTTP {status}; try again later")
        return CheckpointError(f"{self._lead()}download from {self.endpoint} failed ({type(err).__name__}: {err})")


def options_from(kwargs: dict[str, Any]) -> HubOptions:
    """Pop the hub arguments out of a from_pretrained ``**kwargs``."""
    names = ("revision", "cache_dir", "token", "local_files_only")
    return HubOptions(**{k: kwargs.pop(k) for k in names if k in kwargs})

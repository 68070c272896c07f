"""Checkpoint directories on disk: read a transformers-layout directory, write one atomically.

A directory holds ``config.json`` and the weights as ``model.safetensors`` (or ``pytorch_model.bin``, or a sharded
set with an ``*.index.json``), with transformers' parameter names, so transformers and albert-lite read each
other's directories. Every file is written to a temporary name and renamed into place, so an interrupted save never
leaves a half-written file under the real name.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from albert.errors import CheckpointError
from albert.outputs import file_mode
from albert.readers import json_file

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then rename the temporary file over ``path`` (same directory, so rename is atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, file_mode())  # mkstemp's 0600 would hide the model from other accounts
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def save_weights(directory: str | Path, state: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    # safetensors refuses tensors that share memory or are non-contiguous: give it plain copies where needed.
    plain = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    atomic_write(Path(directory) / "model.safetensors", lambda tmp: save_file(plain, tmp, metadata={"format": "pt"}))


def read_config_dict(directory: Path) -> dict[str, Any]:
    path = directory / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{directory}: no config.json (expected a checkpoint directory with config.json)")
    return json_file(path, CheckpointError)


def read_weight_file(path: str | Path) -> dict[str, torch.Tensor]:
    """One .safetensors or .bin file."""
    return _read_one(Path(path))


def _read_one(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: weight file is missing") from None
    except Exception as err:  # safetensors and torch report corruption with many exception types
        raise CheckpointError(f"{path}: cannot read weights, the file is truncated or corrupt ({err})") from None


def read_weights(directory: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint directory, with the names they were saved under."""
    directory = Path(directory)
    for name in INDEX_FILES:
        index_path = directory / name
        if index_path.is_file():
            try:
                weight_map = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
            except (json.JSONDecodeError, KeyError, UnicodeDecodeError) as err:
                raise CheckpointError(f"{index_path}: not a valid shard index ({err})") from None
            state: dict[str, torch.Tensor] = {}
            for shard in sorted(set(weight_map.values())):
                state.update(_read_one(directory / shard))
            return state
    for name in WEIGHT_FILES:
        if (directory / name).is_file():
            return _read_one(directory / name)
    raise CheckpointError(f"{directory}: no weights found (expected one of {', '.join(WEIGHT_FILES + INDEX_FILES)})")


def fingerprint(directory: str | Path, weights: bool = True) -> str:
    """16 hex digits of sha256 over what decides a directory's answers: the bytes of its weight file(s) (the files
    ``read_weights`` reads), the head (config.json's architectures, id2label, problem_type) and the tokenizer
    (``*.model`` / vocab.txt bytes, tokenizer_config.json). ``albert export`` records it in the ONNX metadata, so an
    export of another model of the same shape is refused (albert/infer.py). ``weights=False`` leaves the weights out,
    for a directory deployed with its ONNX file only. Hashing reads the weights once, cheap next to loading them."""
    import hashlib

    directory = Path(directory)
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:  # each part as label, length, bytes: no two inputs hash alike
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)

    def add_file(label: str, path: Path) -> None:
        file_digest = hashlib.sha256()  # read in blocks (hashlib.file_digest is Python 3.11+)
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                file_digest.update(block)
        add(label, file_digest.digest())

    if weights:
        index = next((directory / n for n in INDEX_FILES if (directory / n).is_file()), None)
        if index is not None:
            weight_map = json_file(index, CheckpointError).get("weight_map") or {}
            files = [directory / shard for shard in sorted(set(weight_map.values()))]
        else:
            files = [directory / n for n in WEIGHT_FILES if (directory / n).is_file()][:1]
        if not files:
            raise CheckpointError(f"{directory}: no weights to fingerprint (expected one of {', '.join(WEIGHT_FILES)})")
        for path in files:
            if not path.is_file():
                raise CheckpointError(f"{path}: weight file is missing")
            add_file("weights", path)
    config = read_config_dict(directory)
    head = {k: config.get(k) for k in ("architectures", "id2label", "problem_type")}
    add("head", json.dumps(head, sort_keys=True).encode())
    for path in sorted(directory.glob("*.model")) + [directory / "vocab.txt"]:
        if path.is_file():
            add_file(f"tokenizer {path.name}", path)
    tokenizer_config = directory / "tokenizer_config.json"
    if tokenizer_config.is_file():
        add("tokenizer_config", json.dumps(json_file(tokenizer_config, CheckpointError), sort_keys=True).encode())
    return digest.hexdigest()[:16]

"""What is installed: albert-lite's own version, and its optional dependencies. These are imported where they are
used, and a missing one is an error that names the extra to install (`pip install 'albert-lite[train]'`), never a
silent change of behaviour.

    train  scikit-learn, seqeval, rouge-score, matplotlib   metrics and curves (finetune, evaluate, pretrain)
    tf     google-crc32c, cramjam                           reading TensorFlow checkpoints (convert, inspect)
    zh     jieba                                            Chinese whole-word boundaries (prepare)
    onnx   onnx, onnxruntime                                export, predict/serve --onnx
    serve  fastapi, uvicorn, prometheus-client              serve
    tensorboard  tensorboard                                --report-to tensorboard (finetune, pretrain)
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from albert.errors import AlbertError

EXTRA_OF = {
    "sklearn": "train",
    "scipy": "train",  # comes with scikit-learn
    "seqeval": "train",
    "rouge_score": "train",
    "matplotlib": "train",
    "google_crc32c": "tf",
    "cramjam": "tf",
    "jieba": "zh",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "fastapi": "serve",
    "uvicorn": "serve",
    "prometheus_client": "serve",
    "tensorboard": "tensorboard",
}


class MissingExtra(AlbertError):
    """An optional dependency that this use needs is not installed."""


def _missing(module: str, purpose: str) -> MissingExtra:
    top = module.split(".")[0]
    return MissingExtra(f"{purpose} needs {top}: pip install 'albert-lite[{EXTRA_OF.get(top, 'all')}]'")


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` (e.g. "sklearn.metrics"), or raise MissingExtra naming what it is for and the extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise _missing(module, purpose) from None


def check(module: str, purpose: str) -> None:
    """Raise MissingExtra as `require` would if ``module``'s package is not installed, without importing it: a run
    refuses early without paying for the import (scikit-learn, matplotlib and rouge-score are slow to import, and a
    run needs them only when it evaluates or draws)."""
    if importlib.util.find_spec(module.split(".")[0]) is None:
        raise _missing(module, purpose)


def installed_version() -> str:
    """The installed albert-lite's version, from its metadata (the modules below the package cannot import it for
    ``albert.__version__``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("albert-lite")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"

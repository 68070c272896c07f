"""Running a model over many rows fast: the engine layer under tasks, prediction, serving and evaluation.

1. Rows are sorted by length and cut into batches by a token budget (rows × longest row ≤ ``max_tokens``, at most
   ``max_batch`` rows), so almost no padding is computed and short texts run in large batches.
2. A backend is any ``forward(inputs) -> outputs`` over NumPy arrays: ``TorchForward`` (a model under
   ``torch.inference_mode``) or ``OnnxForward`` (an onnxruntime session on an exported model), so every caller runs
   the same code whichever engine computes.
3. Results come back per row, in input order; token-level outputs are trimmed to the row's own length.

Task modules (albert/tasks/) and infer.py sit above this module; it imports neither.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from albert.batching import encoder_inputs, forward_passes
from albert.errors import AlbertError, CheckpointError

Forward = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]

# Per batch: rows × longest row. On a CPU small batches win: at 16,384 tokens the FFN's temporaries (~200 MB for
# albert-base) are mapped and unmapped on every call, which a smaller budget avoids (the sweep: `python
# benchmarks/predict.py --budget-sweep`, in docs/performance.md). On a GPU larger batches keep the device busy; 16,384
# there is a choice, not a measurement (no GPU was available to tune it).
DEFAULT_MAX_TOKENS = 1024
DEFAULT_MAX_TOKENS_GPU = 16384
DEFAULT_MAX_BATCH = 256
# What one more forward pass costs, in padded tokens, as a share of the budget: the rows of a call are cut into
# passes where that saves more padding than this (batching.forward_passes). An eighth (128 tokens at 1,024) is a
# choice: no results file compares it with other values.
PASS_OVERHEAD = 1 / 8

# Which outputs have one value per token (trimmed to each row's length) for each model class.
TOKEN_OUTPUTS = {
    "AlbertModel": ("last_hidden_state",),
    "AlbertForTokenClassification": ("logits",),
    "AlbertForQuestionAnswering": ("start_logits", "end_logits"),
    "AlbertForQuestionAnsweringWithAnswerability": ("start_logits", "end_logits"),
    "AlbertForMaskedLM": ("logits",),
}
# Outputs a backend returns for each class (ONNX export writes the same names).
OUTPUTS = {
    "AlbertModel": ("last_hidden_state", "pooler_output"),
    "AlbertForSequenceClassification": ("logits",),
    "AlbertForTokenClassification": ("logits",),
    "AlbertForQuestionAnswering": ("start_logits", "end_logits"),
    "AlbertForQuestionAnsweringWithAnswerability": ("start_logits", "end_logits", "answerability_logits"),
    "AlbertForMultipleChoice": ("logits",),
    "AlbertForMaskedLM": ("logits",),
}


def plan_batches(lengths: Sequence[int], max_tokens: int = DEFAULT_MAX_TOKENS, max_batch: int = DEFAULT_MAX_BATCH):
    """Row indices grouped into batches: sorted by length (stable), each batch within the token budget."""
    order = sorted(range(len(lengths)), key=lambda r: lengths[r])
    batches: list[list[int]] = []
    current: list[int] = []
    for r in order:  # ascending, so row r is the longest of the batch it joins
        if current and ((len(current) + 1) * lengths[r] > max_tokens or len(current) >= max_batch):
            batches.append(current)
            current = []
        current.append(r)
    if current:
        batches.append(current)
    return batches


def plan_passes(lengths: Sequence[int], max_tokens: int = DEFAULT_MAX_TOKENS, max_batch: int = DEFAULT_MAX_BATCH):
    """Row indices grouped into forward passes: sorted by length and cut where a cut saves more padding than a pass
    costs (the cheapest such partition, batching.forward_passes), each pass within the token budget."""
    return forward_passes(range(len(lengths)), lengths, max_tokens, PASS_OVERHEAD * max_tokens, max_batch)


class TorchForward:
    """A PyTorch model as a NumPy-in, NumPy-out backend."""

    def __init__(self, model: torch.nn.Module, device: str | torch.device | None = None):
        self.model = model.eval()
        self.device = torch.device(device) if device else next(model.parameters()).device
        self.kind = type(model).__name__
        self.token_outputs = TOKEN_OUTPUTS.get(self.kind, ())

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            out = self.model(**{k: torch.from_numpy(v).to(self.device) for k, v in inputs.items()})
        return {
            name: getattr(out, name).float().cpu().numpy()
            for name in OUTPUTS.get(self.kind, ("logits",))
            if getattr(out, name, None) is not None
        }


class OnnxForward:
    """An exported model (albert export) on onnxruntime's CPU provider."""

    def __init__(self, path: str | Path, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise AlbertError("ONNX inference needs onnxruntime: pip install 'albert-lite[onnx]'") from None
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: no such ONNX file")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types for unreadable models
            raise CheckpointError(f"{path}: not a loadable ONNX model ({err})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        self.kind = meta.get("albert_class", "")
        self.exported_config = json.loads(meta["albert_config"]) if "albert_config" in meta else {}
        # which directory it was exported from (albert/checkpoint.py fingerprint); None: an older export, unchecked
        self.fingerprint = meta.get("albert_fingerprint")
        self.fingerprint_without_weights = meta.get("albert_fingerprint_without_weights")
        self.token_outputs = TOKEN_OUTPUTS.get(self.kind, ())
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {k: v.astype(np.int64, copy=False) for k, v in inputs.items() if k in self.input_names}
        return dict(zip(self.output_names, self.session.run(None, feed), strict=True))


def as_forward(model_or_forward, device=None):
    return TorchForward(model_or_forward, device) if isinstance(model_or_forward, torch.nn.Module) else model_or_forward


def pad_batch(
    ids: Sequence[Sequence[int]], types: Sequence[Sequence[int]] | None, pad_id: int
) -> dict[str, np.ndarray]:
    return encoder_inputs(ids, types, pad_id)


def run_rows(
    forward,
    ids: Sequence[Sequence[int]],
    types: Sequence[Sequence[int]] | None,
    pad_id: int,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    max_batch: int = DEFAULT_MAX_BATCH,
    progress: bool = False,
) -> dict[str, list[np.ndarray]]:
    """Run every row through ``forward``; output name → one array per row, in input order."""
    forward = as_forward(forward)
    token_level = set(getattr(forward, "token_outputs", ()))
    results: dict[str, list[Any]] = {}
    batches = plan_passes([len(x) for x in ids], max_tokens, max_batch)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc="predict", unit="batch", leave=False)
    for rows in batches:
        batch = pad_batch([ids[r] for r in rows], [types[r] for r in rows] if types is not None else None, pad_id)
        for name, array in forward(batch).items():
            store = results.setdefault(name, [None] * len(ids))
            for b, r in enumerate(rows):
                store[r] = array[b, : len(ids[r])] if name in token_level else array[b]
    return results


# ----------------------------------------------------------------------------------------------------------------
# Task functions: the one implementation of each prediction, whatever calls it
# ----------------------------------------------------------------------------------------------------------------

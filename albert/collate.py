"""Collation, written once: rows of different lengths become one padded array.

Every batch in albert-lite (fine-tuning for each task, pretraining, prediction on PyTorch or onnxruntime) is built
from ``pad_rows``; ``encoder_inputs`` adds the attention mask and segment ids an ALBERT encoder reads.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def pad_rows(rows: Sequence[Sequence[float]], value: float = 0, dtype=np.int64, width: int | None = None) -> np.ndarray:
    """(len(rows), width) array, each row at its start and ``value`` after it; width defaults to the longest row."""
    width = max((len(r) for r in rows), default=0) if width is None else width
    out = np.full((len(rows), width), value, dtype=dtype)
    for b, row in enumerate(rows):
        out[b, : len(row)] = row
    return out


def encoder_inputs(
    ids: Sequence[Sequence[int]], types: Sequence[Sequence[int]] | None, pad_id: int, width: int | None = None
) -> dict[str, np.ndarray]:
    """input_ids, attention_mask (1 on real tokens) and token_type_ids (0 where ``types`` is None) as int64, padded
    to the longest row (or to ``width``)."""
    input_ids = pad_rows(ids, pad_id, width=width)
    width = input_ids.shape[1]
    segments = pad_rows(types, width=width) if types is not None else np.zeros_like(input_ids)
    return {
        "input_ids": input_ids,
        "attention_mask": pad_rows([[1] * len(r) for r in ids], width=width),
        "token_type_ids": segments,
    }


def as_tensors(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(array) for name, array in arrays.items()}

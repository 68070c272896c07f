"""Fill-mask: what a masked-LM head (a pretraining run's model, AlbertForMaskedLM, AlbertForPreTraining) puts where
a text says [MASK]. Not trained by `albert finetune` (pretraining trains the head); predicted, served and exported.

The answer is transformers' fill-mask pipeline's, field for field: per mask, the top-k candidates as
``{score, token, token_str, sequence}`` (score: the softmax over the whole vocabulary at that position, read at the
``targets`` only when they are given; sequence: the text with that mask filled, decoded as the pipeline decodes it);
a text with one mask gets a list, a text with several a list per mask. Options (``top_k``, ``targets``) are the
predictor's (``--top-k``, ``--targets`` of `albert predict` and `albert serve`).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from typing_extensions import TypedDict  # pydantic (the served schema) needs it on Python < 3.12

from albert.engines import run_rows
from albert.errors import AlbertError
from albert.tasks.base import Task

log = logging.getLogger("albert")

MASKED_LM = ("AlbertForMaskedLM", "AlbertForPreTraining")
# Tokens run per model call: the head's output is (tokens × vocabulary) floats, 245 MB at 2,048 tokens of a
# 30,000-piece vocabulary; only the rows at masks are kept.
TOKENS_PER_CALL = 2048


class Fill(TypedDict):
    score: float
    token: int
    token_str: str
    sequence: str


def target_ids(tokenizer, targets: list[str]) -> list[int]:
    """Vocabulary ids of ``targets`` as the pipeline finds them: the piece itself ("▁day", "day"), else the first
    piece of its encoding (with a warning that says which), distinct, in the order given."""
    ids: list[int] = []
    for target in targets:
        [found] = tokenizer.convert_tokens_to_ids([target])
        if found == tokenizer.unk_token_id and target != tokenizer.unk_token:
            pieces = tokenizer(target, add_special_tokens=False)["input_ids"]
            if not pieces:
                log.warning("target %r has no piece in the vocabulary; left out", target)
                continue
            found = pieces[0]
            log.warning(
                "target %r is not one piece; using its first, %r", target, *tokenizer.convert_ids_to_tokens([found])
            )
        if found not in ids:
            ids.append(found)
    if not ids:
        raise AlbertError(f"--targets {' '.join(targets)}: none is in the vocabulary")
    return ids


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(-1, keepdims=True)


class FillMask(Task):
    """The top-k fills of every [MASK] in a text."""

    name, trainable, pipeline_tag = "fill_mask", False, "fill-mask"
    architectures = MASKED_LM
    result = list[Fill] | list[list[Fill]]
    route, summary, response = "fill-mask", "Fill each [MASK] of a text", "fills"

    def model_class(self, architecture: str) -> str:
        return "AlbertForMaskedLM"  # a pretraining checkpoint's MLM head, without the SOP head it does not need

    def predict(self, predictor, items: list[str]) -> list[Any]:
        return self.fill(predictor, items, predictor.options.get("top_k", 5), predictor.options.get("targets"))

    def fill(self, predictor, items: list[str], top_k: int, targets: list[str] | None) -> list[Any]:
        """The fills of ``items`` with these options (passed in, never stored: concurrent calls do not mix)."""
        tok = predictor.tokenizer
        if top_k < 1:
            raise AlbertError(f"top_k {top_k}: at least 1 candidate per mask")
        if tok.mask_token_id is None:
            raise AlbertError(f"{predictor.model_dir}: the tokenizer has no mask token")
        ids = tok(list(items), add_special_tokens=True)["input_ids"]
        for text, row in zip(items, ids, strict=True):
            if tok.mask_token_id not in row:
                raise AlbertError(f"no {tok.mask_token} in the text {text[:80]!r}: fill-mask fills {tok.mask_token}")
            if len(row) > predictor.max_length:  # a mask past a cut would be lost: refuse, never truncate
                raise AlbertError(
                    f"the text {text[:80]!r} is {len(row)} tokens, more than {predictor.max_length} "
                    f"({predictor.length_flag})"
                )
        chosen = np.array(target_ids(tok, targets)) if targets else None
        results = []
        start = 0
        while start < len(ids):  # slices of about TOKENS_PER_CALL tokens: the vocabulary-wide rows stay small
            end, tokens = start, 0
            while end < len(ids) and (end == start or tokens + len(ids[end]) <= TOKENS_PER_CALL):
                tokens += len(ids[end])
                end += 1
            out = run_rows(predictor.forward, ids[start:end], None, tok.pad_token_id or 0, **predictor.batching)
            for row, logits in zip(ids[start:end], out["logits"], strict=True):
                results.append(self._fills(tok, row, logits, top_k, chosen))
            start = end
        return results

    @staticmethod
    def _fills(tok, row: list[int], logits: np.ndarray, top_k: int, chosen: np.ndarray | None) -> list:
        masks = [p for p, i in enumerate(row) if i == tok.mask_token_id]
        single = len(masks) == 1
        per_mask = []
        for position in masks:
            probs = softmax(logits[position])
            if chosen is not None:
                probs = probs[chosen]
            order = np.argsort(-probs, kind="stable")[: min(top_k, len(probs))]
            fills = []
            for k in order:
                token = int(chosen[k]) if chosen is not None else int(k)
                filled = [token if p == position else i for p, i in enumerate(row)]
                filled = [i for i in filled if i != tok.pad_token_id]  # after filling in, as the pipeline does
                fills.append(
                    Fill(
                        score=round(float(probs[k]), 6),
                        token=token,
                        token_str=tok.decode([token]),
                        # the pipeline drops special tokens from one mask's sequence and keeps them with several,
                        # where dropping the other [MASK]s would read as if they were not there
                        sequence=tok.decode(filled, skip_special_tokens=single),
                    )
                )
            per_mask.append(fills)
        return per_mask[0] if single else per_mask

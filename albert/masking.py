"""Pretraining instances as pure functions: sentence-order pairs and whole-word n-gram masking.

Both follow google-research/albert create_pretraining_data.py (HEAD), with every random draw taken from the
``np.random.Generator`` passed in. Three deliberate departures, all fixes:

* Every random draw comes from that generator; the reference drew n-gram lengths from the global, unseeded
  ``np.random``, so its data could not be reproduced.
* A chunk of a single segment is split inside that segment to make the pair. The reference took segment B from a
  random *other* document there and labelled it "swapped", an NSP-style negative inside SOP.
* The 10 % random replacement draws from the non-special vocabulary; the reference could insert [CLS] or <pad>.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_NGRAM = 3  # with p(n) ∝ 1/n: 6/11, 3/11, 2/11 (paper §4.1; the reference's favor_shorter_ngram=True)


@dataclass
class Pair:
    """Two consecutive stretches of one document; swapped=True means B comes first in the instance (SOP label 1)."""

    a: list[int]
    b: list[int]
    a_starts: list[bool]
    b_starts: list[bool]
    swapped: bool


def sop_spans(
    bounds: np.ndarray | list[int], max_num_tokens: int, rng: np.random.Generator, short_seq_prob: float = 0.1
) -> list[tuple[int, int, int, int, bool]]:
    """Split one document into SOP pairs, as token ranges: ``bounds`` are the document's segment (sentence) offsets
    into its token array (n + 1 numbers for n segments). Returns (a_lo, a_hi, b_lo, b_hi, swapped) per pair, the
    ranges already truncated and, when swapped, exchanged. A and B are each contiguous, so a pair is five integers
    however long it is (what keeps an epoch of a billion tokens small).

    ``max_num_tokens`` is the sequence length minus the three special tokens. With probability ``short_seq_prob`` a
    chunk aims for a random shorter length (the reference's short_seq_prob), so the model also sees short inputs.
    """
    bounds = [int(x) for x in bounds]
    pairs: list[tuple[int, int, int, int, bool]] = []
    target = _target_length(max_num_tokens, short_seq_prob, rng)
    first, length = 0, 0  # the chunk is segments [first, i]
    for i in range(len(bounds) - 1):
        length += bounds[i + 1] - bounds[i]
        if i == len(bounds) - 2 or length >= target:
            pair = _pair_from_chunk(bounds[first : i + 2], max_num_tokens, rng)
            if pair is not None:
                pairs.append(pair)
            first, length = i + 1, 0
            target = _target_length(max_num_tokens, short_seq_prob, rng)
    return pairs


def sop_pairs(
    segments: list[np.ndarray],
    starts: list[np.ndarray],
    max_num_tokens: int,
    rng: np.random.Generator,
    short_seq_prob: float = 0.1,
) -> list[Pair]:
    """sop_spans on a document given as segment arrays, returning the pairs' tokens and word-start flags."""
    tokens = np.concatenate(segments) if segments else np.zeros(0, dtype=np.int64)
    flags = np.concatenate(starts) if starts else np.zeros(0, dtype=bool)
    bounds = np.concatenate([[0], np.cumsum([len(x) for x in segments])])
    return [
        Pair(list(tokens[a0:a1]), list(tokens[b0:b1]), list(flags[a0:a1]), list(flags[b0:b1]), swapped)
        for a0, a1, b0, b1, swapped in sop_spans(bounds, max_num_tokens, rng, short_seq_prob)
    ]


def _target_length(max_num_tokens: int, short_seq_prob: float, rng: np.random.Generator) -> int:
    if rng.random() < short_seq_prob:
        return int(rng.integers(2, max_num_tokens + 1))
    return max_num_tokens


def _pair_from_chunk(bounds: list[int], max_num_tokens: int, rng: np.random.Generator):
    """A chunk's segments (their offsets ``bounds``) → (a_lo, a_hi, b_lo, b_hi, swapped), or None."""
    if len(bounds) >= 3:  # two or more segments
        a_end = int(rng.integers(1, len(bounds) - 1))  # segments [0, a_end) form A, the rest B
        a0, a1, b0, b1 = bounds[0], bounds[a_end], bounds[a_end], bounds[-1]
    else:
        if bounds[1] - bounds[0] < 2:
            return None  # a one-token document cannot make a pair
        cut = int(rng.integers(1, bounds[1] - bounds[0]))
        a0, a1, b0, b1 = bounds[0], bounds[0] + cut, bounds[0] + cut, bounds[1]
    # The reference's truncate_seq_pair: drop from the longer side, from the front or the back at random.
    while (a1 - a0) + (b1 - b0) > max_num_tokens:
        front = rng.random() < 0.5
        if a1 - a0 > b1 - b0:
            a0, a1 = (a0 + 1, a1) if front else (a0, a1 - 1)
        else:
            b0, b1 = (b0 + 1, b1) if front else (b0, b1 - 1)
    if a1 <= a0 or b1 <= b0:
        return None
    if rng.random() < 0.5:
        return b0, b1, a0, a1, True
    return a0, a1, b0, b1, False


@dataclass
class Masked:
    input_ids: list[int]
    positions: list[int]  # where predictions are made, in increasing order
    labels: list[int]  # the original ids at those positions
    ngrams: list[int]  # the length in words of each n-gram masked, in the order chosen


def mask_ngrams(
    ids: list[int],
    word_starts: list[bool],
    rng: np.random.Generator,
    *,
    mask_id: int,
    vocab_size: int,
    special_ids: frozenset[int],
    max_predictions: int = 20,
    masked_lm_prob: float = 0.15,
    max_ngram: int = MAX_NGRAM,
) -> Masked:
    """Whole-word n-gram masking (the reference's create_masked_lm_predictions).

    Words are runs of pieces that begin at a ``word_starts`` piece; special tokens are never candidates. The budget
    is ``min(max_predictions, max(1, round(masked_lm_prob * len(ids))))`` tokens. Each shuffled word start draws an
    n-gram length n ≤ max_ngram with p(n) ∝ 1/n, shortened while it would overflow the budget, skipped if it
    overlaps what is already masked. Each chosen token becomes [MASK] (80 %), stays (10 %) or a random id (10 %).
    """
    words: list[list[int]] = []
    for i, token in enumerate(ids):
        if token in special_ids:
            continue
        if words and not word_starts[i] and words[-1][-1] == i - 1:
            words[-1].append(i)
        else:
            words.append([i])
    budget = min(max_predictions, max(1, int(round(len(ids) * masked_lm_prob))))
    p = (1.0 / np.arange(1, max_ngram + 1)) / (1.0 / np.arange(1, max_ngram + 1)).sum()
    output = list(ids)
    covered: set[int] = set()
    positions: list[int] = []
    ngrams: list[int] = []
    for w in rng.permutation(len(words)):
        if len(positions) >= budget:
            break
        longest = min(max_ngram, len(words) - w)
        n = int(rng.choice(longest, p=p[:longest] / p[:longest].sum())) + 1
        chosen = [i for word in words[w : w + n] for i in word]
        while len(positions) + len(chosen) > budget and n > 1:  # try shorter n-grams before giving up
            n -= 1
            chosen = [i for word in words[w : w + n] for i in word]
        if len(positions) + len(chosen) > budget or covered.intersection(chosen):
            continue
        ngrams.append(n)
        for i in chosen:
            covered.add(i)
            positions.append(i)
            roll = rng.random()
            if roll < 0.8:
                output[i] = mask_id
            elif roll >= 0.9:
                output[i] = _random_token(rng, vocab_size, special_ids)
    positions.sort()
    return Masked(output, positions, [ids[i] for i in positions], ngrams)


def _random_token(rng: np.random.Generator, vocab_size: int, special_ids: frozenset[int]) -> int:
    while True:
        token = int(rng.integers(vocab_size))
        if token not in special_ids:
            return token

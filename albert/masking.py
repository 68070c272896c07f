"""Pretraining instances as pure functions: sentence-order pairs and whole-word n-gram masking.

Both follow google-research/albert create_pretraining_data.py (HEAD), with every random draw taken from the
``np.random.Generator`` passed in (the reference drew n-gram lengths from the global, unseeded ``np.random``, so its
data could not be reproduced). Two deliberate departures, both fixes:

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


def sop_pairs(
    segments: list[np.ndarray],
    starts: list[np.ndarray],
    max_num_tokens: int,
    rng: np.random.Generator,
    short_seq_prob: float = 0.1,
) -> list[Pair]:
    """Split one document (a list of tokenised segments, i.e. sentences) into SOP pairs.

    ``max_num_tokens`` is the sequence length minus the three special tokens. With probability ``short_seq_prob`` a
    chunk aims for a random shorter length (the reference's short_seq_prob), so the model also sees short inputs.
    """
    pairs: list[Pair] = []
    target = _target_length(max_num_tokens, short_seq_prob, rng)
    chunk: list[int] = []  # indices of the segments in the current chunk
    length = 0
    for i, segment in enumerate(segments):
        chunk.append(i)
        length += len(segment)
        if i == len(segments) - 1 or length >= target:
            pair = _pair_from_chunk([segments[j] for j in chunk], [starts[j] for j in chunk], max_num_tokens, rng)
            if pair is not None:
                pairs.append(pair)
            chunk, length = [], 0
            target = _target_length(max_num_tokens, short_seq_prob, rng)
    return pairs


def _target_length(max_num_tokens: int, short_seq_prob: float, rng: np.random.Generator) -> int:
    if rng.random() < short_seq_prob:
        return int(rng.integers(2, max_num_tokens + 1))
    return max_num_tokens


def _pair_from_chunk(segments, starts, max_num_tokens: int, rng: np.random.Generator) -> Pair | None:
    if len(segments) >= 2:
        a_end = int(rng.integers(1, len(segments)))  # segments [0, a_end) form A, the rest B
        a, a_s = np.concatenate(segments[:a_end]), np.concatenate(starts[:a_end])
        b, b_s = np.concatenate(segments[a_end:]), np.concatenate(starts[a_end:])
    else:
        tokens, flags = segments[0], starts[0]
        if len(tokens) < 2:
            return None  # a one-token document cannot make a pair
        cut = int(rng.integers(1, len(tokens)))
        a, a_s, b, b_s = tokens[:cut], flags[:cut], tokens[cut:], flags[cut:]
    a, a_s, b, b_s = _truncate_pair(list(a), list(a_s), list(b), list(b_s), max_num_tokens, rng)
    if not a or not b:
        return None
    if rng.random() < 0.5:
        return Pair(b, a, b_s, a_s, swapped=True)
    return Pair(a, b, a_s, b_s, swapped=False)


def _truncate_pair(a, a_s, b, b_s, max_num_tokens: int, rng: np.random.Generator):
    """The reference's truncate_seq_pair: drop from the longer side, from the front or the back at random."""
    while len(a) + len(b) > max_num_tokens:
        tokens, flags = (a, a_s) if len(a) > len(b) else (b, b_s)
        if rng.random() < 0.5:
            del tokens[0], flags[0]
        else:
            tokens.pop(), flags.pop()
    return a, a_s, b, b_s


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

"""SOP pairs and whole-word n-gram masking: statistics on real text, structure, determinism."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from albert.masking import mask_ngrams, sop_pairs


@pytest.fixture(scope="module")
def encoded(brown_tokenizer, realdata):
    """Real Brown documents as (ids, word starts) sequences of about 500 tokens, with [CLS]/[SEP] around them."""
    tok = brown_tokenizer
    lines = realdata.brown_lines()[:6000]
    ids, _ = tok.encode_batch(lines)
    sequences, current = [], []
    for row in ids:
        current += row
        if len(current) >= 500:
            body = current[:500]
            sequences.append(([tok.cls_token_id, *body, tok.sep_token_id], [True, *tok.word_starts(body), True]))
            current = []
    return sequences


def _mask(tok, ids, starts, seed, max_predictions=20, prob=0.15):
    return mask_ngrams(
        ids,
        starts,
        np.random.default_rng(seed),
        mask_id=tok.mask_token_id,
        vocab_size=tok.vocab_size,
        special_ids=frozenset(tok.all_special_ids),
        max_predictions=max_predictions,
        masked_lm_prob=prob,
    )


def test_ngram_lengths_follow_one_over_n(brown_tokenizer, encoded):
    """Measured on long sequences at a low masking rate, where overlaps and the budget's end rarely shorten a draw."""
    counts = collections.Counter()
    long = [
        (sum((ids for ids, _ in encoded[k : k + 10]), []), sum((s for _, s in encoded[k : k + 10]), []))
        for k in range(0, len(encoded) - 10, 10)
    ]
    for k, (ids, starts) in enumerate(long * 8):
        counts.update(_mask(brown_tokenizer, ids, starts, seed=k, max_predictions=10_000, prob=0.03).ngrams)
    total = sum(counts.values())
    assert total > 5000
    for n, expected in [(1, 6 / 11), (2, 3 / 11), (3, 2 / 11)]:
        assert abs(counts[n] / total - expected) < 0.03, (n, counts[n] / total, expected)


def test_replacement_is_80_10_10(brown_tokenizer, encoded):
    tok = brown_tokenizer
    kinds = collections.Counter()
    for k, (ids, starts) in enumerate(encoded * 3):
        masked = _mask(tok, ids, starts, seed=k)
        for position, label in zip(masked.positions, masked.labels, strict=True):
            new = masked.input_ids[position]
            kinds["mask" if new == tok.mask_token_id else "same" if new == label else "random"] += 1
            assert new not in tok.all_special_ids or new == tok.mask_token_id
    total = sum(kinds.values())
    assert total > 5000
    assert abs(kinds["mask"] / total - 0.8) < 0.02
    assert abs(kinds["same"] / total - 0.1) < 0.015
    assert abs(kinds["random"] / total - 0.1) < 0.015


def test_budget_specials_whole_words_and_determinism(brown_tokenizer, encoded):
    tok = brown_tokenizer
    for k, (ids, starts) in enumerate(encoded[:60]):
        for length in (len(ids), 40):  # full sequences (budget 20) and short ones (budget round(0.15 * 40) = 6)
            seq, flags = ids[: length - 1] + [tok.sep_token_id], starts[: length - 1] + [True]
            masked = _mask(tok, seq, flags, seed=k)
            budget = min(20, max(1, round(0.15 * len(seq))))
            assert len(masked.positions) <= budget and len(masked.positions) >= budget - 3
            assert masked.positions == sorted(set(masked.positions))
            assert 0 not in masked.positions and len(seq) - 1 not in masked.positions  # [CLS], [SEP]
            chosen = set(masked.positions)
            for i in chosen:  # every piece of a masked word is masked: n-grams never split a word
                start = i
                while not flags[start]:
                    start -= 1
                end = i + 1
                while end < len(seq) and not flags[end] and seq[end] not in tok.all_special_ids:
                    end += 1
                assert chosen.issuperset(range(start, end)), (i, tok.convert_ids_to_tokens(seq[start:end]))
            again = _mask(tok, seq, flags, seed=k)
            assert again == masked


def test_sop_pairs_are_consecutive_and_balanced():
    rng = np.random.default_rng(0)
    swapped, total = 0, 0
    for _ in range(300):
        # Tokens are their own positions in the document, so order and contiguity are visible.
        lengths = rng.integers(3, 15, size=rng.integers(1, 12))
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        segments = [np.arange(bounds[i], bounds[i + 1]) for i in range(len(lengths))]
        starts = [np.ones(len(s), dtype=bool) for s in segments]
        for pair in sop_pairs(segments, starts, max_num_tokens=200, rng=rng, short_seq_prob=0.1):
            first, second = (pair.b, pair.a) if pair.swapped else (pair.a, pair.b)
            joined = list(first) + list(second)
            assert joined == list(range(joined[0], joined[0] + len(joined))), "segments must be consecutive"
            assert pair.a and pair.b
            swapped += pair.swapped
            total += 1
    assert total > 300 and abs(swapped / total - 0.5) < 0.06


def test_sop_respects_the_length_budget():
    rng = np.random.default_rng(1)
    segments = [np.arange(k * 50, k * 50 + 50) for k in range(10)]
    starts = [np.ones(50, dtype=bool)] * 10
    pairs = sop_pairs(segments, starts, max_num_tokens=61, rng=rng, short_seq_prob=0.0)
    assert pairs and all(len(p.a) + len(p.b) <= 61 for p in pairs)
    single = sop_pairs([np.arange(30)], [np.ones(30, dtype=bool)], max_num_tokens=61, rng=rng)
    assert len(single) == 1 and len(single[0].a) + len(single[0].b) == 30  # a one-segment document is split inside
    assert sop_pairs([np.arange(1)], [np.ones(1, dtype=bool)], max_num_tokens=61, rng=rng) == []

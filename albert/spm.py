"""SentencePiece tokenisation exactly as google-research/albert's tokenization.py does it, and training with ALBERT's
settings.

Encoding = ``preprocess_text`` → the SentencePiece model (the sentencepiece library, batched in C++) → re-split of
pieces that end in digit + comma. transformers 4.x's sentencepiece-based AlbertTokenizer implements the same
algorithm (the parity tests compare ids with it); transformers 5's Rust-backed one approximates the digit-comma rule
and treats the user-defined symbols differently, so it disagrees on some lines (see the README).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path

from albert.outputs import check_directory, claim_directory, file_mode, finish_directory
from albert.readers import decoded_lines, json_object
from albert.tokenizer import AlbertTokenizer, TokenizerError

log = logging.getLogger("albert")

SPIECE_UNDERLINE = "▁"
# The settings of the official 30k-clean.model (google-research/albert README, "SentencePiece").
ALBERT_CONTROL_SYMBOLS = ["[CLS]", "[SEP]", "[MASK]"]
ALBERT_USER_SYMBOLS = ["(", ")", '"', "-", ".", "–", "£", "€"]


# Every code point with a non-zero canonical combining class lies in the first two planes (the highest, U+1E94A, is
# an Adlam mark); scanning those alone builds the class in a tenth of the time of all 1.1M code points, which every
# process that tokenizes non-ASCII text paid. tests/test_tokenizer.py checks the bound against the running Python.
COMBINING_MARKS_BELOW = 0x20000


@lru_cache(maxsize=1)
def _combining_marks() -> re.Pattern[str]:
    """A character class of every combining mark (what unicodedata.combining() flags), built once on first use."""
    marks, start, prev = [], None, None
    for cp in range(COMBINING_MARKS_BELOW + 1):
        if unicodedata.combining(chr(cp)):
            if start is None:
                start = cp
            prev = cp
        elif start is not None:
            marks.append(f"{re.escape(chr(start))}-{re.escape(chr(prev))}")
            start = None
    return re.compile("[" + "".join(marks) + "]")


def preprocess_text(
    text: str, do_lower_case: bool = True, keep_accents: bool = False, remove_space: bool = True
) -> str:
    """ALBERT's normalisation before SentencePiece: tokenization.py preprocess_text plus transformers' quote rule."""
    if remove_space:
        text = " ".join(text.split())
    text = text.replace("``", '"').replace("''", '"')
    if not keep_accents and not text.isascii():
        text = _combining_marks().sub("", unicodedata.normalize("NFKD", text))
    return text.lower() if do_lower_case else text


def preprocess_with_offsets(
    text: str, do_lower_case: bool, keep_accents: bool, remove_space: bool
) -> tuple[str, list[tuple[int, int]]]:
    """preprocess_text, also returning for each output character the span of input characters it came from.

    The same steps in the same order as preprocess_text (whitespace, quotes, NFKD without combining marks, lower
    case), applied to (character, source span) pairs, so the text and therefore the token ids are identical whether or
    not offsets are asked for. Per-character NFKD equals whole-string NFKD once combining marks are dropped (only
    marks are reordered); lower() is taken from the whole string, because Greek capital sigma lowers by context."""
    chars: list[tuple[str, int, int]] = [(c, i, i + 1) for i, c in enumerate(text)]
    if remove_space:  # " ".join(text.split()): drop leading/trailing whitespace, collapse inner runs to one space
        collapsed: list[tuple[str, int, int]] = []
        for c, i, j in chars:
            if not c.isspace():
                collapsed.append((c, i, j))
            elif collapsed and collapsed[-1][0] != " ":
                collapsed.append((" ", i, j))
        chars = collapsed[:-1] if collapsed and collapsed[-1][0] == " " else collapsed
    quoted: list[tuple[str, int, int]] = []
    k = 0
    while k < len(chars):  # `` and '' → " (spanning both source characters), left to right as str.replace
        if k + 1 < len(chars) and chars[k][0] == chars[k + 1][0] and chars[k][0] in "`'":
            quoted.append(('"', chars[k][1], chars[k + 1][2]))
            k += 2
        else:
            quoted.append(chars[k])
            k += 1
    chars = quoted
    if not keep_accents and not "".join(c for c, _, _ in chars).isascii():
        chars = [
            (d, i, j) for c, i, j in chars for d in unicodedata.normalize("NFKD", c) if not unicodedata.combining(d)
        ]
    if do_lower_case:
        pieces = [(c.lower(), i, j) for c, i, j in chars]
        lowered = "".join(c for c, _, _ in chars).lower()
        spans = [(i, j) for low, i, j in pieces for _ in low]
        if len(spans) == len(lowered):  # always, for Python's case rules; then take each character from `lowered`
            return lowered, spans
        chars = [(c, i, j) for low, i, j in pieces for c in low]  # pragma: no cover - defensive
    return "".join(c for c, _, _ in chars), [(i, j) for _, i, j in chars]


class SentencePieceTokenizer(AlbertTokenizer):
    """ALBERT's English tokenizer: ``spiece.model`` (Google's ``30k-clean.model``) plus the official preprocessing."""

    def __init__(
        self,
        model_file: str | Path,
        do_lower_case: bool = True,
        keep_accents: bool = False,
        remove_space: bool = True,
        num_threads: int | None = None,
        split_special_tokens: bool = False,
    ):
        import sentencepiece

        super().__init__(do_lower_case, split_special_tokens)
        self.model_file = Path(model_file)
        self.keep_accents, self.remove_space = keep_accents, remove_space
        self.num_threads = num_threads or min(8, os.cpu_count() or 1)
        if not self.model_file.is_file():
            raise TokenizerError(f"{self.model_file}: no such SentencePiece model file")
        self.sp = sentencepiece.SentencePieceProcessor()
        try:
            self.sp.Load(str(self.model_file))
        except (OSError, RuntimeError) as err:
            raise TokenizerError(f"{self.model_file}: not a valid SentencePiece model ({err})") from None
        self.vocab_size = self.sp.get_piece_size()
        self.pad_token_id = self._special_id(self.pad_token)
        self.unk_token_id = self.sp.unk_id()
        self.unk_token = self.sp.id_to_piece(self.unk_token_id)
        self.cls_token_id = self._special_id(self.cls_token)
        self.sep_token_id = self._special_id(self.sep_token)
        self.mask_token_id = self._special_id(self.mask_token)
        # Ids of pieces like "▁9," that the official code re-splits into "▁9" ","; a line needs the slow path only
        # if it contains one of them.
        self._digit_comma = frozenset(i for i in range(self.vocab_size) if _ends_in_digit_comma(self.sp.id_to_piece(i)))
        # Special tokens written in the text, matched case-sensitively as transformers' AddedTokens are.
        named = (self.cls_token, self.sep_token, self.pad_token, self.unk_token, self.mask_token)
        self._specials = {t: self._special_id(t) for t in named if self._special_id(t) is not None}
        self._special_re = re.compile("|".join(re.escape(t) for t in sorted(self._specials, key=len, reverse=True)))
        # Lower-case specials ("<pad>", "<unk>") that lower-casing can produce from the text ("<PAD>").
        self._lower_specials = [t for t in self._specials if t == t.lower() != t.upper()]
        # One pass over a text tells whether it may hold one (a superset: case-insensitive for those).
        maybe = [re.escape(t) for t in self._specials] + [f"(?i:{re.escape(t)})" for t in self._lower_specials]
        self._maybe_special = re.compile("|".join(maybe)) if maybe else None
        # Cheaper still: their first characters, when those are brackets (which no other character lower-cases to).
        firsts = {t[0] for t in self._specials}
        self._anchors = tuple(firsts) if firsts <= set("[]<>") else None

    def _special_id(self, piece: str) -> int | None:
        """The id of an ALBERT special piece, or None if this model lacks it (e.g. a model not trained for ALBERT:
        it can still tokenize text, but adding [CLS]/[SEP] or padding then raises a clear error)."""
        i = self.sp.piece_to_id(piece)
        return i if self.sp.id_to_piece(i) == piece else None

    def preprocess(self, text: str) -> str:
        return preprocess_text(text, self.do_lower_case, self.keep_accents, self.remove_space)

    def encode_batch(self, texts: Sequence[str], offsets: bool = False) -> tuple[list[list[int]], list | None]:
        """Ids (and offsets) of texts; special tokens written in them are those tokens (unless split_special_tokens):
        the text between them is encoded on its own, as transformers' slow AlbertTokenizer does."""
        if not texts:
            return [], ([] if offsets else None)
        segments = [self._segments(t) for t in texts]
        if all(s is None for s in segments):
            return self._encode_texts(texts, offsets)
        parts = [(text, s or [(0, len(text), None)]) for text, s in zip(texts, segments, strict=True)]
        chunks = [text[start:end] for text, segs in parts for start, end, i in segs if i is None]
        chunk_ids, chunk_offsets = self._encode_texts(chunks, offsets)
        all_ids, all_offsets, n = [], [], 0
        for _, segs in parts:
            ids, spans = [], []
            for start, end, i in segs:
                if i is None:
                    ids += chunk_ids[n]
                    if offsets:
                        spans += [(a + start, b + start) for a, b in chunk_offsets[n]]
                    n += 1
                else:
                    ids.append(i)
                    spans.append((start, end))
            all_ids.append(ids)
            all_offsets.append(spans)
        return all_ids, (all_offsets if offsets else None)

    def _segments(self, text: str) -> list[tuple[int, int, int | None]] | None:
        """None if no special token is written in the text (the common case: a few substring tests), else its
        (start, end, id) pieces: id None for the text between special tokens, which is never empty."""
        if self.split_special_tokens or self._maybe_special is None:
            return None
        if self._anchors is not None:
            for anchor in self._anchors:
                if anchor in text:
                    break
            else:
                return None
        if not self._maybe_special.search(text):
            return None
        lower = bool(self._lower_specials) and self.do_lower_case
        out, pos = [], 0
        for start, end, i in self._find_specials(text, lower):
            if i == self.mask_token_id:  # transformers' [MASK] has lstrip=True: it takes the spaces before it
                start_text = len(text[pos:start].rstrip())
                out += [(pos, pos + start_text, None)] if start_text else []
            elif start > pos:
                out.append((pos, start, None))
            out.append((start, end, i))
            pos = end
        if pos < len(text):
            out.append((pos, len(text), None))
        return out if len(out) > 1 or out[0][2] is not None else None

    def _find_specials(self, text: str, lower: bool) -> list[tuple[int, int, int]]:
        """(start, end, id) of the special tokens in the text. When lower-casing, transformers first lower-cases
        every character outside exact special tokens, then looks for them, so "<PAD>" is <pad> but "[mask]" is text."""
        if not lower:
            return [(m.start(), m.end(), self._specials[m.group()]) for m in self._special_re.finditer(text)]
        chars, where, pos = [], [], 0
        for m in [*self._special_re.finditer(text), None]:
            stop = m.start() if m else len(text)
            for k in range(pos, stop):
                low = text[k].lower()
                chars.append(low)
                where += [(k, k + 1)] * len(low)
            if m:
                chars.append(m.group())
                where += [(m.start(), m.end())] * len(m.group())
                pos = m.end()
        lowered = "".join(chars)
        return [
            (where[m.start()][0], where[m.end() - 1][1], self._specials[m.group()])
            for m in self._special_re.finditer(lowered)
        ]

    def _encode_texts(self, texts: Sequence[str], offsets: bool) -> tuple[list[list[int]], list | None]:
        if not texts:
            return [], ([] if offsets else None)
        if offsets:
            return self._encode_with_offsets(texts)
        ids = self.sp.encode([self.preprocess(t) for t in texts], num_threads=self.num_threads)
        bad = self._digit_comma
        return [row if bad.isdisjoint(row) else self._resplit(row) for row in ids], None

    def _split_digit_comma(self, piece: str) -> list[str]:
        """tokenization.py encode_pieces: "▁9," → ["▁9", ","]; a piece without "▁" stays without one."""
        pieces = self.sp.encode(piece[:-1].replace(SPIECE_UNDERLINE, ""), out_type=str)
        if piece[0] != SPIECE_UNDERLINE and pieces and pieces[0][0] == SPIECE_UNDERLINE:
            pieces = pieces[1:] if len(pieces[0]) == 1 else [pieces[0][1:], *pieces[1:]]
        return [*pieces, piece[-1]]

    def _resplit(self, row: list[int]) -> list[int]:
        out: list[int] = []
        for i in row:
            if i in self._digit_comma:
                out += [self.sp.piece_to_id(p) for p in self._split_digit_comma(self.sp.id_to_piece(i))]
            else:
                out.append(i)
        return out

    def _encode_with_offsets(self, texts: Sequence[str]) -> tuple[list[list[int]], list[list[tuple[int, int]]]]:
        opts = (self.do_lower_case, self.keep_accents, self.remove_space)
        all_ids, all_offsets = [], []
        for text in texts:
            norm, source = preprocess_with_offsets(text, *opts)
            ids, spans = [], []
            encoded = self.sp.encode_as_offset_mapping(norm)
            for i, piece, (start, end) in zip(encoded["ids"], encoded["pieces"], encoded["offsets"], strict=True):
                while start < end and norm[start] == " ":  # the span of "▁word" includes the space before it
                    start += 1
                if i in self._digit_comma:
                    for sub in self._split_digit_comma(piece):
                        width = len(sub.replace(SPIECE_UNDERLINE, ""))
                        ids.append(self.sp.piece_to_id(sub))
                        spans.append((start, min(start + width, end)))
                        start = min(start + width, end)
                else:
                    ids.append(i)
                    spans.append((start, end))
            all_ids.append(ids)
            all_offsets.append([_to_source(s, e, source, len(text)) for s, e in spans])
        return all_ids, all_offsets

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        return [self.sp.id_to_piece(int(i)) for i in ids]

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        return [self.sp.piece_to_id(t) for t in tokens]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """Text of the ids as transformers decodes them: a special token is written as itself, attached to the text
        before it, and a piece after it keeps its word-start space ("[CLS] the[MASK] of it.[SEP]"); skipped, the
        pieces around it decode as one run."""
        # <unk> too: SentencePiece would write " ⁇ ", transformers writes "<unk>" (and drops it when skipping)
        special = {self.cls_token_id, self.sep_token_id, self.pad_token_id, self.mask_token_id, self.unk_token_id}
        parts: list[str] = []
        run: list[int] = []

        def flush() -> None:
            if run:
                # SentencePiece drops a run's leading spaces; transformers keeps each word-start "▁" as a space but
                # the text's very first one
                pieces = self.sp.id_to_piece(run)
                bare = next((k for k, p in enumerate(pieces) if p != "▁"), len(pieces))
                lead = bare + (bare < len(pieces) and pieces[bare].startswith("▁")) - (not parts)
                parts.append(" " * max(lead, 0) + self.sp.decode(run).lstrip(" "))
                run.clear()

        for i in map(int, ids):
            if i not in special:
                run.append(i)
            elif not skip_special_tokens:
                flush()
                parts.append(self.sp.id_to_piece(i))
        flush()
        return "".join(parts)

    def special_tokens_map(self) -> dict[str, str]:
        # transformers' AlbertTokenizer names [CLS]/[SEP] also as its bos/eos tokens.
        return {**super().special_tokens_map(), "bos_token": self.cls_token, "eos_token": self.sep_token}

    def save_pretrained(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / "spiece.model"
        if self.model_file.resolve() != target.resolve():
            shutil.copyfile(self.model_file, target)
        config = {
            "tokenizer_class": "AlbertTokenizer",
            "do_lower_case": self.do_lower_case,
            "keep_accents": self.keep_accents,
            "remove_space": self.remove_space,
            "model_max_length": self.model_max_length,
        }
        self._write_configs(directory, config)


def _ends_in_digit_comma(piece: str) -> bool:
    return len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit()


def _to_source(start: int, end: int, source: list[tuple[int, int]], text_len: int) -> tuple[int, int]:
    """Offsets in the preprocessed text → offsets in the original text."""
    if start >= end:
        at = source[start][0] if start < len(source) else text_len
        return at, at
    return source[start][0], source[end - 1][1]


# ----------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------
def read_lines(paths: Sequence[str | Path]) -> Iterator[str]:
    """Non-empty lines of text files (.jsonl: the "text" field), decoded strictly so bad bytes name file and line."""
    for path in map(Path, paths):
        for number, line in decoded_lines(path, TokenizerError):
            if path.suffix == ".jsonl" and line.strip():
                line = _text_field(json_object(line, f"{path}:{number}", TokenizerError), f"{path}:{number}")
            line = line.strip()
            if line:
                yield line


def _text_field(record: dict, where: str) -> str:
    if not isinstance(record.get("text"), str):
        raise TokenizerError(f'{where}: expected a JSON object with a "text" field')
    return record["text"]


# ALBERT's ids: <pad>=0 <unk>=1, no BOS/EOS, [CLS]=2 [SEP]=3 [MASK]=4, then the official user-defined symbols.
ALBERT_TRAINER_SETTINGS = {
    "pad_id": 0,
    "unk_id": 1,
    "bos_id": -1,
    "eos_id": -1,
    "control_symbols": ALBERT_CONTROL_SYMBOLS,
    "user_defined_symbols": ALBERT_USER_SYMBOLS,
    "shuffle_input_sentence": True,
}


def train(
    inputs: Sequence[str | Path],
    out: str | Path,
    vocab_size: int = 30000,
    do_lower_case: bool = True,
    keep_accents: bool = False,
    character_coverage: float = 0.99995,
    model_type: str = "unigram",
    input_sentence_size: int = 10_000_000,
    seed_sentencepiece_size: int = 1_000_000,
    num_threads: int | None = None,
    progress: bool = True,
    verbose: bool = False,
    overwrite: bool = False,
    max_sentence_length: int = 4192,
) -> SentencePieceTokenizer:
    """Train a SentencePiece model with ALBERT's settings on text files and save a tokenizer directory.

    ids <pad>=0 <unk>=1 [CLS]=2 [SEP]=3 [MASK]=4, then the official user-defined symbols; the text is preprocessed
    exactly as it will be at encoding time (so lower-casing is part of the model when do_lower_case is set).
    SentencePiece's own log (a hundred lines) is shown only when ``verbose``; lines longer than
    ``max_sentence_length`` bytes, which SentencePiece skips, are counted and reported. ``out`` must be missing or
    empty unless ``overwrite`` (albert/outputs.py).
    """
    import sentencepiece
    from tqdm import tqdm

    check_directory(out, "--out", overwrite, inputs)
    opts = (do_lower_case, keep_accents, True)
    lines = tqdm(read_lines(inputs), desc="reading corpus", unit=" lines", disable=not progress, mininterval=1)
    count, too_long, first_long = 0, 0, 0

    def sentences() -> Iterator[str]:
        nonlocal count, too_long, first_long
        for line in lines:
            count += 1
            text = preprocess_text(line, *opts)
            if len(text.encode("utf-8")) > max_sentence_length:
                too_long += 1
                first_long = first_long or count
            yield text

    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            sentencepiece.SentencePieceTrainer.train(
                sentence_iterator=sentences(),
                model_prefix=f"{tmp}/spiece",
                **ALBERT_TRAINER_SETTINGS,
                vocab_size=vocab_size,
                model_type=model_type,
                character_coverage=character_coverage,
                input_sentence_size=input_sentence_size,
                seed_sentencepiece_size=seed_sentencepiece_size,
                num_threads=num_threads or os.cpu_count() or 1,
                max_sentence_length=max_sentence_length,
                minloglevel=0 if verbose else 2,
            )
        except RuntimeError as err:
            if count == 0:
                raise TokenizerError(f"no text found in {', '.join(map(str, inputs))} (all files empty?)") from None
            raise TokenizerError(f"SentencePiece training failed on {count} lines: {err}") from None
        work = claim_directory(out, "--out", overwrite, inputs)  # a staging directory when replacing one
        shutil.move(f"{tmp}/spiece.model", work / "spiece.model")
        os.chmod(work / "spiece.model", file_mode())
    tok = SentencePieceTokenizer(work / "spiece.model", do_lower_case=do_lower_case, keep_accents=keep_accents)
    tok.save_pretrained(work)
    finish_directory(out, work)
    tok = SentencePieceTokenizer(out / "spiece.model", do_lower_case=do_lower_case, keep_accents=keep_accents)
    if too_long:
        log.warning(
            f"{too_long} of {count} lines are longer than {max_sentence_length} bytes and were left out of training "
            f"(the first is non-empty input line {first_long}); split them, or raise max_sentence_length"
        )
    if progress:
        print(f"trained a {vocab_size}-piece {model_type} model on {count} lines → {out}", file=sys.stderr)
    return tok

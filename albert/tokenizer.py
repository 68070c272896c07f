"""Tokenizers for ALBERT: SentencePiece (English checkpoints) and WordPiece (Chinese checkpoints, vocab.txt).

``AlbertTokenizer.from_pretrained(dir)`` picks the kind from the files present (``spiece.model`` or ``vocab.txt``).
Both kinds share one batch encoder: pairs, truncation, padding, special tokens, offsets, tensors. (Training a
SentencePiece model is albert/spm.py's.)

SentencePiece follows google-research/albert tokenization.py exactly, which is what the released checkpoints were
pretrained with: ``preprocess_text`` (collapse whitespace, ``` `` ```/``''`` → ``"``, NFKD and drop combining marks
unless keep_accents, lower-case), the SentencePiece model, then re-splitting pieces that end in digit + comma
(``▁9,`` → ``▁9`` ``,``). The engine is the sentencepiece library, batched in C++. transformers 4.x's
sentencepiece-based AlbertTokenizer implements the same algorithm (the parity tests compare ids with it);
transformers 5's Rust-backed one approximates the digit-comma rule and treats the user-defined symbols differently, so
it disagrees on some lines (docs/tokenizers.md). WordPiece runs on the ``tokenizers`` library's BERT pipeline (basic
tokenisation, CJK characters split, greedy longest-match ``##`` pieces).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from albert.errors import TokenizerError


# ----------------------------------------------------------------------------------------------------------------
# The shared batch encoder
# ----------------------------------------------------------------------------------------------------------------
class AlbertTokenizer:
    """Base class: subclasses turn texts into ids (and offsets); this class adds specials, truncates, pads."""

    cls_token, sep_token, pad_token, unk_token, mask_token = "[CLS]", "[SEP]", "<pad>", "<unk>", "[MASK]"
    model_max_length = 512

    def __init__(self, do_lower_case: bool = True, split_special_tokens: bool = False):
        self.do_lower_case = do_lower_case
        # As transformers: special tokens written in the text ("[MASK]") encode as those tokens unless this is set.
        self.split_special_tokens = split_special_tokens

    @staticmethod
    def from_pretrained(path: str | Path, **kwargs: Any) -> AlbertTokenizer:
        """spiece.model → SentencePieceTokenizer; vocab.txt → WordPieceTokenizer; reads tokenizer_config.json.

        ``path`` is a directory, one of those files, or a hub id (with ``revision``, ``cache_dir``, ``token``,
        ``local_files_only`` as in transformers; only the tokenizer's files are downloaded)."""
        from albert import hub

        options = hub.options_from(kwargs)
        if hub.is_local_path(path) and not hub.expanded(path).exists():  # a typo'd path is not a hub id
            raise TokenizerError(f"{path}: no such tokenizer file or directory")
        path = hub.local_or_hub(path, "tokenizer", options)
        if path.is_file():
            directory, files = path.parent, [path.name]
        elif path.is_dir():
            directory, files = path, [p.name for p in path.iterdir()]
        else:
            raise TokenizerError(f"{path}: no such tokenizer file or directory")
        config = {}
        if (directory / "tokenizer_config.json").is_file():
            try:
                config = json.loads((directory / "tokenizer_config.json").read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise TokenizerError(f"{directory / 'tokenizer_config.json'}: not valid JSON ({err})") from None
        model = next((f for f in files if f.endswith(".model")), None)
        if model is not None:
            keys = ("do_lower_case", "keep_accents", "remove_space", "split_special_tokens")
            options = {k: config[k] for k in keys if k in config}
            return SentencePieceTokenizer(directory / model, **{**options, **kwargs})
        if "vocab.txt" in files:
            options = {k: config[k] for k in ("do_lower_case", "strip_accents", "split_special_tokens") if k in config}
            return WordPieceTokenizer(directory / "vocab.txt", **{**options, **kwargs})
        raise TokenizerError(f"{path}: no tokenizer found (expected spiece.model / *.model or vocab.txt)")

    # -- to be provided by subclasses ---------------------------------------------------------------------------------
    vocab_size: int
    cls_token_id: int | None
    sep_token_id: int | None
    pad_token_id: int | None
    unk_token_id: int
    mask_token_id: int | None

    def encode_batch(self, texts: Sequence[str], offsets: bool = False) -> tuple[list[list[int]], list | None]:
        raise NotImplementedError

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        raise NotImplementedError

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        raise NotImplementedError

    def save_pretrained(self, directory: str | Path) -> None:
        raise NotImplementedError

    def push_to_hub(
        self,
        repo_id: str,
        private: bool = False,
        revision: str | None = None,
        commit_message: str | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """save_pretrained into a temporary directory and push it to ``repo_id`` in one commit, as the model's
        push_to_hub does (albert/push.py)."""
        from albert.push import push_saved

        options = dict(private=private, revision=revision, commit_message=commit_message, token=token)
        return push_saved(self, repo_id, "tokenizer", **options)

    def special_tokens_map(self) -> dict[str, str]:
        names = ("cls_token", "sep_token", "pad_token", "unk_token", "mask_token")
        return {name: getattr(self, name) for name in names}

    def _write_configs(self, directory: Path, config: dict[str, Any]) -> None:
        """tokenizer_config.json and special_tokens_map.json, so transformers can load the directory too."""
        from albert.checkpoint import write_text

        specials = self.special_tokens_map()
        if self.split_special_tokens:
            config = {**config, "split_special_tokens": True}
        dump = lambda data: json.dumps(data, indent=2, ensure_ascii=False) + "\n"  # noqa: E731
        write_text(directory / "tokenizer_config.json", dump({**config, **specials}))
        write_text(directory / "special_tokens_map.json", dump(specials))

    # -- shared -------------------------------------------------------------------------------------------------------
    @property
    def all_special_ids(self) -> set[int]:
        ids = {self.cls_token_id, self.sep_token_id, self.pad_token_id, self.unk_token_id, self.mask_token_id}
        return ids - {None}

    @property
    def source(self) -> str:
        """The file this tokenizer was read from (for error messages)."""
        return str(getattr(self, "model_file", None) or getattr(self, "vocab_file", "tokenizer"))

    def word_starts(self, ids: Sequence[int]) -> list[bool]:
        """Whether each token begins a whole word (for whole-word masking). A piece begins a word if the tokenizer
        marks it so (SentencePiece "▁", WordPiece no "##"), if it is punctuation, or if punctuation precedes it."""
        kinds = self._piece_kinds()
        out, prev = [], _PUNCT
        for i in ids:
            kind = kinds[i]
            out.append(kind != _CONT or prev == _PUNCT)
            prev = kind
        return out

    def _piece_kinds(self) -> list[int]:
        if getattr(self, "_kinds", None) is None:
            self._kinds = [
                _piece_kind(p, self.continuation_prefix) for p in self.convert_ids_to_tokens(range(self.vocab_size))
            ]
        return self._kinds

    continuation_prefix = ""  # WordPiece: "##"; SentencePiece marks starts instead ("▁")

    def tokenize(self, text: str) -> list[str]:
        return self.convert_ids_to_tokens(self.encode_batch([text])[0][0])

    def encode(self, text: str, pair: str | None = None, **kwargs: Any) -> list[int]:
        return self(text, pair, **kwargs)["input_ids"]

    def __call__(
        self,
        texts: str | Sequence[str],
        pairs: str | Sequence[str | None] | None = None,
        *,
        max_length: int | None = None,
        truncation: bool | str = False,
        padding: bool | str = False,
        add_special_tokens: bool = True,
        return_offsets: bool = False,
        return_special_tokens_mask: bool = False,
        return_tensors: str | None = None,
    ) -> dict[str, Any]:
        """Encode texts (and optional second segments) into input_ids, attention_mask, token_type_ids.

        truncation: False, True/"longest_first" (drop from the longer segment first), "only_first", "only_second".
        padding: False, True/"longest" (to the longest in the batch), "max_length". return_tensors="pt" → torch.
        Offsets are (start, end) character positions into the segment's own text; special tokens get (0, 0).
        """
        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        if pairs is not None:
            pairs = [pairs] if isinstance(pairs, str) else list(pairs)
            if len(pairs) != len(texts):
                raise ValueError(f"got {len(texts)} texts but {len(pairs)} pairs")
        if truncation and max_length is None:
            max_length = self.model_max_length
        self._require_specials(add_special_tokens, padding)
        ids_a, offs_a = self.encode_batch(texts, return_offsets)
        ids_b, offs_b = [None] * len(texts), [None] * len(texts)
        if pairs is not None:
            present = [i for i, p in enumerate(pairs) if p is not None]
            got_ids, got_offs = self.encode_batch([pairs[i] for i in present], return_offsets)
            for n, i in enumerate(present):
                ids_b[i] = got_ids[n]
                offs_b[i] = got_offs[n] if got_offs is not None else None
        cls, sep = ([self.cls_token_id], [self.sep_token_id]) if add_special_tokens else ([], [])
        out: dict[str, list] = {"input_ids": [], "token_type_ids": []}
        if return_special_tokens_mask:
            out["special_tokens_mask"] = []
        if return_offsets:
            out["offsets"] = []
        no_span = [(0, 0)] * len(cls)
        for n, (a, b) in enumerate(zip(ids_a, ids_b, strict=True)):
            oa, ob = (offs_a[n], offs_b[n]) if return_offsets else (None, None)
            if truncation:
                specials = len(cls) + len(sep) * (2 if b is not None else 1)
                la, lb = _truncated_lengths(len(a), len(b or ()), max_length - specials, truncation, n)
                a, oa = a[:la], oa and oa[:la]
                if b is not None:
                    b, ob = b[:lb], ob and ob[:lb]
            ids = cls + a + sep
            first = len(ids)
            if b is not None:
                ids += b + sep
            out["input_ids"].append(ids)
            out["token_type_ids"].append([0] * first + [1] * (len(ids) - first))
            if return_special_tokens_mask:
                mask = [1] * len(cls) + [0] * len(a) + [1] * len(sep)
                out["special_tokens_mask"].append(mask + ([0] * len(b) + [1] * len(sep) if b is not None else []))
            if return_offsets:
                spans = no_span + list(oa) + no_span
                out["offsets"].append(spans + (list(ob) + no_span if b is not None else []))
        _pad(out, padding, max_length, self.pad_token_id)
        return _to_tensors(out, return_tensors, single)

    def _require_specials(self, add_special_tokens: bool, padding: bool | str) -> None:
        needed = {"cls_token": add_special_tokens, "sep_token": add_special_tokens, "pad_token": bool(padding)}
        missing = [getattr(self, name) for name, need in needed.items() if need and getattr(self, name + "_id") is None]
        if missing:
            raise TokenizerError(
                f"{self.source}: the vocabulary has no {', '.join(missing)}; ALBERT models need <pad>, <unk>, [CLS], "
                "[SEP], [MASK] (train with `albert tokenizer train`, which adds them), or encode with "
                "add_special_tokens=False and padding=False"
            )


_START, _CONT, _PUNCT = 0, 1, 2


def _piece_kind(piece: str, continuation_prefix: str) -> int:
    body = piece.removeprefix(continuation_prefix) if continuation_prefix else piece.removeprefix("▁")
    if body and not any(c.isalnum() for c in body):
        return _PUNCT
    if continuation_prefix:
        return _CONT if piece.startswith(continuation_prefix) else _START
    # SentencePiece: "▁" marks a word start; a piece that begins with a CJK character is a word of its own.
    return _START if piece.startswith("▁") or (body and is_cjk(body[0])) or piece.startswith(("<", "[")) else _CONT


def is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return 0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2FA1F or 0xF900 <= cp <= 0xFAFF


def _truncated_lengths(la: int, lb: int, budget: int, strategy: bool | str, index: int) -> tuple[int, int]:
    """Lengths after truncation, as transformers' slow tokenizers compute them one token at a time."""
    excess = la + lb - budget
    if excess <= 0:
        return la, lb
    if strategy in (True, "longest_first"):
        gap = abs(la - lb)
        if excess <= gap:
            return (la - excess, lb) if la > lb else (la, lb - excess)
        rest = excess - gap
        low = min(la, lb)  # both are equal now; ties drop from the second segment first
        return low - rest // 2, low - (rest + 1) // 2
    # Like transformers, a segment truncated alone keeps at least one token.
    if strategy == "only_second" and lb > excess:
        return la, lb - excess
    if strategy == "only_first" and la > excess:
        return la - excess, lb
    if strategy in ("only_first", "only_second"):
        raise ValueError(f"example {index}: {strategy} truncation cannot fit {la}+{lb} tokens into {budget}")
    raise ValueError(f"unknown truncation strategy {strategy!r} (longest_first, only_first, only_second)")


def _pad(out: dict[str, list], padding: bool | str, max_length: int | None, pad_id: int | None) -> None:
    """Add attention_mask and pad every column in place: ids with <pad>, masks/types with 0, specials with 1."""
    if padding in (True, "longest"):
        width = max((len(ids) for ids in out["input_ids"]), default=0)
    elif padding == "max_length":
        if max_length is None:
            raise ValueError("padding='max_length' needs max_length")
        width = max_length
    elif padding in (False, None, "do_not_pad"):
        out["attention_mask"] = [[1] * len(ids) for ids in out["input_ids"]]
        return
    else:
        raise ValueError(f"unknown padding {padding!r} (True/'longest', 'max_length', False)")
    fill = {"input_ids": pad_id, "token_type_ids": 0, "special_tokens_mask": 1, "offsets": (0, 0)}
    out["attention_mask"] = []
    for n, ids in enumerate(out["input_ids"]):
        real = len(ids)
        pad = max(0, width - real)
        out["attention_mask"].append([1] * real + [0] * pad)
        for key, value in fill.items():
            if key in out and pad:
                out[key][n] = out[key][n] + [value] * pad


def _to_tensors(out: dict[str, list], return_tensors: str | None, single: bool) -> dict[str, Any]:
    if return_tensors == "pt":
        import torch

        if len({len(x) for x in out["input_ids"]}) > 1:
            raise ValueError("return_tensors='pt' needs equal lengths: pass padding=True")
        # (1, T) for a single text too, as transformers returns it: ready for model(**enc)
        return {k: torch.tensor(v, dtype=torch.long) for k, v in out.items()}
    if return_tensors is not None:
        raise ValueError(f"unknown return_tensors {return_tensors!r} (only 'pt')")
    return {k: v[0] for k, v in out.items()} if single else out


# ----------------------------------------------------------------------------------------------------------------
# WordPiece (Chinese ALBERT: Google's *_zh and brightmart's albert_zh use bert-base-chinese's vocab.txt)
# ----------------------------------------------------------------------------------------------------------------
class WordPieceTokenizer(AlbertTokenizer):
    """BERT's WordPiece on the ``tokenizers`` library: clean text, split CJK characters and punctuation, optional
    lower-casing and accent stripping, greedy longest-match ``##`` pieces, [UNK] for words over 100 characters."""

    cls_token, sep_token, pad_token, unk_token, mask_token = "[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"
    continuation_prefix = "##"

    def __init__(
        self,
        vocab_file: str | Path,
        do_lower_case: bool = True,
        strip_accents: bool | None = None,
        split_special_tokens: bool = False,
    ):
        from tokenizers import BertWordPieceTokenizer

        super().__init__(do_lower_case, split_special_tokens)
        self.vocab_file, self.strip_accents = Path(vocab_file), strip_accents
        try:
            # Split on "\n" only, as BERT's load_vocab does: str.splitlines() would also split inside tokens
            # that are Unicode line separators (the bert-base-chinese vocab has some) and shift every later id.
            tokens = self.vocab_file.read_text(encoding="utf-8").split("\n")
        except FileNotFoundError:
            raise TokenizerError(f"{self.vocab_file}: no such vocab file") from None
        except UnicodeDecodeError as err:
            raise TokenizerError(f"{self.vocab_file}: not UTF-8 ({err.reason} at byte {err.start})") from None
        if tokens and tokens[-1] == "":
            tokens.pop()
        self.vocab = {token: i for i, token in enumerate(tokens)}
        missing = [
            t
            for t in (self.pad_token, self.unk_token, self.cls_token, self.sep_token, self.mask_token)
            if t not in self.vocab
        ]
        if missing:
            raise TokenizerError(f"{self.vocab_file}: the vocab lacks the special tokens {', '.join(missing)}")
        self.vocab_size = len(tokens)
        self.cls_token_id, self.sep_token_id = self.vocab[self.cls_token], self.vocab[self.sep_token]
        self.pad_token_id, self.unk_token_id = self.vocab[self.pad_token], self.vocab[self.unk_token]
        self.mask_token_id = self.vocab[self.mask_token]
        self._engine = BertWordPieceTokenizer(
            self.vocab, lowercase=do_lower_case, strip_accents=strip_accents, clean_text=True, handle_chinese_chars=True
        )
        self._tokens = tokens

    def encode_batch(self, texts: Sequence[str], offsets: bool = False) -> tuple[list[list[int]], list | None]:
        # The engine matches [CLS] [SEP] [PAD] [UNK] [MASK] in the raw text, case-sensitively, as BertTokenizerFast
        # does; split_special_tokens makes them plain text, as there (the slow BertTokenizer still keeps a
        # space-separated "[MASK]" whole: its basic tokenizer never splits special tokens).
        self._engine._tokenizer.encode_special_tokens = bool(self.split_special_tokens)
        encodings = self._engine.encode_batch(list(texts), add_special_tokens=False)
        return [e.ids for e in encodings], ([e.offsets for e in encodings] if offsets else None)

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        return [self._tokens[int(i)] for i in ids]

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        return [self.vocab.get(t, self.unk_token_id) for t in tokens]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        return self._engine.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def save_pretrained(self, directory: str | Path) -> None:
        from albert.checkpoint import write_text

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_text(directory / "vocab.txt", "\n".join(self._tokens) + "\n")
        config = {
            "tokenizer_class": "BertTokenizer",
            "do_lower_case": self.do_lower_case,
            "strip_accents": self.strip_accents,
            "tokenize_chinese_chars": True,
            "model_max_length": self.model_max_length,
        }
        self._write_configs(directory, config)


# ----------------------------------------------------------------------------------------------------------------
# SentencePiece (English checkpoints): the official preprocessing, the model, the digit-comma rule, offsets
# ----------------------------------------------------------------------------------------------------------------
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

"""Tokenizers for ALBERT: SentencePiece (English checkpoints) and WordPiece (Chinese checkpoints, vocab.txt).

``AlbertTokenizer.from_pretrained(dir)`` picks the kind from the files present (``spiece.model`` or ``vocab.txt``).
Both kinds share one batch encoder: pairs, truncation, padding, special tokens, offsets, tensors.

SentencePiece follows google-research/albert tokenization.py exactly, which is what the released checkpoints were
pretrained with: ``preprocess_text`` (collapse whitespace, ``` `` ```/``''`` → ``"``, NFKD and drop combining marks
unless keep_accents, lower-case), the SentencePiece model, then re-splitting pieces that end in digit + comma
(``▁9,`` → ``▁9`` ``,``). The engine is the sentencepiece library; WordPiece runs on the ``tokenizers`` library's
BERT pipeline (basic tokenisation, CJK characters split, greedy longest-match ``##`` pieces).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from albert.errors import AlbertError


class TokenizerError(AlbertError):
    """A tokenizer file or training input that cannot be used."""


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
            from albert.spm import SentencePieceTokenizer

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

"""Pretraining data: corpus → documents → token shards on disk → SOP instances → masked batches.

``prepare`` streams text (one sentence or paragraph per line, a blank line between documents; or .jsonl with a
"text" field, one document per record) through the tokenizer in chunks and writes shards of numpy arrays plus a
manifest. ``PretrainData`` memory-maps the shards and builds each epoch's instances from a generator seeded by
(seed, variant): dynamic masking uses a new variant every epoch, static masking cycles through ``dupe_factor`` of them
(the reference's dupe_factor copies, without storing them). The order of instances and each instance's mask are
functions of (seed, epoch, position), so a run resumed at any step sees exactly the batches it would have seen.
"""

from __future__ import annotations

import array
import hashlib
import json
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from albert.batching import as_tensors, encoder_inputs, pad_rows
from albert.errors import AlbertError
from albert.extras import require
from albert.fields import AT_LEAST_1, OneOf, coerce_fields
from albert.masking import mask_ngrams, sop_spans
from albert.outputs import check_directory, claim_directory, finish_directory, strict_json
from albert.readers import decoded_lines, json_object
from albert.tokenizer import AlbertTokenizer, WordPieceTokenizer, is_cjk

MANIFEST = "manifest.json"


class DataError(AlbertError):
    """A corpus or prepared data directory that cannot be used."""


# ----------------------------------------------------------------------------------------------------------------
# prepare: text → shards
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class PrepareConfig:
    input: list[str]  # files or directories (*.txt, *.jsonl, searched recursively)
    tokenizer: str  # tokenizer directory (spiece.model or vocab.txt)
    out: str  # output directory for the shards (missing or empty)
    chinese_words: str = "auto"  # Chinese WordPiece word boundaries: jieba (auto; the [zh] extra) or char
    shard_tokens: int = 50_000_000  # tokens per shard file
    chunk_lines: int = 20_000  # lines tokenised per batch call (the engines use all cores inside one call)
    overwrite: bool = False  # replace what a non-empty out directory holds

    LIMITS: ClassVar[dict] = {
        "chinese_words": OneOf(("auto", "jieba", "char")),
        "shard_tokens": AT_LEAST_1,
        "chunk_lines": AT_LEAST_1,
    }

    def __post_init__(self) -> None:
        coerce_fields(self)  # YAML, flags and Python callers alike: each field as its declared type


def input_files(paths: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in (".txt", ".jsonl") and p.is_file())
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path}: no such file or directory")
    if not files:
        raise DataError(f"no .txt or .jsonl files in {', '.join(paths)}")
    return files


def read_documents(files: Sequence[Path]) -> Iterator[list[str]]:
    """Documents as lists of segments (lines). Bad bytes or records raise DataError naming file and line."""
    for path in files:
        doc: list[str] = []
        for number, raw in decoded_lines(path, DataError):
            line = raw.strip()
            if path.suffix == ".jsonl":
                if not line:
                    continue
                record = json_object(line, f"{path}:{number}", DataError)
                if not isinstance(record.get("text"), str):
                    raise DataError(f'{path}:{number}: expected a JSON object with a "text" field')
                segments = [s.strip() for s in record["text"].splitlines() if s.strip()]
                if segments:
                    yield segments
            elif line:
                doc.append(line)
            elif doc:
                yield doc
                doc = []
        if doc:
            yield doc


def _word_starts(tok: AlbertTokenizer, texts: list[str], ids: list[list[int]], mode: str) -> list[list[bool]]:
    """Whole-word boundaries: the tokenizer's own, or for Chinese WordPiece the words jieba finds."""
    starts = [tok.word_starts(row) for row in ids]
    if mode == "char" or not isinstance(tok, WordPieceTokenizer):
        return starts
    # auto and jieba alike need jieba for Chinese WordPiece: falling back to characters when it is missing would
    # silently make other masks; character boundaries are --chinese-words char, asked for by name
    jieba = require("jieba", "Chinese whole-word boundaries (or pass --chinese-words char)")
    jieba.setLogLevel(60)
    _, offsets = tok.encode_batch(texts, offsets=True)
    for text, row_starts, row_offsets in zip(texts, starts, offsets, strict=True):
        boundaries, position = set(), 0
        for word in jieba.cut(text):
            boundaries.add(position)
            position += len(word)
        for k, (begin, _) in enumerate(row_offsets):
            if row_starts[k] and begin not in boundaries and begin < len(text) and is_cjk(text[begin]):
                row_starts[k] = False  # a character inside a Chinese word continues it
    return starts


class _ShardWriter:
    def __init__(self, out: Path, vocab_size: int, shard_tokens: int):
        self.out, self.shard_tokens = out, shard_tokens
        self.dtype = np.uint16 if vocab_size <= np.iinfo(np.uint16).max else np.int32
        self.shards: list[dict] = []
        self._reset()

    def _reset(self) -> None:
        self.tokens: list[np.ndarray] = []
        self.starts: list[np.ndarray] = []
        self.segment_lengths: list[int] = []
        self.doc_sizes: list[int] = []
        self.count = 0

    def add(self, segments: list[list[int]], starts: list[list[bool]]) -> None:
        kept = [(s, f) for s, f in zip(segments, starts, strict=True) if s]
        if not kept:
            return
        for s, f in kept:
            self.tokens.append(np.asarray(s, dtype=self.dtype))
            self.starts.append(np.asarray(f, dtype=bool))
            self.segment_lengths.append(len(s))
            self.count += len(s)
        self.doc_sizes.append(len(kept))
        if self.count >= self.shard_tokens:
            self.flush()

    def flush(self) -> None:
        if not self.doc_sizes:
            return
        name = f"shard-{len(self.shards):05d}"
        np.save(self.out / f"{name}.tokens.npy", np.concatenate(self.tokens))
        np.save(self.out / f"{name}.starts.npy", np.concatenate(self.starts))
        np.save(self.out / f"{name}.segments.npy", np.concatenate([[0], np.cumsum(self.segment_lengths)]))
        np.save(self.out / f"{name}.documents.npy", np.concatenate([[0], np.cumsum(self.doc_sizes)]))
        self.shards.append(
            {
                "name": name,
                "tokens": self.count,
                "segments": len(self.segment_lengths),
                "documents": len(self.doc_sizes),
            }
        )
        self._reset()


def prepare(cfg: PrepareConfig, progress: bool = True) -> dict:
    """Tokenise a corpus into shards under ``cfg.out`` and write the manifest (last, so a crash leaves none)."""
    from tqdm import tqdm

    inputs = [*cfg.input, cfg.tokenizer]
    check_directory(cfg.out, "--out", cfg.overwrite, inputs)
    files = input_files(cfg.input)
    tok = AlbertTokenizer.from_pretrained(cfg.tokenizer)
    # A corpus is text: a "[SEP]" or "[MASK]" written in it must not become a separator or a mask inside a
    # segment (the official create_pretraining_data encodes them as ordinary pieces). The tokenizer saved beside
    # the shards, and so the trained model's, still reads them as special tokens, as fill-mask needs.
    given, tok.split_special_tokens = tok.split_special_tokens, True
    out = claim_directory(cfg.out, "--out", cfg.overwrite, inputs)  # a staging directory when replacing one
    writer = _ShardWriter(out, tok.vocab_size, cfg.shard_tokens)
    pending: list[list[str]] = []
    lines = 0
    bar = tqdm(desc="tokenising", unit=" docs", disable=not progress, mininterval=1)

    def flush_pending() -> None:
        texts = [segment for doc in pending for segment in doc]
        ids, _ = tok.encode_batch(texts)
        starts = _word_starts(tok, texts, ids, cfg.chinese_words)
        k = 0
        for doc in pending:
            writer.add(ids[k : k + len(doc)], starts[k : k + len(doc)])
            k += len(doc)
        bar.update(len(pending))
        pending.clear()

    for doc in read_documents(files):
        pending.append(doc)
        lines += len(doc)
        if sum(len(d) for d in pending) >= cfg.chunk_lines:
            flush_pending()
    flush_pending()
    writer.flush()
    bar.close()
    if not writer.shards:
        raise DataError(f"no text found in {', '.join(map(str, files))} (empty corpus?)")
    tok.split_special_tokens = given  # saved as given: the model reads "[MASK]" in a text as the mask
    tok.save_pretrained(out / "tokenizer")
    manifest = {
        "version": 1,
        "vocab_size": tok.vocab_size,
        "tokenizer_fingerprint": tokenizer_fingerprint(out / "tokenizer"),
        "files": [str(f) for f in files],
        "lines": lines,
        "shards": writer.shards,
        "config": asdict(cfg),
    }
    from albert.checkpoint import write_text

    write_text(out / MANIFEST, strict_json(manifest, indent=2) + "\n")
    finish_directory(cfg.out, out)
    return manifest


def tokenizer_fingerprint(directory: Path) -> str:
    digest = hashlib.sha256()
    for name in ("spiece.model", "vocab.txt"):
        if (directory / name).is_file():
            digest.update((directory / name).read_bytes())
    return digest.hexdigest()[:16]


# ----------------------------------------------------------------------------------------------------------------
# PretrainData: shards → instances → batches
# ----------------------------------------------------------------------------------------------------------------
class PretrainData:
    """The documents of one split, their SOP pairs for an epoch, and masked, collated batches."""

    def __init__(
        self,
        directory: str | Path,
        *,
        max_seq_length: int,
        max_predictions: int,
        masked_lm_prob: float,
        short_seq_prob: float,
        seed: int,
        split: str = "train",
        eval_fraction: float = 0.01,
        masking: str = "dynamic",
        dupe_factor: int = 10,
    ):
        self.directory = Path(directory)
        manifest_path = self.directory / MANIFEST
        if not manifest_path.is_file():
            raise DataError(f"{self.directory}: no {MANIFEST} (run `albert prepare` first)")
        self.manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        self.tokenizer = AlbertTokenizer.from_pretrained(self.directory / "tokenizer")
        self.vocab_size = self.manifest["vocab_size"]
        self.max_seq_length, self.max_predictions = max_seq_length, max_predictions
        self.masked_lm_prob, self.short_seq_prob = masked_lm_prob, short_seq_prob
        self.seed, self.masking, self.dupe_factor = seed, masking, dupe_factor
        if masking not in ("dynamic", "static"):
            raise DataError(f"masking must be 'dynamic' or 'static', found {masking!r}")
        tok = self.tokenizer
        self.special_ids = frozenset(tok.all_special_ids)
        self.mask_id, self.pad_id = tok.mask_token_id, tok.pad_token_id
        self.cls_id, self.sep_id = tok.cls_token_id, tok.sep_token_id
        self.shards = [self._load_shard(s["name"]) for s in self.manifest["shards"]]
        documents = [(k, d) for k, shard in enumerate(self.shards) for d in range(len(shard["documents"]) - 1)]
        every = max(1, round(1 / eval_fraction)) if eval_fraction > 0 else 0
        is_eval = [every > 0 and i % every == every - 1 for i in range(len(documents))]
        self.documents = [
            doc for doc, held_out in zip(documents, is_eval, strict=True) if held_out == (split == "eval")
        ]
        if not self.documents:
            fix = (
                f"pass --eval-fraction {min(0.5, 2 / max(len(documents), 1)):.2g} or more, or 0 for no evaluation"
                if split == "eval"
                else "lower --eval-fraction, or prepare a larger corpus"
            )
            raise DataError(
                f"{self.directory}: {len(documents)} document(s), and --eval-fraction {eval_fraction:g} leaves the "
                f"{split} split none: {fix}"
            )
        self._epoch_cache: dict[int, np.ndarray] = {}
        self._order_cache: dict[int, np.ndarray] = {}
        self._epoch_pairs: int | None = None

    def _load_shard(self, name: str) -> dict[str, np.ndarray]:
        return {
            part: np.load(self.directory / f"{name}.{part}.npy", mmap_mode="r")
            for part in ("tokens", "starts", "segments", "documents")
        }

    def variant(self, epoch: int) -> int:
        return epoch if self.masking == "dynamic" else epoch % self.dupe_factor

    def pairs(self, epoch: int) -> np.ndarray:
        """This epoch's SOP pairs over all documents of the split, in building order (cached per variant): one row
        (shard, a_lo, a_hi, b_lo, b_hi, swapped) per pair, token ranges into the memory-mapped shard, so an epoch
        costs 48 bytes per pair (about half a byte per token) whatever the corpus size."""
        variant = self.variant(epoch)
        if variant not in self._epoch_cache:
            rng = np.random.default_rng([self.seed, variant, 0])
            flat = array.array("q")  # 8 bytes per number while building too: no Python object per pair
            limit = self.max_seq_length - 3
            for shard_index, doc in self.documents:
                shard = self.shards[shard_index]
                first, last = shard["documents"][doc], shard["documents"][doc + 1]
                for span in sop_spans(shard["segments"][first : last + 1], limit, rng, self.short_seq_prob):
                    flat.extend((shard_index, *span))
            pairs = np.frombuffer(flat, dtype=np.int64).reshape(-1, 6)
            self._epoch_cache = {variant: pairs}  # one variant kept: memory stays bounded
        return self._epoch_cache[variant]

    def order(self, epoch: int) -> np.ndarray:
        """The epoch's shuffled order of instances: position → instance number (computed once per epoch)."""
        if epoch not in self._order_cache:
            permutation = np.random.default_rng([self.seed, epoch, 1]).permutation(len(self.pairs(epoch)))
            self._order_cache = {epoch: permutation}
        return self._order_cache[epoch]

    def steps_per_epoch(self, global_batch: int) -> int:
        """Fixed by epoch 0's instance count: every epoch has the same number of steps, so a step number alone
        says where a run is (other variants differ by a few pairs; positions past their end wrap around)."""
        if self._epoch_pairs is None:
            self._epoch_pairs = len(self.pairs(0))
        return self._epoch_pairs // global_batch

    def batch(self, epoch: int, positions: Sequence[int], shuffle: bool = True) -> dict[str, torch.Tensor]:
        """Mask and collate the instances at these positions of the epoch's order (or in building order).

        An instance's mask is a function of (seed, variant, instance number): static masking therefore repeats the
        same masked instances every dupe_factor epochs, in a new order."""
        pairs = self.pairs(epoch)
        variant = self.variant(epoch)
        order = self.order(epoch) if shuffle else None
        rows = []
        for position in positions:
            number = int(order[position % len(order)]) if shuffle else int(position)
            shard_index, a0, a1, b0, b1, swapped = (int(x) for x in pairs[number])
            tokens, flags = self.shards[shard_index]["tokens"], self.shards[shard_index]["starts"]
            ids = [self.cls_id, *tokens[a0:a1].tolist(), self.sep_id, *tokens[b0:b1].tolist(), self.sep_id]
            starts = [True, *flags[a0:a1].tolist(), True, *flags[b0:b1].tolist(), True]
            rng = np.random.default_rng([self.seed, variant, 2, number])
            masked = mask_ngrams(
                ids,
                starts,
                rng,
                mask_id=self.mask_id,
                vocab_size=self.vocab_size,
                special_ids=self.special_ids,
                max_predictions=self.max_predictions,
                masked_lm_prob=self.masked_lm_prob,
            )
            rows.append((masked, a1 - a0 + 2, bool(swapped)))
        return self._collate(rows)

    def _collate(self, rows) -> dict[str, torch.Tensor]:
        ids = [m.input_ids for m, _, _ in rows]
        types = [[0] * first + [1] * (len(m.input_ids) - first) for m, first, _ in rows]
        inputs = encoder_inputs(ids, types, self.pad_id)
        P = self.max_predictions
        inputs["masked_positions"] = pad_rows([m.positions for m, _, _ in rows], 0, width=P)
        inputs["labels"] = pad_rows([m.labels for m, _, _ in rows], -100, width=P)  # -100: a padding slot
        inputs["sentence_order_label"] = np.array([int(swapped) for _, _, swapped in rows], dtype=np.int64)
        return as_tensors(inputs)


def copy_tokenizer(data_dir: str | Path, target: str | Path) -> None:
    """Put the tokenizer the data was prepared with beside a model directory."""
    for path in (Path(data_dir) / "tokenizer").iterdir():
        shutil.copyfile(path, Path(target) / path.name)

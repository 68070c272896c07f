"""Training a SentencePiece model with ALBERT's settings, from text files, into a tokenizer directory.

The model is trained on text preprocessed exactly as it will be at encoding time (albert/tokenizer.py:
``preprocess_text``), with the official ids and symbols; ``train`` saves the directory that
``AlbertTokenizer.from_pretrained`` reads.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from albert.errors import TokenizerError
from albert.outputs import check_directory, claim_directory, file_mode, finish_directory
from albert.readers import read_lines
from albert.tokenizer import ALBERT_CONTROL_SYMBOLS, ALBERT_USER_SYMBOLS, SentencePieceTokenizer, preprocess_text

log = logging.getLogger("albert")


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

"""Reading what users bring (text, CSV/TSV, JSONL files and stdin), strictly, with errors that name file and line.

Every command reads through here: ``decoded_lines`` (UTF-8, a byte-order mark dropped, bad bytes name the line),
``read_text`` (a whole file), ``records`` (a .csv/.tsv/.jsonl/.txt file as (line, record) pairs, streamed),
``stdin_lines``, ``csv_records`` and ``read_lines`` (the non-empty lines of text or .jsonl files: tokenizer training and
encoding).

Python's csv module is lenient where a user's file is wrong: a row with more fields than the header keeps the extras
under a None key (``I liked it, a lot,great`` silently became text "I liked it" with label " a lot"), a short row
gets None values, and an unclosed quote swallows the rest of the file into one field, reported (if at all) at the
end. ``csv_records`` refuses each of these with the line the row starts on.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from albert.errors import AlbertError, TokenizerError


class DataError(AlbertError):
    """A data file that cannot be read as what it should be (its message names file and line)."""


class TableError(DataError):
    """A CSV/TSV row that does not match its header."""


def decoded_lines(
    path: str | Path, error: type[AlbertError] = DataError, keepends: bool = False
) -> Iterator[tuple[int, str]]:
    """(line number, line) of a UTF-8 file, streamed; a leading byte-order mark is dropped; bytes that are not UTF-8
    raise ``error`` naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {'is a directory; expected a file' if path.is_dir() else 'no such file'}")
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as err:
                raise error(f"{path}:{number}: not UTF-8 ({err.reason} at byte {err.start})") from None
            yield number, line if keepends else line.rstrip("\r\n")


def read_text(path: str | Path, error: type[AlbertError] = DataError) -> str:
    """A whole UTF-8 file (byte-order mark dropped), with the errors of ``decoded_lines``."""
    return "".join(line for _, line in decoded_lines(path, error, keepends=True))


def stdin_lines() -> Iterator[str]:
    """Standard input's lines (without the newline), decoded as UTF-8 with an error that names the line."""
    if not hasattr(sys.stdin, "buffer"):  # already text (a StringIO standing in for stdin)
        yield from (line.rstrip("\r\n") for line in sys.stdin)
        return
    for number, raw in enumerate(sys.stdin.buffer, 1):
        try:
            yield raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as err:
            raise DataError(f"stdin line {number}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def json_object(line: str, where: str, error: type[AlbertError] = DataError) -> dict[str, Any]:
    """One JSONL line as an object, or ``error`` naming ``where`` (file:line)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise error(f"{where}: malformed JSON ({err.msg})") from None
    if not isinstance(record, dict):
        raise error(f"{where}: expected a JSON object, found {type(record).__name__}")
    return record


def json_file(path: str | Path, error: type[AlbertError] = DataError) -> dict[str, Any]:
    """A JSON file holding one object (a config, a manifest), or ``error`` naming the file and what is wrong."""
    path = Path(path)
    try:
        data = json.loads(read_text(path, error))
    except json.JSONDecodeError as err:
        raise error(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def records(path: str | Path, blank_lines: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each row of a .csv, .tsv or .jsonl file, or each line of any other file as
    {"text": line}, streamed so files larger than memory pass through. ``blank_lines``: a blank line of a plain text
    file is a (blank) text, so that output line n answers input line n; otherwise it is skipped."""
    suffix = Path(path).suffix.lower()
    if suffix in (".csv", ".tsv"):
        lines = (line for _, line in decoded_lines(path, TableError, keepends=True))
        yield from csv_records(path, lines, "\t" if suffix == ".tsv" else ",")
        return
    for number, line in decoded_lines(path):
        if suffix == ".jsonl":
            if line.strip():
                yield number, json_object(line, f"{path}:{number}")
        elif blank_lines or line.strip():
            yield number, {"text": line}


def csv_records(path: str | Path, lines: Iterable[str], delimiter: str = ",") -> Iterator[tuple[int, dict[str, str]]]:
    """(line number where the row starts, {column: value}) for each row after the header. ``lines`` are the file's
    lines (with or without newlines: a file object opened with newline="" or str.splitlines(keepends=True))."""
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    name = "tab" if delimiter == "\t" else "comma"
    try:
        header = next(reader, None)
    except csv.Error as err:
        raise TableError(f"{path}:1: the header is not valid CSV ({err})") from None
    if header is None:
        return
    if len(set(header)) != len(header):
        repeated = sorted({h for h in header if header.count(h) > 1})
        raise TableError(f"{path}:1: column name(s) {', '.join(map(repr, repeated))} appear more than once")
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            if "unexpected end of data" in str(err):
                raise TableError(f"{path}:{start}: a quoted field opens on this line and is never closed") from None
            raise TableError(f"{path}:{start}: not valid CSV ({err})") from None
        if row and len(row) != len(header):
            hint = f" (a text with a {name} in it must be in double quotes)" if len(row) > len(header) else ""
            count = f"{len(row)} field" + ("s" if len(row) != 1 else "")
            raise TableError(f"{path}:{start}: {count}, but the header has {len(header)}{hint}")
        if row:  # a blank line is no row
            yield start, dict(zip(header, row, strict=True))
        start = reader.line_num + 1


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

"""Reading users' CSV/TSV files strictly: a row that does not fit the header is an error naming its line.

Python's csv module is lenient where a user's file is wrong: a row with more fields than the header keeps the extras
under a None key (``I liked it, a lot,great`` silently became text "I liked it" with label " a lot"), a short row
gets None values, and an unclosed quote swallows the rest of the file into one field, reported (if at all) at the
end. ``csv_records`` refuses each of these with the line the row starts on.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from pathlib import Path

from albert.errors import AlbertError


class TableError(AlbertError):
    """A CSV/TSV row that does not match its header."""


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
